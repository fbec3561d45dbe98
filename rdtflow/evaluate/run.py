"""Evaluate a checkpoint (or the blind baseline) on the held-out episodes; write its JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rdtflow.data.cameras import camera_slots, recorded_cameras
from rdtflow.data.episode import episode_cameras, read_attributes, read_trajectory
from rdtflow.data.frames import JpegCodec
from rdtflow.evaluate.closed_loop import Rollouts, run_closed_loop
from rdtflow.evaluate.inference import load_diffusion_policy
from rdtflow.evaluate.policies import (
    ChunkPolicy,
    MeanTrajectoryPolicy,
    Observations,
)
from rdtflow.evaluate.stats import rate_with_interval
from rdtflow.evaluate.videos import choose_episodes, side_by_side, write_video
from rdtflow.machine import cpu_threads
from rdtflow.model.inputs import Normalizer
from rdtflow.paths import CheckpointFile
from rdtflow.progress import progress
from rdtflow.sim.registry import build_env, reset_states
from rdtflow.train.samples import StepSamples, collate
from rdtflow.train.tracking import log_evaluation

OPEN_LOOP_BATCH = 256


def held_out_episodes(index_path: Path) -> pd.DataFrame:
    index = pd.read_parquet(index_path)
    return index[index["split"] == "held_out"].sort_values("episode_id").reset_index(drop=True)


def open_loop_rows(episodes: pd.DataFrame, stride: int) -> pd.DataFrame:
    """Every `stride`-th recorded step of each held-out episode, in manifest form."""
    rows = [
        {"episode_id": e.episode_id, "path": e.path, "group": e.group, "step": step, "n_steps": e.n_steps,
         "instruction": e.instruction}
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


def evaluate(config: dict, policy: ChunkPolicy, stats: dict, step: int | None, index_path: Path, out_path: Path,
             video_dir: Path | None) -> dict:
    """Open-loop action error on the held-out episodes' recorded steps, and closed-loop success
    from their initial states when the config names a simulator; writes the JSON of
    docs/formats.md and the rollout videos.

    The error is in min/max units of the training actions (each column's range is [-1, 1]),
    whatever the training normalisation, so that checkpoints, the baseline and runs in raw
    or min/max units compare on one scale. Without `video_dir` nothing is filmed.
    """
    started = time.perf_counter()
    error_units = Normalizer.min_max(stats, "action")
    episodes = held_out_episodes(index_path)
    sim_env = config["sim"]["env"]
    rollouts = closed_loop_rollouts(config, policy, episodes) if sim_env is not None else None
    rows = open_loop_rows(episodes, config["eval"]["open_loop_stride"])
    samples = StepSamples(rows, config["data"], config["model"]["pred_horizon"], config["model"]["img_history_size"])
    summary = open_loop_summary(
        open_loop_errors(policy, samples, error_units), list(rows["episode_id"]), config["data"]["state_names"]
    )
    videos = []
    if video_dir is not None:
        video_dir.mkdir(parents=True, exist_ok=True)  # the rule's output, even with nothing to film
        if rollouts is not None:
            videos = write_rollout_videos(config, episodes, rollouts, video_dir)
    outcomes = rollouts.outcomes if rollouts is not None else [{}] * len(episodes)
    result = {
        "step": step,
        "policy": policy.name,
        "simulator": sim_env,
        "frame_codec": config["eval"]["frame_codec"] if rollouts is not None else None,
        "n_episodes": len(episodes),
        # Without a simulator there is no success rate: null, never an invented number.
        **(closed_loop_summary(rollouts) if rollouts is not None else {"success_rate": None}),
        "open_loop_mse": summary["open_loop_mse"],
        "open_loop_mse_by_group": summary["open_loop_mse_by_group"],
        "videos": videos,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "episodes": [
            {"episode_id": e, "task": t, "instruction": i, "open_loop_mse": summary["episode_mse"].get(e), **o}
            for e, t, i, o in zip(episodes["episode_id"], episodes["task"], episodes["instruction"], outcomes)
        ],
    }
    for key in ("task", "instruction"):
        result[f"by_{key}"] = summary_by(result["episodes"], key, closed_loop=rollouts is not None)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    return result


def summary_by(episodes: list[dict], key: str, closed_loop: bool) -> dict[str, dict]:
    """Per value of `key` (the task: a folder of the demos; or the instruction): its held-out
    count, success with its interval where a simulator ran, open-loop error, and where the
    simulator says so, where each block was released. A run over several tasks can hide one
    that fails, and a fine-tune can forget the tasks it was pretrained on."""
    groups: dict[str, list[dict]] = {}
    for episode in episodes:
        groups.setdefault(episode[key], []).append(episode)
    summary = {}
    for value, members in sorted(groups.items()):
        summary[value] = {
            "n_episodes": len(members),
            "success": rate_with_interval([e["success"] for e in members]) if closed_loop else None,
            "open_loop_mse": float(np.mean([e["open_loop_mse"] for e in members])),  # every one has a recorded step
        }
        if any("released_at" in e for e in members):
            places = pd.Series([e.get("released_at") or "never" for e in members]).value_counts()
            summary[value]["released_at"] = {place: int(count) for place, count in places.items()}
    return summary


def closed_loop_summary(rollouts: Rollouts) -> dict:
    """Success, held-at-end and every stage rate, each with its Wilson 95% interval, and the speed."""
    outcomes = rollouts.outcomes
    success = rate_with_interval([o["success"] for o in outcomes])
    held = rate_with_interval([o["held_at_end"] for o in outcomes])
    return {
        "success_rate": success["rate"],
        "success_interval": success["interval"],
        "held_at_end_rate": held["rate"],
        "held_at_end_interval": held["interval"],
        "stage_rates": {name: rate_with_interval([o["level"] >= level for o in outcomes])
                        for level, name in enumerate(rollouts.stages, start=1)},
        "closed_loop_seconds": round(rollouts.seconds, 2),
        "sim_steps_per_s": round(rollouts.sim_steps / max(rollouts.stepping_seconds, 1e-9), 1),
    }


def closed_loop_rollouts(config: dict, policy: ChunkPolicy, episodes: pd.DataFrame) -> Rollouts:
    """Re-simulate each held-out episode from its stored initial state with `policy`."""
    cameras = recorded_cameras(config["data"]["cameras"])
    states = reset_states([read_attributes(Path(e.path), e.group) for e in episodes.itertuples()],
                          [f"{e.path}:{e.group}" if e.group else e.path for e in episodes.itertuples()], config["sim"]["env"])
    codecs = recorded_codecs(config["data"], episodes.iloc[0]) if config["eval"]["frame_codec"] == "recorded" else None
    env = build_env(config["sim"], cameras, workers=cpu_threads(config["eval"]["threads"]))
    try:
        return run_closed_loop(
            policy, env, states, list(episodes["instruction"]), camera_slots(config["data"]["cameras"]),
            config["eval"]["execute_horizon"], config["model"]["img_history_size"],
            video_camera=cameras[0] if config["eval"]["videos"] else None, codecs=codecs,
        )
    finally:
        env.close()


def recorded_codecs(data_cfg: dict, episode: pd.Series) -> dict[str, JpegCodec]:
    """Each camera's JPEG settings as a held-out episode recorded them; cameras stored as raw
    pixels have none, and the policy sees those as the simulator renders them."""
    with episode_cameras(Path(episode["path"]), data_cfg, episode["group"]) as cameras:
        codecs = {camera: frames.codec() for camera, frames in cameras.items()}
    return {camera: codec for camera, codec in codecs.items() if codec is not None}


def write_rollout_videos(config: dict, episodes: pd.DataFrame, rollouts: Rollouts, video_dir: Path) -> list[dict]:
    """eval.videos episodes (failures first): the policy's view beside the expert's recording."""
    camera = recorded_cameras(config["data"]["cameras"])[0]
    written = []
    for index in choose_episodes(rollouts.outcomes, config["eval"]["videos"]):
        episode = episodes.iloc[index]
        with episode_cameras(Path(episode["path"]), config["data"], episode["group"]) as cameras:
            expert = [cameras[camera].jpeg(step) for step in range(len(cameras[camera]))]
        path = video_dir / f"{episode['episode_id'].replace('/', '__')}.mp4"
        write_video(path, side_by_side(rollouts.recordings[index], expert), fps=config["data"]["control_frequency"])
        written.append({"episode_id": episode["episode_id"], "file": path.name, "success": rollouts.outcomes[index]["success"],
                        "bytes": path.stat().st_size})
    return written


def evaluate_checkpoint(config: dict, checkpoint_dir: Path, index_path: Path, language_path: Path, vision_dir: Path,
                        out_path: Path, video_dir: Path, tracking_out: Path | None = None) -> dict:
    """One checkpoint, run as `rdtflow.load_policy` runs it: on the GPU where the hardware profile
    has one; its rates also go to train.report_to's trackers in `tracking_out`, where given."""
    torch.set_num_threads(cpu_threads(config["eval"]["threads"]))
    diffusion, stats = load_diffusion_policy(checkpoint_dir, vision_dir, language_path,
                                             config["data"]["control_frequency"], config["eval"]["seed"],
                                             config["hardware"])
    step = json.loads((checkpoint_dir / CheckpointFile.TRAINER_STATE).read_text())["step"]
    result = evaluate(config, diffusion, stats, step, index_path, out_path, video_dir)
    if tracking_out is not None:
        log_evaluation(config, tracking_out, step, result)
    return result


def evaluate_transfer(config: dict, start_dir: Path, final_dir: Path, index_path: Path, language_path: Path,
                      pretraining_index_path: Path, pretraining_language_path: Path, vision_dir: Path,
                      start_own_out: Path, start_pretraining_out: Path, final_pretraining_out: Path) -> dict[str, dict]:
    """eval.transfer: the starting weights (the pretraining's export, step 0) on this run's
    held-out episodes, and the starting weights and final checkpoint on the pretraining's,
    each with the instruction embeddings of the episodes it meets (both runs share the text
    encoder). Nothing is filmed."""
    torch.set_num_threads(cpu_threads(config["eval"]["threads"]))
    config = {**config, "eval": {**config["eval"], "videos": 0}}
    final_step = json.loads((final_dir / CheckpointFile.TRAINER_STATE).read_text())["step"]
    results = {}
    for name, weights, step, index, language, out in (
            ("start-own", start_dir, 0, index_path, language_path, start_own_out),
            ("start-pretraining", start_dir, 0, pretraining_index_path, pretraining_language_path, start_pretraining_out),
            ("final-pretraining", final_dir, final_step, pretraining_index_path, pretraining_language_path,
             final_pretraining_out)):
        policy, stats = load_diffusion_policy(weights, vision_dir, language, config["data"]["control_frequency"],
                                              config["eval"]["seed"], config["hardware"])
        results[name] = evaluate(config, policy, stats, step, index, out, None)
    return results


def evaluate_baseline(config: dict, index_path: Path, stats_path: Path, out_path: Path, video_dir: Path) -> dict:
    """The blind mean-trajectory baseline on the same held-out episodes."""
    index = pd.read_parquet(index_path)
    training = index[index["split"] == "train"]
    trajectories = [read_trajectory(Path(e.path), config["data"], e.group)[0] for e in training.itertuples()]
    baseline = MeanTrajectoryPolicy.fit(trajectories, config["model"]["pred_horizon"])
    stats = json.loads(Path(stats_path).read_text())
    return evaluate(config, baseline, stats, None, index_path, out_path, video_dir)
