"""train.checkpoints_total_limit really deletes, keeping the best and the latest."""

from __future__ import annotations

import json
import os

import pytest

from rdtflow.paths import CheckpointFile, RunPaths
from rdtflow.train.checkpoint import load_checkpoint_weights
from rdtflow.train.retention import apply_retention

SUCCESS = {100: 0.2, 200: 0.9, 300: 0.5, 400: 0.6, 500: 0.7}


def fake_run(tmp_path, evaluated=(100, 200, 300, 400, 500), success_rates: dict[int, float] = SUCCESS):
    paths = RunPaths(tmp_path / "r")
    for step, success in success_rates.items():
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


def retain(paths: RunPaths, limit: int | None, step: int = 500, checkpoint_steps=tuple(SUCCESS)) -> list[int]:
    """Retention once checkpoint `step` is evaluated, on the files its job declares."""
    steps = [s for s in checkpoint_steps if s <= step]
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


@pytest.mark.parametrize(("limit", "survivors"), [
    (3, [200, 400, 500]),  # the best (90%, not among the most recent), the latest, then the most recent
    (4, [200, 300, 400, 500]),
    (5, [100, 200, 300, 400, 500]),
])
def test_a_larger_limit_fills_up_with_the_most_recent(tmp_path, limit, survivors):
    paths = fake_run(tmp_path)
    retain(paths, limit)
    assert [s for s in SUCCESS if (paths.checkpoint(s) / CheckpointFile.WEIGHTS).is_file()] == survivors


def test_without_success_rates_the_lowest_open_loop_error_is_the_best(tmp_path):
    """Data without a simulator has success_rate null: the best is then the lowest action error."""
    paths = fake_run(tmp_path)
    for step, mse in {100: 0.5, 200: 0.4, 300: 0.05, 400: 0.3, 500: 0.2}.items():
        paths.evaluation(step).write_text(json.dumps({"step": step, "success_rate": None, "open_loop_mse": mse}))
    assert retain(paths, 2) == [100, 200, 400]


def test_the_paper_limit_of_30_keeps_the_best_of_50(tmp_path):
    steps = [2000 * k for k in range(1, 51)]
    paths = fake_run(tmp_path, steps, {step: 0.95 if step == 6000 else step / 200_000 for step in steps})
    pruned = retain(paths, 30, steps[-1], steps)
    kept = json.loads(paths.retention(steps[-1]).read_text())["kept"]
    assert len(kept) == 30 and 6000 in kept and kept[1:] == steps[-29:]
    assert pruned == [s for s in steps if s not in kept]


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
        load_checkpoint_weights(paths.checkpoint(100))
