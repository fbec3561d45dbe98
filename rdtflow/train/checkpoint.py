"""Checkpoint folders: policy weights in RDT's official layout plus what resuming needs.

A checkpoint is written under a temporary name and renamed into place, so a killed job never
leaves a half-written `checkpoint-{step}` that a later stage would trust.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import torch
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from rdtflow.model.policy import RDTConfig, RDTPolicy

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
STATS = "stats.json"
TRAINER_STATE = "trainer_state.json"
TRAIN_LOG = "train_log.csv"
OPTIMIZER = "state/optimizer.pt"
SCHEDULER = "state/scheduler.pt"
EMA_STATE = "state/ema.pt"
EMA_WEIGHTS = "ema/model.safetensors"
PRUNED = "pruned.json"


def _save_weights(policy: RDTPolicy, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().contiguous().cpu() for name, tensor in policy.state_dict().items()}
    save_file(weights, str(path), metadata={"format": "pt"})


def save_checkpoint(
    out_dir: Path,
    policy: RDTPolicy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMAModel | None,
    stats: dict,
    trainer_state: dict,
    log: pd.DataFrame,
) -> None:
    """Write everything to `<out_dir>.tmp`, then rename it to `out_dir` in one step."""
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "state").mkdir(parents=True)
    _save_weights(policy, staging / WEIGHTS)
    if ema is not None:
        torch.save(ema.state_dict(), staging / EMA_STATE)
        ema.store(policy.parameters())
        ema.copy_to(policy.parameters())
        _save_weights(policy, staging / EMA_WEIGHTS)
        ema.restore(policy.parameters())
    policy.config.to_json(staging / CONFIG)
    (staging / STATS).write_text(json.dumps(stats, indent=1))
    (staging / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=1))
    log.to_csv(staging / TRAIN_LOG, index=False)
    torch.save(optimizer.state_dict(), staging / OPTIMIZER)
    torch.save(scheduler.state_dict(), staging / SCHEDULER)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def load_policy(checkpoint_dir: Path) -> tuple[RDTPolicy, dict]:
    """(policy in eval mode, normalisation stats) from a checkpoint folder; the EMA weights
    when the run kept an EMA, since those are the ones meant for acting."""
    if (checkpoint_dir / PRUNED).is_file():
        raise FileNotFoundError(
            f"{checkpoint_dir}: its weights were deleted by train.checkpoints_total_limit after it was evaluated; "
            "to evaluate it again, raise the limit and re-run its training (snakemake --forcerun train)"
        )
    policy = RDTPolicy(RDTConfig.from_json(checkpoint_dir / CONFIG))
    weights = checkpoint_dir / EMA_WEIGHTS if (checkpoint_dir / EMA_WEIGHTS).is_file() else checkpoint_dir / WEIGHTS
    policy.load_state_dict(load_file(str(weights)), strict=True)
    stats = json.loads((checkpoint_dir / STATS).read_text())
    return policy.eval(), stats


def load_training_state(
    checkpoint_dir: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMAModel | None,
) -> dict:
    """Restore optimizer, schedule and EMA in place; returns the trainer state (step, samples seen)."""
    optimizer.load_state_dict(torch.load(checkpoint_dir / OPTIMIZER, weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint_dir / SCHEDULER, weights_only=True))
    if ema is not None:
        if not (checkpoint_dir / EMA_STATE).is_file():
            raise FileNotFoundError(f"{checkpoint_dir} has no EMA state: it was trained without train.ema_decay")
        ema.load_state_dict(torch.load(checkpoint_dir / EMA_STATE, weights_only=True))
    return json.loads((checkpoint_dir / TRAINER_STATE).read_text())
