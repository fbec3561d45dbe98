"""Stage split: a deterministic train / held-out split of the valid episodes.

Held-out episodes are never trained on; evaluation replays them (open loop) and re-simulates
their initial states (closed loop), so the split must be reproducible from the seed alone.

`split.train_episodes: N` trains on only the first N of the remaining episodes in the same
seeded shuffle and marks the others `unused`: the held-out episodes do not move with N, and a
smaller N trains on a subset of a larger one, so a demo-scaling study compares like with like.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rdtflow.errors import ConfigError


def _held_out_count(held_out: int | float, n_valid: int) -> int:
    """An integer is a count; a fraction in (0, 1) is rounded, but holds out at least one episode."""
    if isinstance(held_out, float) and 0 < held_out < 1:
        return max(1, round(held_out * n_valid))
    if float(held_out).is_integer() and held_out >= 1:
        return int(held_out)
    raise ConfigError(
        f"split.held_out={held_out!r}: use an integer count >= 1, a fraction in (0, 1) or a list of episode ids"
    )


def _check_both_sides(n_held_out: int, n_valid: int, held_out: object) -> None:
    """Training needs at least one episode and evaluation needs at least one."""
    if n_valid < 2:
        raise ConfigError(
            f"only {n_valid} valid episode(s), but the split needs at least 2 (one to train on, one held out); "
            "record more demonstrations or fix the rejected ones (see validation.json)"
        )
    if not 1 <= n_held_out < n_valid:
        raise ConfigError(
            f"split.held_out={held_out!r} holds out {n_held_out} of {n_valid} valid episodes, but at least one must "
            f"be trained on and one held out; hold out between 1 and {n_valid - 1}"
        )


def seeded_order(valid_ids: list[str], seed: int) -> list[str]:
    """The sorted ids in the split seed's shuffle: held-out episodes are taken first, then the trained ones."""
    valid_ids = sorted(valid_ids)
    return [valid_ids[i] for i in np.random.default_rng(seed).permutation(len(valid_ids))]


def choose_held_out(valid_ids: list[str], held_out: int | float | list[str], seed: int) -> set[str]:
    """The held-out episode ids: the given list, or the first ones of a seeded shuffle of the sorted ids."""
    valid_ids = sorted(valid_ids)
    if isinstance(held_out, (list, tuple)):
        unknown = sorted(set(held_out) - set(valid_ids))
        if unknown:
            raise ConfigError(
                f"split.held_out names ids that are not valid episodes: {', '.join(unknown)} "
                "(ids are paths relative to the demo folder without .hdf5; see validation.json for rejected ones)"
            )
        chosen = set(held_out)
    else:
        chosen = set(seeded_order(valid_ids, seed)[: _held_out_count(held_out, len(valid_ids))])
    _check_both_sides(len(chosen), len(valid_ids), held_out)
    return chosen


def choose_training(valid_ids: list[str], held_out: set[str], train_episodes: int | None, seed: int) -> set[str]:
    """The ids trained on: every valid episode not held out, or the first `train_episodes` of them
    in the split seed's shuffle."""
    remaining = [episode for episode in seeded_order(valid_ids, seed) if episode not in held_out]
    if train_episodes is None:
        return set(remaining)
    if train_episodes > len(remaining):
        raise ConfigError(
            f"split.train_episodes={train_episodes}, but only {len(remaining)} valid episodes are not held out: lower "
            f"it to at most {len(remaining)}, or record (or generate) more demonstrations"
        )
    return set(remaining[:train_episodes])


def _held_out_spec(valid: pd.DataFrame, held_out: int | float | list[str] | dict) -> int | float | list[str]:
    """{mask: NAME} becomes the ids of the valid demos that robomimic's /mask/NAME lists."""
    if not isinstance(held_out, dict):
        return held_out
    in_mask = valid["masks"].fillna("").str.split(",").apply(lambda names: held_out["mask"] in names)
    if not in_mask.any():
        present = sorted({name for names in valid["masks"].fillna("") for name in names.split(",") if name})
        raise ConfigError(
            f"split.held_out: no valid episode is in mask '{held_out['mask']}' (the files' /mask groups hold "
            f"{', '.join(present) or 'no masks'}); name one of those, or give a count"
        )
    return sorted(valid.loc[in_mask, "episode_id"])


def split_episodes(validated_path: Path, split_cfg: dict, index_out: Path) -> pd.DataFrame:
    """Add a ``split`` column (train / held_out / unused / rejected) to validated.parquet; write index.parquet."""
    index = pd.read_parquet(validated_path)
    valid = index["valid"].astype(bool)
    valid_ids = index.loc[valid, "episode_id"].tolist()
    held_out = choose_held_out(valid_ids, _held_out_spec(index[valid], split_cfg["held_out"]), split_cfg["seed"])
    training = choose_training(valid_ids, held_out, split_cfg["train_episodes"], split_cfg["seed"])
    episode = index["episode_id"]
    index["split"] = np.select([~valid, episode.isin(held_out), episode.isin(training)],
                               ["rejected", "held_out", "train"], default="unused")
    Path(index_out).parent.mkdir(parents=True, exist_ok=True)
    index.to_parquet(index_out, index=False)
    return index
