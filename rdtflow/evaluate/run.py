"""Evaluate a checkpoint (or the blind baseline) on the held-out episodes; write its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rdtflow.data.cameras import camera_slots
from rdtflow.data.episode import read_attributes, read_trajectory
from rdtflow.errors import ConfigError
from rdtflow.evaluate.closed_loop import run_closed_loop
from rdtflow.evaluate.policies import (
    ChunkPolicy,
    DiffusionPolicy,
    MeanTrajectoryPolicy,
    Observations,
)
from rdtflow.model.encoders import VisionEncoder
from rdtflow.model.inputs import Normalizer, PolicyInputs
from rdtflow.model.language import load_language_table
from rdtflow.paths import CheckpointFile
from rdtflow.progress import progress
from rdtflow.sim.demos import CAMERA, load_reset
from rdtflow.sim.pick_place import TaskSettings
from rdtflow.train.checkpoint import load_policy
from rdtflow.train.hardware import cpu_threads
from rdtflow.train.samples import StepSamples, collate

OPEN_LOOP_BATCH = 256


def held_out_episodes(index_path: Path) -> pd.DataFrame:
    index = pd.read_parquet(index_path)
    return index[index["split"] == "held_out"].sort_values("episode_id").reset_index(drop=True)


def open_loop_rows(episodes: pd.DataFrame, stride: int) -> pd.DataFrame:
    """Every `stride`-th recorded step of each held-out episode, in manifest form."""
    rows = [
        {"episode_id": e.episode_id, "path": e.path, "step": step, "n_steps": e.n_steps, "instruction": e.instruction}
        for e in episodes.itertuples()
        for step in range(int(e.first_moving_step), int(e.n_steps), stride)
    ]
    return pd.DataFrame(rows)


def open_loop_errors(policy: ChunkPolicy, samples: StepSamples, error_units: Normalizer) -> np.ndarray:
    """Squared error (N, H, D) of predicted vs recorded action chunks at N held-out recorded
    steps, in min/max units (each column's training range spans 2), whatever the training
    normalisation, so errors of raw- and min_max-trained runs compare."""
    errors = []
    for start in progress(range(0, len(samples), OPEN_LOOP_BATCH), desc="open loop", unit="batch"):
        raw = collate([samples.sample(i) for i in range(start, min(start + OPEN_LOOP_BATCH, len(samples)))])
        observations = Observations(
            qpos=raw["qpos"],
            frames=raw["frames"],
            frames_valid=raw["frames_valid"],
            instructions=raw["instruction"],
            steps=np.array([row.step for row in samples.rows[start : start + len(raw["qpos"])]]),
        )
        predicted = policy(observations)
        errors.append((error_units.normalize(predicted) - error_units.normalize(raw["action"])) ** 2)
    return np.concatenate(errors)


def dimension_group(state_name: str) -> str:
    """Coarse groups for reporting: arm joints and grippers fail differently."""
    for marker, group in (("gripper", "grippers"), ("arm_joint", "arm joints"), ("eef", "end effector"), ("base", "base")):
        if marker in state_name:
            return group
    return "other"


def open_loop_summary(errors: np.ndarray, episode_ids: list[str], state_names: list[str]) -> dict:
    """Overall, per-episode and per-dimension-group mean squared error."""
    groups = [dimension_group(name) for name in state_names]
    by_episode = pd.Series(errors.mean(axis=(1, 2))).groupby(episode_ids).mean()
    return {
        "open_loop_mse": float(errors.mean()),
        "open_loop_mse_by_group": {
            group: float(errors[..., [g == group for g in groups]].mean()) for group in dict.fromkeys(groups)
        },
        "episode_mse": {episode: float(value) for episode, value in by_episode.items()},
    }


def evaluate(config: dict, policy: ChunkPolicy, stats: dict, step: int | None, index_path: Path,
             out_path: Path) -> dict:
    """Open-loop action error on the held-out episodes' recorded steps, and closed-loop success
    from their initial states when a simulator exists; writes the JSON of docs/formats.md.

    The error is in min/max units of the training actions (each column's range is [-1, 1]),
    whatever the training normalisation, so that checkpoints, the baseline and runs in raw
    or min/max units compare on one scale.
    """
    error_units = Normalizer.min_max(stats, "action")
    episodes = held_out_episodes(index_path)
    simulated = bool(config["demos"]["generate"])  # only the built-in task has a simulator
    outcomes = closed_loop_outcomes(config, policy, episodes) if simulated else [{}] * len(episodes)
    rows = open_loop_rows(episodes, config["eval"]["open_loop_stride"])
    samples = StepSamples(rows, config["data"], config["model"]["pred_horizon"], config["model"]["img_history_size"])
    summary = open_loop_summary(
        open_loop_errors(policy, samples, error_units), list(rows["episode_id"]), config["data"]["state_names"]
    )
    result = {
        "step": step,
        "policy": policy.name,
        "simulator": simulated,
        # Without a simulator there is no success rate: null, never an invented number.
        "success_rate": float(np.mean([o["success"] for o in outcomes])) if simulated else None,
        "n_episodes": len(episodes),
        "open_loop_mse": summary["open_loop_mse"],
        "open_loop_mse_by_group": summary["open_loop_mse_by_group"],
        "episodes": [
            {"episode_id": e, "open_loop_mse": summary["episode_mse"].get(e), **o}
            for e, o in zip(episodes["episode_id"], outcomes)
        ],
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    return result


def closed_loop_outcomes(config: dict, policy: ChunkPolicy, episodes: pd.DataFrame) -> list[dict]:
    """Re-simulate each held-out episode from its stored initial state with `policy`."""
    if camera_slots(config["data"]["cameras"]) != [CAMERA]:
        raise ConfigError(
            f"closed-loop evaluation in the built-in simulator renders only '{CAMERA}' into one image slot; "
            f"data.cameras is {config['data']['cameras']}: set it to [{CAMERA}]"
        )
    return run_closed_loop(
        policy,
        [load_reset(read_attributes(Path(path))) for path in episodes["path"]],
        list(episodes["instruction"]),
        TaskSettings.from_config(config["demos"]["sim"]),
        config["eval"]["execute_horizon"],
        config["model"]["img_history_size"],
    )


def evaluate_checkpoint(config: dict, checkpoint_dir: Path, index_path: Path, language_path: Path, vision_dir: Path,
                        out_path: Path) -> dict:
    torch.set_num_threads(cpu_threads(config["eval"]["threads"]))
    policy, stats = load_policy(checkpoint_dir)
    vision = VisionEncoder.load(vision_dir)
    inputs = PolicyInputs.create(stats, load_language_table(language_path), vision, config["data"]["control_frequency"])
    step = json.loads((checkpoint_dir / CheckpointFile.TRAINER_STATE).read_text())["step"]
    diffusion = DiffusionPolicy(policy, inputs, torch.Generator().manual_seed(config["eval"]["seed"]), checkpoint_dir.name)
    return evaluate(config, diffusion, stats, step, index_path, out_path)


def evaluate_baseline(config: dict, index_path: Path, stats_path: Path, out_path: Path) -> dict:
    """The blind mean-trajectory baseline on the same held-out episodes."""
    index = pd.read_parquet(index_path)
    training = index[index["split"] == "train"]
    trajectories = [read_trajectory(Path(p), config["data"])[0] for p in training["path"]]
    baseline = MeanTrajectoryPolicy.fit(trajectories, config["model"]["pred_horizon"])
    stats = json.loads(Path(stats_path).read_text())
    return evaluate(config, baseline, stats, None, index_path, out_path)
