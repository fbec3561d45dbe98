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

from rdtflow.paths import CheckpointFile

SUCCESS_NOT_MEASURED = "no simulator: success rate not measured"
"""Shown wherever a success rate is null: offline data has no simulator to roll out in."""

EVALUATION_COLUMNS = ["step", "success_rate", "success_low", "success_high", "n_episodes", "open_loop_mse"]
SPLITS = ["train", "held_out", "rejected"]


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
