"""Training metrics where researchers look: TensorBoard and Weights & Biases (train.report_to),
through accelerate's trackers.

Every training job writes its period's steps, and every evaluation job its checkpoint's
rates, into a folder of its own (RunPaths.tracking), so no job touches another's files and a
killed job leaves nothing half-written behind. TensorBoard reads them all with
`tensorboard --logdir results/RUN/tracking`. W&B gets one run id per rdtflow run, so the
jobs' offline runs join one W&B run when synced (`wandb sync results/RUN/tracking/*/*/wandb/offline-run-*`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from rdtflow.paths import RunPaths

TRACKED_METRICS = ("loss", "lr", "grad_norm", "samples_per_s")
"""What every optimizer step logs, as train/<name> (the columns of train_log.csv)."""
TRACKED_SECTIONS = ("model", "train", "hardware")
"""The settings recorded with each tracker run (as TensorBoard hparams and W&B config)."""


def wandb_run_id(config: dict) -> str:
    """One W&B run per rdtflow run (its results folder), whatever job logs to it."""
    return hashlib.sha256(str(RunPaths.from_config(config).root.resolve()).encode()).hexdigest()[:16]


def _scalar(value: Any) -> bool | int | float | str:
    """A config value as a tracker's hyperparameter table takes it (no None, lists or dicts)."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def tracked_settings(config: dict) -> dict[str, bool | int | float | str]:
    """The run's model, training and hardware settings as flat `section.key` hyperparameters."""
    def flatten(prefix: str, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return {name: item for key, child in value.items() for name, item in flatten(f"{prefix}.{key}", child).items()}
        return {prefix: _scalar(value)}

    return {name: value for section in TRACKED_SECTIONS if section in config
            for name, value in flatten(section, config[section]).items()}


def tracking_accelerator_options(config: dict, tracking_out: Path | None) -> dict[str, Any]:
    """Accelerator(...) arguments that send its logs to train.report_to's trackers in `tracking_out`."""
    if tracking_out is None:
        return {}
    return {"log_with": list(config["train"]["report_to"]),
            "project_config": ProjectConfiguration(project_dir=str(tracking_out), logging_dir=str(tracking_out))}


def start_trackers(accelerator: Accelerator, config: dict, tracking_out: Path) -> None:
    """Open the trackers of one job: W&B offline unless WANDB_MODE says otherwise."""
    Path(tracking_out).mkdir(parents=True, exist_ok=True)
    wandb = {"dir": str(tracking_out), "mode": os.environ.get("WANDB_MODE", "offline"), "id": wandb_run_id(config),
             "resume": "allow", "name": config["run"]}
    accelerator.init_trackers(config["run"], config=tracked_settings(config), init_kwargs={"wandb": wandb})


def log_evaluation(config: dict, tracking_out: Path, step: int, result: dict) -> None:
    """A checkpoint's success, held-at-end, stage rates and open-loop error, at its step."""
    accelerator = Accelerator(cpu=True, **tracking_accelerator_options(config, tracking_out))
    start_trackers(accelerator, config, tracking_out)
    values = {"eval/open_loop_mse": result["open_loop_mse"]}
    if result["success_rate"] is not None:
        values |= {"eval/success_rate": result["success_rate"], "eval/held_at_end_rate": result["held_at_end_rate"],
                   **{f"eval/stage/{name}": rate["rate"] for name, rate in result["stage_rates"].items()}}
    accelerator.log(values, step=step)
    accelerator.end_training()
