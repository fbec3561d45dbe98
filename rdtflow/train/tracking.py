"""Training metrics where researchers look: TensorBoard and Weights & Biases (train.report_to),
through accelerate's trackers.

Every training job writes its period's steps, and every evaluation job its checkpoint's
rates, into a folder of its own (RunPaths.tracking), so no job touches another's files and a
killed job leaves nothing half-written behind. TensorBoard reads them all with
`tensorboard --logdir results/RUN/tracking`. In W&B each job is a run of its own, all of an
rdtflow run's jobs in one group (wandb_group): a W&B run's steps only go forward, so periods,
evaluations and retrained periods must not share one run's history.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from rdtflow.errors import RdtflowError
from rdtflow.paths import RunPaths

TRACKED_METRICS = ("loss", "lr", "grad_norm", "samples_per_s")
"""What every optimizer step logs, as train/<name> (the columns of train_log.csv)."""
TRACKED_SECTIONS = ("model", "train", "hardware")
"""The settings recorded with each tracker run (as TensorBoard hparams and W&B config)."""


def wandb_group(config: dict) -> str:
    """The W&B group of an rdtflow run's jobs: its name and a hash of its results folder."""
    root = RunPaths.from_config(config).root.resolve()
    return f"{config['run']}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"


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
    """Open the trackers of one job (`tracking_out` is named after it): W&B offline unless
    WANDB_MODE says otherwise. A tracker whose package is missing where the job runs fails the
    job, where accelerate would drop it silently."""
    tracking_out = Path(tracking_out)
    tracking_out.mkdir(parents=True, exist_ok=True)
    job = f"{tracking_out.parent.name} {tracking_out.name}"  # "train checkpoint-500"
    wandb = {"dir": str(tracking_out), "mode": os.environ.get("WANDB_MODE", "offline"), "group": wandb_group(config),
             "job_type": tracking_out.parent.name, "name": f"{config['run']} {job}"}
    accelerator.init_trackers(config["run"], config=tracked_settings(config), init_kwargs={"wandb": wandb})
    opened = {tracker.name for tracker in accelerator.trackers}
    missing = [name for name in config["train"]["report_to"] if name not in opened]
    if accelerator.is_main_process and missing:
        raise RdtflowError(f"train.report_to names {', '.join(missing)}, which this job's Python cannot import: "
                           "pip install -e '.[tracking]' where the jobs run")


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
