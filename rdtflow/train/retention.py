"""Stage retention: train.checkpoints_total_limit really deletes old checkpoints' weights.

RDT's `--checkpoints_total_limit` deletes nothing (accelerate prunes only with its automatic
checkpoint naming), so 100k-step runs fill disks. Here a retention job follows each
checkpoint's evaluation, as a step of its own in the workflow: of the checkpoints evaluated
by then, those beyond the limit lose their weights and optimizer state. Kept always: the best
by held-out success rate (the one to deploy), the latest (the next training period resumes
from it), and any checkpoint not evaluated yet.

A pruned folder keeps its small files (config, stats, trainer state, training log, so the
report still shows the whole loss curve) plus `pruned.json`. Nothing here touches a
timestamp: Snakemake dates a folder it made by the `.snakemake_timestamp` file it puts in it,
which pruning leaves alone, so the jobs that read a pruned checkpoint do not run again.
"""

from __future__ import annotations

import json
from pathlib import Path

from rdtflow.paths import CheckpointFile, checkpoint_step


def _ranking_key(result: dict) -> tuple:
    """Best first: higher success, then lower open-loop error, then the later step."""
    success = result["success_rate"] if result["success_rate"] is not None else -1.0
    return (-success, result["open_loop_mse"], -result["step"])


def best_evaluated_step(evaluations: list[dict]) -> int:
    """The step of the best evaluation: retention always keeps it, export best writes it."""
    return min(evaluations, key=_ranking_key)["step"]


def checkpoints_to_prune(checkpoint_dirs: list[Path], eval_files: list[Path], limit: int) -> list[int]:
    """Steps whose weights can go: evaluated, not the best, not the latest, beyond the limit."""
    alive = {checkpoint_step(folder): folder for folder in checkpoint_dirs if (folder / CheckpointFile.WEIGHTS).is_file()}
    if len(alive) <= limit:
        return []
    evaluated = {result["step"]: result for result in (json.loads(path.read_text()) for path in eval_files if path.is_file())}
    evaluated = {step: result for step, result in evaluated.items() if step in alive}
    keep = {max(alive)} | {step for step in alive if step not in evaluated}
    if evaluated:
        keep.add(best_evaluated_step(list(evaluated.values())))
    for step in sorted(alive, reverse=True):  # then the most recent, up to the limit
        if len(keep) >= limit:
            break
        keep.add(step)
    return sorted(set(alive) - keep)


def prune_checkpoint(folder: Path, reason: str) -> None:
    """Delete the large files of one checkpoint and record why."""
    for name in CheckpointFile.LARGE:
        (folder / name).unlink(missing_ok=True)
    for sub in {Path(name).parent for name in CheckpointFile.LARGE} - {Path(".")}:
        if (folder / sub).is_dir() and not any((folder / sub).iterdir()):
            (folder / sub).rmdir()
    (folder / CheckpointFile.PRUNED).write_text(json.dumps({"reason": reason}, indent=1))


def apply_retention(limit: int | None, step: int, checkpoint_dirs: list[Path], eval_files: list[Path],
                    record_out: Path) -> list[int]:
    """Prune what the limit allows once checkpoint `step` is evaluated; write what was done to
    `record_out` and return the pruned steps."""
    pruned = checkpoints_to_prune(checkpoint_dirs, eval_files, limit) if limit is not None else []
    folders = {checkpoint_step(folder): folder for folder in checkpoint_dirs}
    for pruned_step in pruned:
        prune_checkpoint(folders[pruned_step], f"train.checkpoints_total_limit {limit}: evaluated, not best or latest")
        print(f"checkpoints_total_limit {limit}: deleted the weights of checkpoint-{pruned_step} (evaluation kept)")
    kept = [s for s, folder in sorted(folders.items()) if (folder / CheckpointFile.WEIGHTS).is_file()]
    record_out.parent.mkdir(parents=True, exist_ok=True)
    record_out.write_text(json.dumps({"step": step, "limit": limit, "pruned": pruned, "kept": kept}, indent=1))
    return pruned
