"""Checkpoint folders: policy weights in RDT's official layout plus what resuming needs.

A checkpoint is written under a temporary name and renamed into place, so a killed job never
leaves a half-written `checkpoint-{step}` that a later stage would trust. Its last file,
`checksums.json`, holds the SHA-256 of every other file, so a checkpoint damaged afterwards
(a truncated copy, a disk error) is recognised before anything resumes from it or
evaluates it. Before writing, free disk space is checked against the checkpoint's size.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import torch
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from rdtflow.errors import BadCheckpoint, MissingFile, RdtflowError
from rdtflow.model.policy import RDTConfig, RDTPolicy
from rdtflow.paths import CheckpointFile as File
from rdtflow.paths import checkpoint_step

# Room for config, stats, logs and safetensors headers beyond the tensors themselves.
DISK_MARGIN_BYTES = 64 * 2**20


class DiskSpaceError(RdtflowError, OSError):
    """Not enough free disk for a checkpoint: stop before writing half of one."""


class CorruptCheckpoint(BadCheckpoint):
    """A checkpoint whose files no longer match the checksums written with it."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> None:
    """checksums.json: every file's SHA-256, so a damaged or truncated copy is refused (checkpoint_problem)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    sums = {str(p.relative_to(folder)): _sha256(p) for p in files}
    (folder / File.CHECKSUMS).write_text(json.dumps(sums, indent=1))


def checkpoint_problem(folder: Path, names: tuple[str, ...] | None = None) -> str | None:
    """Why `folder` cannot be trusted (a file missing or changed since it was written), or None.

    `names` limits the check to those files (evaluation reads only the weights); pruned
    files are not expected. Checkpoints written before checksums existed pass unchecked.
    """
    if not (folder / File.CHECKSUMS).is_file():
        return None if (folder / File.TRAINER_STATE).is_file() else f"{folder}: not a checkpoint (no {File.TRAINER_STATE})"
    sums = json.loads((folder / File.CHECKSUMS).read_text())
    pruned = (folder / File.PRUNED).is_file()
    for name, expected in sums.items():
        if names is not None and name not in names:
            continue
        path = folder / name
        if not path.is_file():
            if pruned:
                continue
            return f"{path} is missing"
        if _sha256(path) != expected:
            return f"{path} does not match its checksum (truncated or damaged)"
    return None


def _tensor_bytes(state: object) -> int:
    """Bytes of every tensor in a (nested) state dict."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_tensor_bytes(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_tensor_bytes(value) for value in state)
    return 0


def ensure_disk_space(folder: Path, needed: int) -> None:
    """Fail with needed vs available before a write that would not fit."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskSpaceError(
            f"not enough disk space for a checkpoint in {folder}: needs about {needed / 2**30:.2f} GiB, "
            f"{free / 2**30:.2f} GiB free; free some space (or lower train.checkpoints_total_limit) and re-run, "
            "training resumes from the last checkpoint"
        )


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
    run_config: dict,
    policy_files: dict[str, str | None],
) -> None:
    """Write everything to `<out_dir>.tmp`, then rename it to `out_dir` in one step.

    `run_config` is the resolved config the checkpoint was trained with, saved beside the
    rdtflow version that trained it, so a checkpoint says how it was made without its run
    folder; `policy_files` are the encoder folders and instruction embeddings it acts with. A
    failed write (disk full, killed job) removes the staging folder and leaves any earlier
    checkpoint as it was.
    """
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    weights = _tensor_bytes(policy.state_dict())
    ensure_disk_space(out_dir.parent, weights * (2 if ema else 1) + _tensor_bytes(optimizer.state_dict())
                      + (_tensor_bytes(ema.state_dict()) if ema else 0) + DISK_MARGIN_BYTES)
    try:
        (staging / "state").mkdir(parents=True)
        _save_weights(policy, staging / File.WEIGHTS)
        if ema is not None:
            torch.save(ema.state_dict(), staging / File.EMA_STATE)
            ema.store(policy.parameters())
            ema.copy_to(policy.parameters())
            _save_weights(policy, staging / File.EMA_WEIGHTS)
            ema.restore(policy.parameters())
        policy.config.to_json(staging / File.CONFIG)
        (staging / File.STATS).write_text(json.dumps(stats, indent=1))
        (staging / File.TRAINER_STATE).write_text(json.dumps(trainer_state, indent=1))
        (staging / File.RUN_CONFIG).write_text(
            json.dumps({"rdtflow_version": version("rdtflow"), "config": run_config, "policy_files": policy_files},
                       indent=1))
        log.to_csv(staging / File.TRAIN_LOG, index=False)
        torch.save(optimizer.state_dict(), staging / File.OPTIMIZER)
        torch.save(scheduler.state_dict(), staging / File.SCHEDULER)
        write_checksums(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def resumable_checkpoint(requested: Path) -> Path | None:
    """`requested` if it is intact, else the latest intact earlier checkpoint beside it (None:
    start from scratch), with a warning naming what was skipped and why.

    Resuming from an earlier checkpoint gives the same result, only later: sample order,
    noise and augmentation are functions of (seed, sample number), not of job history.
    """
    steps = {folder: checkpoint_step(folder) for folder in requested.parent.iterdir() if folder.is_dir()}
    limit = checkpoint_step(requested)
    earlier = (folder for folder, step in steps.items() if step is not None and step <= limit)
    for folder in sorted(earlier, key=steps.get, reverse=True):  # `requested` first
        problem = f"{folder}: its weights were pruned" if (folder / File.PRUNED).is_file() else checkpoint_problem(folder)
        if problem is None:
            return folder
        print(f"WARNING: cannot resume from {folder.name}: {problem}; trying an earlier checkpoint", file=sys.stderr)
    print(f"WARNING: no intact checkpoint before {requested.name}; training from the start", file=sys.stderr)
    return None


def load_checkpoint_weights(checkpoint_dir: Path) -> tuple[RDTPolicy, dict]:
    """(policy in eval mode, normalisation stats) from a checkpoint folder; the EMA weights
    when the run kept an EMA, since those are the ones meant for acting."""
    if (checkpoint_dir / File.PRUNED).is_file():
        raise MissingFile(
            f"{checkpoint_dir}: its weights were deleted by train.checkpoints_total_limit after it was evaluated; "
            "to evaluate it again, raise the limit and re-run its training (snakemake --forcerun train)"
        )
    kept_ema = (checkpoint_dir / File.EMA_WEIGHTS).is_file()
    weights = checkpoint_dir / (File.EMA_WEIGHTS if kept_ema else File.WEIGHTS)
    problem = checkpoint_problem(checkpoint_dir, (File.CONFIG, File.STATS, str(weights.relative_to(checkpoint_dir))))
    if problem:
        raise CorruptCheckpoint(f"{problem}; delete {checkpoint_dir} and re-run the workflow to train it again")
    policy = RDTPolicy(RDTConfig.from_json(checkpoint_dir / File.CONFIG))
    policy.load_state_dict(load_file(str(weights)), strict=True)
    stats = json.loads((checkpoint_dir / File.STATS).read_text())
    return policy.eval(), stats


def load_training_state(
    checkpoint_dir: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMAModel | None,
) -> dict:
    """Restore optimizer, schedule and EMA in place; returns the trainer state (step, samples seen)."""
    optimizer.load_state_dict(torch.load(checkpoint_dir / File.OPTIMIZER, weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint_dir / File.SCHEDULER, weights_only=True))
    if ema is not None:
        if not (checkpoint_dir / File.EMA_STATE).is_file():
            raise MissingFile(f"{checkpoint_dir} has no EMA state: it was trained without train.ema_decay")
        ema.load_state_dict(torch.load(checkpoint_dir / File.EMA_STATE, weights_only=True))
    return json.loads((checkpoint_dir / File.TRAINER_STATE).read_text())
