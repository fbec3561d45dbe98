"""Wilson intervals and the exact McNemar test, against values computed by hand and by definition."""

from __future__ import annotations

import math

import pytest

from rdtflow.evaluate.stats import exact_mcnemar, rate_with_interval, wilson_interval


@pytest.mark.parametrize(("successes", "trials", "expected"), [
    (51, 60, (0.7389, 0.9190)),  # the brief's "85% on 60 episodes is anything from 74% to 92%"
    (0, 50, (0.0, 0.0713)),      # never empty at 0%
    (50, 50, (0.9287, 1.0)),     # nor at 100%
    (1, 2, (0.0945, 0.9055)),
    (1, 1, (0.2065, 1.0)),       # a single episode already bounds the rate
    (0, 0, (0.0, 1.0)),          # no episode says nothing
])
def test_wilson_interval_matches_the_score_formula(successes, trials, expected):
    low, high = wilson_interval(successes, trials)
    assert low == pytest.approx(expected[0], abs=5e-5) and high == pytest.approx(expected[1], abs=5e-5)
    assert (low == 0.0) == (successes == 0) and (high == 1.0) == (successes == trials)  # exact ends


def test_wilson_interval_holds_the_rate_and_narrows_with_more_episodes():
    narrow, wide = wilson_interval(510, 600), wilson_interval(51, 60)
    assert wide[0] < narrow[0] < 0.85 < narrow[1] < wide[1]


def test_rate_with_interval_counts_outcomes():
    assert rate_with_interval([True, False, True, True]) == {
        "rate": 0.75, "interval": list(wilson_interval(3, 4)), "successes": 3, "n": 4}


def test_mcnemar_uses_only_discordant_episodes():
    # 10 episodes both solve, 8 only the first solves, 1 only the second: p = 2 * P(X <= 1), X ~ Bin(9, 1/2)
    first = [True] * 10 + [True] * 8 + [False] * 1 + [False] * 5
    second = [True] * 10 + [False] * 8 + [True] * 1 + [False] * 5
    test = exact_mcnemar(first, second)
    assert (test["only_first"], test["only_second"]) == (8, 1)
    assert test["p_value"] == pytest.approx(2 * (math.comb(9, 0) + math.comb(9, 1)) / 2**9)
    assert test["p_value"] < 0.05


def test_mcnemar_of_identical_outcomes_is_one_and_lengths_must_match():
    assert exact_mcnemar([True, False], [True, False])["p_value"] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        exact_mcnemar([True], [True, False])
