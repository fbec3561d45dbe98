"""How sure a success rate is: Wilson intervals, and an exact paired test between checkpoints.

Success rates on tens of episodes are coarse (85% of 60 episodes is anything from 74% to 92%),
so every rate rdtflow reports carries its interval, and "checkpoint A beats checkpoint B" is a
paired test on the same held-out initial states rather than a comparison of two numbers.
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate: unlike p +- z*sqrt(p(1-p)/n) it stays
    inside [0, 1] and is not empty at 0% or 100%, where small evaluations often land."""
    if trials == 0:
        return (0.0, 1.0)
    rate = successes / trials
    denominator = 1 + z**2 / trials
    centre = (rate + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact where rounding would leave 1e-17
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def rate_with_interval(outcomes: list[bool]) -> dict:
    """{"rate", "interval": [low, high], "successes", "n"} of a list of per-episode outcomes."""
    successes = sum(bool(outcome) for outcome in outcomes)
    low, high = wilson_interval(successes, len(outcomes))
    return {"rate": successes / len(outcomes) if outcomes else None, "interval": [low, high],
            "successes": successes, "n": len(outcomes)}


def exact_mcnemar(first: list[bool], second: list[bool]) -> dict:
    """Two-sided exact McNemar test of two policies' outcomes on the same episodes.

    Only the discordant episodes count (first succeeds where second fails, and the reverse);
    under "no difference" each is a fair coin, so the p-value is a binomial tail.
    """
    if len(first) != len(second):
        raise ValueError(f"paired outcomes differ in length: {len(first)} and {len(second)}")
    only_first = sum(a and not b for a, b in zip(first, second))
    only_second = sum(b and not a for a, b in zip(first, second))
    discordant = only_first + only_second
    tail = sum(math.comb(discordant, k) for k in range(min(only_first, only_second) + 1)) / 2**discordant
    return {"only_first": only_first, "only_second": only_second, "p_value": min(1.0, 2 * tail)}
