"""Stage manifest: enumerate the training samples and compute normalisation statistics.

Every step of a training episode from its first moving step on is one sample (the idle start
of a recording is skipped). Statistics come from the training episodes only, so nothing about
the held-out episodes leaks into the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rdtflow.data.episode import read_trajectory
from rdtflow.errors import RdtflowError

MANIFEST_COLUMNS = ["sample", "episode_id", "path", "group", "step", "n_steps", "instruction"]


def _training_episodes(index: pd.DataFrame) -> pd.DataFrame:
    """The training rows of the index, in episode id order so that sample numbers are reproducible."""
    train = index[index["split"] == "train"].sort_values("episode_id").reset_index(drop=True)
    if train.empty:
        raise RdtflowError("the index has no training episodes; check the split stage's output")
    return train


def _episode_samples(episode: tuple) -> pd.DataFrame:
    """One row per step of one episode from its first moving step to its last step."""
    steps = np.arange(int(episode.first_moving_step), int(episode.n_steps))
    return pd.DataFrame({
        "episode_id": episode.episode_id,
        "path": episode.path,
        "group": episode.group,
        "step": steps,
        "n_steps": int(episode.n_steps),
        "instruction": episode.instruction,
    })


def _column_stats(values: np.ndarray) -> dict[str, list[float]]:
    """Per-column min/max/mean/std (population std) as JSON-ready lists."""
    values = values.astype(np.float64)
    return {
        "min": values.min(axis=0).tolist(),
        "max": values.max(axis=0).tolist(),
        "mean": values.mean(axis=0).tolist(),
        "std": values.std(axis=0).tolist(),
    }


def _normalisation_stats(train: pd.DataFrame, data_cfg: dict) -> dict[str, dict[str, list[float]]]:
    """qpos and action statistics over exactly the steps the manifest samples."""
    actions, states = [], []
    for episode in train.itertuples():
        action, qpos = read_trajectory(Path(episode.path), data_cfg, episode.group)
        first_step = int(episode.first_moving_step)
        actions.append(action[first_step:])
        states.append(qpos[first_step:])
    return {"qpos": _column_stats(np.concatenate(states)), "action": _column_stats(np.concatenate(actions))}


def build_manifest(index_path: Path, data_cfg: dict, manifest_out: Path, stats_out: Path) -> pd.DataFrame:
    """Write manifest.parquet (one row per training sample) and stats.json; return the manifest."""
    train = _training_episodes(pd.read_parquet(index_path))
    manifest = pd.concat([_episode_samples(episode) for episode in train.itertuples()], ignore_index=True)
    manifest.insert(0, "sample", np.arange(len(manifest)))
    stats = {
        "state_names": list(data_cfg["state_names"]),
        "n_episodes": len(train),
        "n_samples": len(manifest),
        "normalization": data_cfg["normalization"],
        **_normalisation_stats(train, data_cfg),
    }
    for out in (manifest_out, stats_out):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    manifest[MANIFEST_COLUMNS].to_parquet(manifest_out, index=False)
    Path(stats_out).write_text(json.dumps(stats, indent=2) + "\n")
    return manifest
