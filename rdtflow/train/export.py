"""Stage export: the checkpoint another run starts from, in the official RDT layout.

A run whose model.pretrained names this one (rdtflow.pretraining) reads the folder this
writes exactly as it would read a user's RDT-1B folder. `best` is picked as retention picks the
checkpoint it always keeps: highest held-out success, then lowest open-loop error, then the
later step. export.json says which checkpoint it was.
"""

from __future__ import annotations

import json
from pathlib import Path

from rdtflow.errors import RdtflowError
from rdtflow.model.weights import export_checkpoint
from rdtflow.paths import CheckpointFile, checkpoint_step
from rdtflow.train.checkpoint import write_checksums
from rdtflow.train.retention import best_evaluated_step

EXPORT_RECORD = "export.json"


def export_run_checkpoint(checkpoint_dirs: list[Path], eval_files: list[Path], out_dir: Path) -> dict:
    """Export the one checkpoint given, or with evaluations the best of them; returns the record."""
    folders = {checkpoint_step(folder): Path(folder) for folder in checkpoint_dirs}
    if eval_files:
        step = best_evaluated_step([json.loads(Path(path).read_text()) for path in eval_files])
        chosen_by = "best held-out success of the evaluated checkpoints"
    else:
        [step] = folders
        chosen_by = "named"
    source = folders[step]
    if not (source / CheckpointFile.WEIGHTS).is_file():
        raise RdtflowError(f"{source} has no weights ({CheckpointFile.PRUNED}: retention deleted them); export a "
                           "checkpoint that train.checkpoints_total_limit keeps")
    export_checkpoint(source, out_dir)
    record = {"step": step, "source": str(source), "chosen_by": chosen_by,
              "ema": (out_dir / CheckpointFile.EMA_WEIGHTS).is_file()}
    (out_dir / EXPORT_RECORD).write_text(json.dumps(record, indent=1))
    write_checksums(out_dir)  # evaluated as a checkpoint is (eval.transfer), it is checked as one
    return record
