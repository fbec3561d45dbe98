"""End-to-end Snakemake run at reduced scale, and the caching behaviour of the workflow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.sizes import TINY_ENCODERS, TINY_MODEL

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]

# Rules call the `rdtflow` and `accelerate` commands installed beside this Python.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

# Small enough to run in about a minute on two cores; same code path as the default.
REDUCED = {
    "run": "e2e",
    "demos": {"generate": True, "n_episodes": 14, "sim": {"image_size": 32}},
    "split": {"held_out": 4},
    "encoders": TINY_ENCODERS,
    "model": {**TINY_MODEL, "pred_horizon": 8, "precompute_image_features": True},
    "hardware": {"device": "cpu", "per_device_batch": 4},  # accumulation 2, derived
    "train": {"max_steps": 6, "checkpointing_period": 2, "effective_batch": 8, "lr_warmup_steps": 1,
              "checkpoints_total_limit": 2},
    "eval": {"execute_horizon": 4, "open_loop_stride": 8},
}


def snakemake(config_file: Path, *args: str) -> str:
    result = subprocess.run(
        [*SNAKEMAKE, "--configfile", str(config_file), *args], cwd=REPO, capture_output=True, text=True, env=ENV
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def planned_rules(config_file: Path) -> set[str]:
    """Rules a dry run would execute (empty when there is nothing to be done)."""
    output = snakemake(config_file, "--dry-run")
    if "Nothing to be done" in output:
        return set()
    table = output.split("Job stats:")[1].split("total")[0]
    return {match.group(1) for match in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.MULTILINE)} - {"job"}


def write_config(path: Path, results: Path, **changes: dict) -> Path:
    config = json.loads(json.dumps(REDUCED))
    config["results_dir"] = str(results)
    for section, values in changes.items():
        config[section] = {**config[section], **values}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("workflow")
    config_file = write_config(root / "config.yaml", root / "results")
    snakemake(config_file)
    return config_file, root / "results" / "e2e"


def test_every_output_exists_and_is_well_formed(finished_run):
    _, run = finished_run
    validation = json.loads((run / "data" / "validation.json").read_text())
    assert validation["n_valid"] == 14 and validation["n_rejected"] == 0
    index = pd.read_parquet(run / "data" / "index.parquet")
    assert (index["split"] == "held_out").sum() == 4 and (index["split"] == "train").sum() == 10
    manifest = pd.read_parquet(run / "data" / "manifest.parquet")
    train_steps = index.loc[index["split"] == "train"]
    assert len(manifest) == int((train_steps["n_steps"] - train_steps["first_moving_step"]).sum())
    assert (run / "lang" / "embeddings.safetensors").is_file()
    plan = json.loads((run / "plan.json").read_text())
    assert plan["layout"] == {"micro_batch": 4, "accumulation": 2, "processes": 1, "nodes": 1}
    for step in (2, 4, 6):
        checkpoint = run / "train" / f"checkpoint-{step}"
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        assert state["step"] == step and state["effective_batch"] == 8
        assert len(pd.read_csv(checkpoint / "train_log.csv")) == 2  # two optimizer steps, four micro-batches
        evaluation = json.loads((run / "eval" / f"checkpoint-{step}.json").read_text())
        assert evaluation["step"] == step and evaluation["n_episodes"] == 4
        assert 0.0 <= evaluation["success_rate"] <= 1.0 and evaluation["open_loop_mse"] > 0
        assert len(evaluation["episodes"]) == 4
    with_weights = [step for step in (2, 4, 6) if (run / "train" / f"checkpoint-{step}" / "model.safetensors").is_file()]
    assert len(with_weights) == 2 and 6 in with_weights  # checkpoints_total_limit 2 keeps best and latest
    pruned = ({2, 4} - set(with_weights)).pop()
    assert (run / "train" / f"checkpoint-{pruned}" / "pruned.json").is_file()
    baseline = json.loads((run / "eval" / "baseline.json").read_text())
    assert baseline["policy"] == "mean-trajectory baseline" and baseline["n_episodes"] == 4
    html = (run / "report" / "index.html").read_text()
    assert "data:image/png;base64," in html and "checkpoint" in html.lower()
    assert not list((run / "train").glob("*.tmp"))


def test_second_run_has_nothing_to_do(finished_run):
    config_file, _ = finished_run
    assert planned_rules(config_file) == set()


def test_evaluation_setting_reruns_only_evaluation_and_report(finished_run, tmp_path):
    config_file, run = finished_run
    changed = write_config(tmp_path / "eval.yaml", run.parent, eval={"execute_horizon": 2})
    assert planned_rules(changed) == {"eval", "baseline", "report", "all"}


def test_training_setting_does_not_rerun_data_stages(finished_run, tmp_path):
    config_file, run = finished_run
    changed = write_config(tmp_path / "train.yaml", run.parent, train={"learning_rate": 0.001})
    rules = planned_rules(changed)
    assert {"train", "eval", "report"} <= rules
    assert rules.isdisjoint({"demos", "validate", "split", "manifest", "encode_lang", "encoders", "baseline"})


def test_a_config_file_replaces_the_default_whole(tmp_path):
    """Keys of config/config.yaml (here precompute_image_features: true) never leak into a
    --configfile run; the schema's defaults fill what the file leaves out."""
    config_file = write_config(tmp_path / "own.yaml", tmp_path / "results")
    config = yaml.safe_load(config_file.read_text())
    del config["model"]["precompute_image_features"]
    config_file.write_text(yaml.safe_dump(config))
    rules = planned_rules(config_file)
    assert "train" in rules and "encode_images" not in rules


def _wait_for_training_job(run: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Until a training job is running after at least one checkpoint and its evaluation exist."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the workflow finished before it could be killed"
        done = {int(p.name.split("-")[1]) for p in (run / "train").glob("checkpoint-*") if not p.name.endswith(".tmp")}
        evaluated = {int(p.stem.split("-")[1]) for p in (run / "eval").glob("checkpoint-*.json")}
        if evaluated and max(done, default=0) < 6 and (run / "logs" / "train" / f"checkpoint-{max(done) + 2}.log").is_file():
            return
        time.sleep(0.2)
    raise AssertionError("no training job started in time")


def _files_and_mtimes(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns
            for p in [*run.glob("train/checkpoint-*/*.*"), *run.glob("eval/*.json")] if ".tmp" not in str(p)}


def test_killed_mid_training_resumes_exactly_and_keeps_finished_work(finished_run, tmp_path):
    """SIGKILL the whole workflow while a training job runs, re-run it: finished checkpoints
    and evaluations are neither deleted nor redone, and the final weights are bitwise those
    of the uninterrupted run. Then a silently damaged checkpoint is skipped on resume."""
    _, reference = finished_run
    config_file = write_config(tmp_path / "kill.yaml", tmp_path / "results", train={"checkpoints_total_limit": None})
    run = tmp_path / "results" / "e2e"
    process = subprocess.Popen([*SNAKEMAKE, "--configfile", str(config_file)], cwd=REPO, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_training_job(run, process)
        time.sleep(1.0)  # into the job: launcher and trainer started
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before = _files_and_mtimes(run)
    assert before, "nothing had finished before the kill"
    snakemake(config_file, "--unlock")
    snakemake(config_file)
    after = _files_and_mtimes(run)
    assert {name: after.get(name) for name in before} == before  # nothing finished was deleted or redone
    final = "train/checkpoint-6/model.safetensors"
    assert (run / final).read_bytes() == (reference / final).read_bytes()

    # A checkpoint damaged after it was written (same mtime, so Snakemake cannot tell) is
    # named and skipped: checkpoint-6, deleted with its evaluation and the report (Snakemake
    # leaves missing intermediates alone while what they fed is up to date), is retrained
    # from checkpoint-2, to the same bits.
    damaged = run / "train" / "checkpoint-4" / "model.safetensors"
    stat, folder_stat = damaged.stat(), damaged.parent.stat()
    damaged.write_bytes(damaged.read_bytes()[:-100])
    os.utime(damaged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.utime(damaged.parent, ns=(folder_stat.st_atime_ns, folder_stat.st_mtime_ns))
    shutil.rmtree(run / "train" / "checkpoint-6")
    (run / "eval" / "checkpoint-6.json").unlink()
    shutil.rmtree(run / "report")
    snakemake(config_file)
    log = (run / "logs" / "train" / "checkpoint-6.log").read_text()
    assert "cannot resume from checkpoint-4" in log and "model.safetensors does not match its checksum" in log
    assert (run / final).read_bytes() == (reference / final).read_bytes()
