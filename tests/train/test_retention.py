"""train.checkpoints_total_limit really deletes, keeping the best and the latest."""

from __future__ import annotations

import json
import os

import pytest

from rdtflow.paths import CheckpointFile, RunPaths
from rdtflow.train.checkpoint import load_policy
from rdtflow.train.retention import apply_retention

SUCCESS = {100: 0.2, 200: 0.9, 300: 0.5, 400: 0.6, 500: 0.7}


def fake_run(tmp_path, evaluated=(100, 200, 300, 400, 500)):
    paths = RunPaths(tmp_path / "r")
    for step, success in SUCCESS.items():
        folder = paths.checkpoint(step)
        (folder / "state").mkdir(parents=True)
        (folder / CheckpointFile.WEIGHTS).write_bytes(b"w" * 100)
        (folder / "state" / "optimizer.pt").write_bytes(b"o" * 100)
        (folder / "train_log.csv").write_text("step,loss\n")
        os.utime(folder, ns=(step * 10**9, step * 10**9))
        if step in evaluated:
            paths.evaluation(step).parent.mkdir(parents=True, exist_ok=True)
            paths.evaluation(step).write_text(json.dumps({"step": step, "success_rate": success, "open_loop_mse": 0.1}))
    return paths


def retain(paths: RunPaths, limit: int | None, step: int = 500) -> list[int]:
    """Retention once checkpoint `step` is evaluated, on the files its job declares."""
    steps = [s for s in SUCCESS if s <= step]
    return apply_retention(limit, step, [paths.checkpoint(s) for s in steps], [paths.evaluation(s) for s in steps],
                           paths.retention(step))


def test_keeps_best_and_latest_and_deletes_the_rest(tmp_path):
    paths = fake_run(tmp_path)
    assert retain(paths, 2) == [100, 300, 400]
    alive = [s for s in SUCCESS if (paths.checkpoint(s) / CheckpointFile.WEIGHTS).is_file()]
    assert alive == [200, 500]  # best (90%) and latest
    for step in (100, 300, 400):
        folder = paths.checkpoint(step)
        assert (folder / CheckpointFile.PRUNED).is_file() and (folder / "train_log.csv").is_file()
        assert not (folder / "state").exists()
        assert folder.stat().st_mtime_ns != step * 10**9  # no timestamp is put back: Snakemake reads its own
    record = json.loads(paths.retention(500).read_text())
    assert record == {"step": 500, "limit": 2, "pruned": [100, 300, 400], "kept": [200, 500]}


def test_never_deletes_what_is_not_evaluated_yet(tmp_path):
    paths = fake_run(tmp_path, evaluated=(100, 200))
    assert retain(paths, 2) == [100]


def test_no_limit_keeps_everything(tmp_path):
    paths = fake_run(tmp_path)
    assert retain(paths, None) == []


def test_evaluating_a_pruned_checkpoint_explains_why_it_cannot(tmp_path):
    paths = fake_run(tmp_path)
    retain(paths, 2)
    with pytest.raises(FileNotFoundError, match="checkpoints_total_limit"):
        load_policy(paths.checkpoint(100))
