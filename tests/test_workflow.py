"""End-to-end Snakemake run at reduced scale, and the caching behaviour of the workflow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from rdtflow.cli import main as rdtflow
from tests.helpers.workflow import ENV, REPO, SNAKEMAKE, check_reduced_outputs, planned_rules, snakemake, write_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("workflow")
    config_file = write_config(root / "config.yaml", root / "results")
    snakemake(config_file)
    return config_file, root / "results" / "e2e"


def test_every_output_exists_and_is_well_formed(finished_run):
    check_reduced_outputs(finished_run[1])


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


def test_each_checkpoint_carries_its_config_and_the_rdtflow_version(finished_run, tmp_path):
    _, run = finished_run
    recorded = json.loads((run / "train" / "checkpoint-6" / "run_config.json").read_text())
    assert recorded["rdtflow_version"] == version("rdtflow")
    assert recorded["config"]["train"]["max_steps"] == 6 and recorded["config"]["hardware"]["device"] == "cpu"
    assert rdtflow(["export", "--checkpoint", str(run / "train" / "checkpoint-6"), "--out", str(tmp_path / "export")]) == 0
    assert json.loads((tmp_path / "export" / "run_config.json").read_text()) == recorded


def _moved(value: str | list[str], run: Path, fresh: Path) -> str | list[str]:
    """A path of the finished run, at the same place under `fresh`."""
    if isinstance(value, list):
        return [_moved(item, run, fresh) for item in value]
    return str(fresh / Path(value).relative_to(run)) if Path(value).is_relative_to(run) else value


def test_each_stage_reads_only_what_its_rule_declares(finished_run, tmp_path):
    """Every job of the run again, each in a fresh folder holding copies of its declared inputs
    and nothing else, with results_dir pointing there: it finishes and writes its outputs, so
    it read nothing its rule does not declare. (Episode files stay where the index names them:
    they are the data the validated folder declared.)"""
    _, run = finished_run
    jobs = sorted((run / "config").rglob("*.json"))
    assert len(jobs) == 19  # 10 stages, and train, eval and retention for each of 3 checkpoints
    for job_file in jobs:
        job = json.loads(job_file.read_text())
        checkpoint = job["inputs"].get("checkpoint_dir")
        if checkpoint and (Path(checkpoint) / "pruned.json").is_file():
            continue  # retention deleted its weights: nothing left to evaluate
        fresh = tmp_path / job_file.relative_to(run / "config").with_suffix("") / run.name
        for value in job["inputs"].values():
            for path in map(Path, value if isinstance(value, list) else [value]):
                target = Path(_moved(str(path), run, fresh))
                if target != path and path.is_dir():
                    shutil.copytree(path, target)
                elif target != path:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
        moved = {**job, "config": {**job["config"], "results_dir": str(fresh.parent)},
                 "inputs": {name: _moved(value, run, fresh) for name, value in job["inputs"].items()},
                 "outputs": {name: _moved(value, run, fresh) for name, value in job["outputs"].items()}}
        moved_file = fresh.parent / "job.json"
        moved_file.parent.mkdir(parents=True, exist_ok=True)
        moved_file.write_text(json.dumps(moved))
        assert rdtflow([job["stage"].replace("_", "-"), "--run-config", str(moved_file)]) == 0, job_file
        assert all(Path(path).exists() for path in moved["outputs"].values()), job_file


def test_every_printed_command_is_short_and_the_plan_waits_for_the_instructions():
    """The default run's dry run: each shell command fits a line, and the plan reads the encoded
    instructions (so it waits for encode_lang and sizes memory by their real length)."""
    dry_run = subprocess.run([*SNAKEMAKE, "--dry-run", "--forceall", "--printshellcmds"], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=300, check=False)
    output = dry_run.stdout + dry_run.stderr
    assert dry_run.returncode == 0, output[-3000:]
    commands = [line.removeprefix("Shell command: ") for line in output.splitlines()
                if line.startswith("Shell command: ") and line != "Shell command: None"]
    assert len(commands) == 18 and max(map(len, commands)) < 300, max(commands, key=len)  # 10 stages, 2 x 4 steps
    plan = output.split("rule plan:")[1].split("\n\n")[0]
    assert "results/default/lang/embeddings.safetensors" in plan
