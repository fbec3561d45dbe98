"""Read a run's training and evaluation outputs into plain tables and dicts.

The report only ever needs a handful of columns, so everything is reduced here to small
DataFrames and dicts; the rendering modules never touch file formats (docs/formats.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from rdtflow.data.episode import episode_cameras
from rdtflow.paths import CheckpointFile, checkpoint_step

SUCCESS_NOT_MEASURED = "no simulator: success rate not measured"
"""Shown wherever a success rate is null: offline data has no simulator to roll out in."""

EVALUATION_COLUMNS = ["step", "success_rate", "success_low", "success_high", "n_episodes", "open_loop_mse"]
SPLITS = ["train", "held_out", "unused", "rejected"]


def is_missing(value: Any) -> bool:
    """True for JSON null and for the NaN pandas turns it into, so both read as 'not measured'."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def read_json(path: Path) -> dict[str, Any]:
    """Parse one JSON file written by another stage (validation, evaluation, baseline)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _checkpoint_step(checkpoint_dir: Path) -> int:
    """Optimizer step a checkpoint was saved at, from its trainer_state.json (not its folder name)."""
    return int(read_json(Path(checkpoint_dir) / CheckpointFile.TRAINER_STATE)["step"])


def load_training_log(checkpoint_dirs: list[Path]) -> pd.DataFrame:
    """Concatenate every checkpoint's train_log.csv into one log ordered by optimizer step.

    Each training job logs only its own period; a resumed period may re-log a step, in which
    case the later checkpoint's row wins because that run produced the weights that follow.
    """
    chronological = sorted(checkpoint_dirs, key=_checkpoint_step)
    periods = [pd.read_csv(Path(directory) / CheckpointFile.TRAIN_LOG) for directory in chronological]
    log = pd.concat(periods, ignore_index=True)
    log = log.sort_values("step", kind="stable").drop_duplicates(subset="step", keep="last")
    return log.reset_index(drop=True)


def evaluations_frame(evaluations: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per evaluated checkpoint, ordered by step; a null success rate becomes NaN."""
    rows = [{column: evaluation.get(column) for column in EVALUATION_COLUMNS} for evaluation in evaluations]
    for row, evaluation in zip(rows, evaluations):
        row["success_low"], row["success_high"] = evaluation.get("success_interval") or (None, None)
    frame = pd.DataFrame(rows, columns=EVALUATION_COLUMNS)
    frame = frame.astype({"step": int, "n_episodes": int, "success_rate": float, "success_low": float,
                          "success_high": float, "open_loop_mse": float})
    return frame.sort_values("step").reset_index(drop=True)


def stage_rates_frame(evaluations: list[dict[str, Any]]) -> pd.DataFrame:
    """Rate of each task stage reached per checkpoint: one column per stage, indexed by step
    (no columns for evaluations without a simulator)."""
    rows = {evaluation["step"]: {stage: rate["rate"] for stage, rate in (evaluation.get("stage_rates") or {}).items()}
            for evaluation in evaluations}
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def load_evaluations(eval_files: list[Path]) -> pd.DataFrame:
    """Read eval/checkpoint-{step}.json files into the per-checkpoint table of the report."""
    return evaluations_frame([read_json(path) for path in eval_files])


def _checkpoint_rank(row: dict[str, Any]) -> tuple[bool, float, float, int]:
    """Sort key: measured success first, then higher success, lower open-loop MSE, later step.

    A checkpoint without a measured success rate can never outrank one with it, and when no
    success rate is measured at all the open-loop MSE alone decides.
    """
    success_measured = not is_missing(row["success_rate"])
    success = row["success_rate"] if success_measured else 0.0
    mse = math.inf if is_missing(row["open_loop_mse"]) else row["open_loop_mse"]
    return success_measured, success, -mse, row["step"]


def best_checkpoint(evals: pd.DataFrame) -> dict[str, Any]:
    """The checkpoint to ship: highest success rate, ties -> lowest open-loop MSE, then latest step.

    Missing numbers come back as None (not NaN) so callers can test them plainly.
    """
    if evals.empty:
        raise ValueError("no evaluated checkpoints to choose from")
    best = max(evals.to_dict("records"), key=_checkpoint_rank)
    return {key: None if is_missing(value) else value for key, value in best.items()}


def load_split_counts(index_parquet: Path) -> dict[str, int]:
    """Episodes per split in data/index.parquet, every split present even when empty."""
    splits = pd.read_parquet(index_parquet, columns=["split"])["split"]
    counts = splits.value_counts()
    return {split: int(counts.get(split, 0)) for split in SPLITS}


def load_episode_lengths(index_parquet: Path) -> pd.DataFrame:
    """Steps of every trained and held-out episode with its split, for the length histogram."""
    index = pd.read_parquet(index_parquet, columns=["episode_id", "split", "n_steps"])
    return index.loc[index["split"].isin(["train", "held_out"])].reset_index(drop=True)


def load_benchmarks(benchmark_files: list[Path]) -> pd.DataFrame:
    """One row per job from Snakemake's benchmark TSVs (benchmarks/{stage}.tsv or
    benchmarks/{stage}/checkpoint-{step}.tsv): stage, step, wall seconds, peak resident MB.
    Snakemake writes one for every job it runs; a stage run by hand (`rdtflow STAGE --config`)
    leaves none, and its time is then simply not shown."""
    rows = []
    for path in (Path(file) for file in benchmark_files if Path(file).is_file()):
        record = pd.read_csv(path, sep="\t", na_values=["-", "NA"]).iloc[-1]
        step = checkpoint_step(Path(path.stem))
        rows.append({"stage": path.stem if step is None else path.parent.name, "step": step,
                     "seconds": float(record["s"]), "max_rss_mb": pd.to_numeric(record.get("max_rss"), errors="coerce")})
    return pd.DataFrame(rows, columns=["stage", "step", "seconds", "max_rss_mb"])


def episode_grid(evaluations: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Held-out episodes x evaluated policies: (episode ids, and per policy its step and each
    episode's outcome by id). Every checkpoint meets the same initial states, so a row shows
    when an initial state starts or stops succeeding."""
    episode_ids = sorted({episode["episode_id"] for evaluation in evaluations for episode in evaluation["episodes"]})
    columns = [{"step": evaluation["step"], "policy": evaluation.get("policy"),
                "outcomes": {episode["episode_id"]: episode for episode in evaluation["episodes"]}}
               for evaluation in evaluations]
    return episode_ids, columns


def thumbnail_frames(index_parquet: Path, data_cfg: dict, count: int = 3) -> tuple[str, dict[str, list[bytes]]]:
    """(episode id, camera -> JPEG frames) of `count` evenly spaced frames of one held-out episode
    (a training one where none is held out), so a reader sees what the policy sees."""
    index = pd.read_parquet(index_parquet, columns=["episode_id", "path", "group", "split", "n_steps"])
    valid = index.loc[index["split"] != "rejected"].sort_values(["split", "episode_id"])  # held_out sorts first
    if valid.empty:
        return "", {}
    episode = valid.iloc[0]
    steps = sorted({round(i * (int(episode["n_steps"]) - 1) / max(count - 1, 1)) for i in range(count)})
    with episode_cameras(Path(episode["path"]), data_cfg, episode["group"]) as cameras:
        frames = {camera: [camera_frames.jpeg(step) for step in steps] for camera, camera_frames in cameras.items()}
    return str(episode["episode_id"]), frames
