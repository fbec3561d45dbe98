"""Training-sample enumeration and normalisation statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdtflow.data.manifest import build_manifest
from rdtflow.data.split import split_episodes
from rdtflow.data.validate import validate_demos
from tests.helpers.episodes import IDLE_STEPS, INSTRUCTION, synthetic_trajectory, write_synthetic_episode


@pytest.fixture
def index_path(demo_dir: Path, good_demos, data_cfg: dict) -> Path:
    """index.parquet of 4 valid episodes (1 held out) and one rejected file, built by the real stages."""
    good_demos(4)
    write_synthetic_episode(demo_dir / "short.hdf5", n_steps=5, seed=50)
    out = demo_dir.parent / "data"
    validate_demos(demo_dir, data_cfg, out / "validated.parquet", out / "validation.json")
    split_episodes(out / "validated.parquet", {"held_out": 1, "seed": 0, "train_episodes": None}, out / "index.parquet")
    return out / "index.parquet"


def build(index_path: Path, data_cfg: dict) -> tuple[pd.DataFrame, dict]:
    out = index_path.parent
    build_manifest(index_path, data_cfg, out / "manifest.parquet", out / "stats.json")
    return pd.read_parquet(out / "manifest.parquet"), json.loads((out / "stats.json").read_text())


def test_manifest_enumerates_every_training_step(index_path: Path, data_cfg: dict) -> None:
    manifest, stats = build(index_path, data_cfg)
    index = pd.read_parquet(index_path)
    train_ids = sorted(index.loc[index["split"] == "train", "episode_id"])

    assert list(manifest.columns) == ["sample", "episode_id", "path", "group", "step", "n_steps", "instruction"]
    assert manifest["sample"].tolist() == list(range(len(manifest)))
    assert sorted(manifest["episode_id"].unique()) == train_ids and len(train_ids) == 3
    for _, steps in manifest.groupby("episode_id")["step"]:
        assert steps.tolist() == list(range(IDLE_STEPS, 20))
    assert (manifest["n_steps"] == 20).all() and (manifest["instruction"] == INSTRUCTION).all()
    assert stats["n_episodes"] == 3 and stats["n_samples"] == len(manifest) == 3 * (20 - IDLE_STEPS)


def test_stats_cover_training_steps_only(index_path: Path, data_cfg: dict) -> None:
    _, stats = build(index_path, data_cfg)
    index = pd.read_parquet(index_path)
    train_seeds = [int(eid.split("_")[1]) for eid in index.loc[index["split"] == "train", "episode_id"]]
    trajectories = [synthetic_trajectory(20, 3, seed) for seed in train_seeds]
    actions = np.concatenate([action[IDLE_STEPS:] for action, _ in trajectories])
    states = np.concatenate([qpos[IDLE_STEPS:] for _, qpos in trajectories])

    assert stats["state_names"] == data_cfg["state_names"]
    for name, values in (("action", actions), ("qpos", states)):
        for stat, reduce in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
            np.testing.assert_allclose(stats[name][stat], reduce(values.astype(np.float64), axis=0), rtol=1e-6)
