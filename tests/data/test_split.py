"""Deterministic train / held-out split of the valid episodes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rdtflow.data.split import split_episodes
from rdtflow.errors import ConfigError


def write_validated(tmp_path: Path, n_valid: int, n_rejected: int = 0) -> Path:
    """A validated.parquet with ``n_valid`` valid episodes ep_000, ... and some rejected ones."""
    rows = [{"episode_id": f"ep_{i:03d}", "valid": True, "reason": ""} for i in range(n_valid)]
    rows += [{"episode_id": f"bad_{i:03d}", "valid": False, "reason": "nan_values"} for i in range(n_rejected)]
    path = tmp_path / "validated.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def split(tmp_path: Path, held_out, seed: int = 0, n_valid: int = 10, n_rejected: int = 0,
          train_episodes: int | None = None) -> pd.DataFrame:
    validated = write_validated(tmp_path, n_valid, n_rejected)
    split_episodes(validated, {"held_out": held_out, "seed": seed, "train_episodes": train_episodes},
                   tmp_path / "index.parquet")
    return pd.read_parquet(tmp_path / "index.parquet")


def held_out_ids(index: pd.DataFrame) -> set[str]:
    return set(index.loc[index["split"] == "held_out", "episode_id"])


def test_count_fraction_and_rejected(tmp_path: Path) -> None:
    index = split(tmp_path, held_out=0.3, n_rejected=2)
    assert index["split"].value_counts().to_dict() == {"train": 7, "held_out": 3, "rejected": 2}
    assert set(index.loc[~index["valid"], "split"]) == {"rejected"}
    assert len(held_out_ids(split(tmp_path, held_out=4))) == 4


def test_small_fraction_holds_out_at_least_one(tmp_path: Path) -> None:
    assert len(held_out_ids(split(tmp_path, held_out=0.01))) == 1


def test_split_is_deterministic_and_seeded(tmp_path: Path) -> None:
    first = held_out_ids(split(tmp_path, held_out=3, seed=1))
    assert held_out_ids(split(tmp_path, held_out=3, seed=1)) == first
    assert any(held_out_ids(split(tmp_path, held_out=3, seed=seed)) != first for seed in range(2, 6))


def test_split_does_not_depend_on_row_order(tmp_path: Path) -> None:
    validated = write_validated(tmp_path, 10)
    split_cfg = {"held_out": 3, "seed": 4, "train_episodes": None}
    expected = held_out_ids(split_episodes(validated, split_cfg, tmp_path / "a.parquet"))
    pd.read_parquet(validated).iloc[::-1].to_parquet(validated, index=False)
    assert held_out_ids(split_episodes(validated, split_cfg, tmp_path / "b.parquet")) == expected


def test_explicit_list(tmp_path: Path) -> None:
    assert held_out_ids(split(tmp_path, held_out=["ep_002", "ep_007"])) == {"ep_002", "ep_007"}


def test_unknown_ids_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not valid episodes: bad_000, ep_999"):
        split(tmp_path, held_out=["ep_001", "ep_999", "bad_000"], n_rejected=1)


@pytest.mark.parametrize("held_out", [10, 0.99, [f"ep_{i:03d}" for i in range(10)]])
def test_everything_held_out_is_an_error(tmp_path: Path, held_out) -> None:
    with pytest.raises(ValueError, match="holds out 10 of 10 valid episodes.*between 1 and 9"):
        split(tmp_path, held_out=held_out)


def test_single_valid_episode_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only 1 valid episode.*at least 2"):
        split(tmp_path, held_out=0.2, n_valid=1, n_rejected=3)


def trained_ids(index: pd.DataFrame) -> set[str]:
    return set(index.loc[index["split"] == "train", "episode_id"])


def test_fewer_training_episodes_keep_the_held_out_ones_and_nest(tmp_path: Path) -> None:
    """A demo-scaling study: the held-out set does not move with the number trained on, and
    each smaller training set is part of every larger one."""
    everything = split(tmp_path, held_out=5, n_valid=20, n_rejected=1)
    splits = {count: split(tmp_path, held_out=5, n_valid=20, n_rejected=1, train_episodes=count) for count in (3, 8, 15)}
    for count, index in splits.items():
        assert held_out_ids(index) == held_out_ids(everything) and len(trained_ids(index)) == count
        assert index["split"].value_counts().to_dict() == {
            key: value for key, value in {"held_out": 5, "unused": 15 - count, "train": count, "rejected": 1}.items()
            if value}
    assert trained_ids(splits[3]) < trained_ids(splits[8]) < trained_ids(splits[15]) == trained_ids(everything)


def test_more_training_episodes_than_there_are_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split.train_episodes=9, but only 7 valid episodes are not held out"):
        split(tmp_path, held_out=3, train_episodes=9)
