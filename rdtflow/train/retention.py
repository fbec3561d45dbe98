"""train.checkpoints_total_limit: delete old checkpoints' weights once they are evaluated.

RDT's `--checkpoints_total_limit` deletes nothing (accelerate prunes only with its automatic
checkpoint naming), so 100k-step runs fill disks. Here, after each evaluation, checkpoints
beyond the limit lose their weights and optimizer state. Kept always: the best by held-out
success rate (the one to deploy) and the latest (the next training period resumes from it),
and any checkpoint not evaluated yet.

A pruned folder keeps its small files (config, stats, trainer state, training log, so the
report still shows the whole loss curve) plus `pruned.json`, and its modification time is
restored, so Snakemake does not take the pruning for a change and re-run later stages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rdtflow.paths import RunPaths
from rdtflow.train.checkpoint import EMA_STATE, EMA_WEIGHTS, OPTIMIZER, PRUNED, SCHEDULER, WEIGHTS

LARGE_FILES = (WEIGHTS, EMA_WEIGHTS, OPTIMIZER, SCHEDULER, EMA_STATE)


def _ranking_key(result: dict) -> tuple:
    """Best first: higher success, then lower open-loop error, then the later step."""
    success = result["success_rate"] if result["success_rate"] is not None else -1.0
    return (-success, result["open_loop_mse"], -result["step"])


def checkpoints_to_prune(paths: RunPaths, steps: list[int], limit: int) -> list[int]:
    """Steps whose weights can go: evaluated, not the best, not the latest, beyond the limit."""
    alive = [s for s in steps if (paths.checkpoint(s) / WEIGHTS).is_file()]
    if len(alive) <= limit:
        return []
    evaluated = {s: json.loads(paths.evaluation(s).read_text()) for s in alive if paths.evaluation(s).is_file()}
    keep = {max(alive)} | {s for s in alive if s not in evaluated}
    if evaluated:
        keep.add(min(evaluated.values(), key=_ranking_key)["step"])
    for step in sorted(alive, reverse=True):  # then the most recent, up to the limit
        if len(keep) >= limit:
            break
        keep.add(step)
    return sorted(set(alive) - keep)


def prune_checkpoint(folder: Path, reason: str) -> None:
    """Delete the large files of one checkpoint, leaving its folder's mtime as it was."""
    stat = folder.stat()
    for name in LARGE_FILES:
        (folder / name).unlink(missing_ok=True)
    for sub in ("ema", "state"):
        if (folder / sub).is_dir() and not any((folder / sub).iterdir()):
            (folder / sub).rmdir()
    (folder / PRUNED).write_text(json.dumps({"reason": reason}, indent=1))
    os.utime(folder, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def apply_retention(config: dict, steps: list[int]) -> list[int]:
    """Prune what the limit allows; returns the pruned steps."""
    limit = config["train"]["checkpoints_total_limit"]
    if limit is None:
        return []
    paths = RunPaths.from_config(config)
    pruned = checkpoints_to_prune(paths, steps, limit)
    for step in pruned:
        prune_checkpoint(paths.checkpoint(step), f"train.checkpoints_total_limit {limit}: evaluated, not best or latest")
        print(f"checkpoints_total_limit {limit}: deleted the weights of checkpoint-{step} (evaluation kept)")
    return pruned
