"""The workflow on a real Slurm (tests/slurm/conftest.py skips these without one).

One reduced run goes through the executor plugin with the CI profile; its second training
job is cancelled with scancel while it trains, and must be retried from the checkpoint before
it to the same bytes as an uninterrupted run. Then two Slurm tasks on this one host train as
two machines of one job, with the launch line a two-node job runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rdtflow.cli import main as rdtflow
from rdtflow.train.hardware import load_profile
from rdtflow.train.launch import node_command
from tests.helpers import training
from tests.helpers.workflow import ENV, REPO, SNAKEMAKE, check_reduced_outputs, write_config

pytestmark = pytest.mark.slurm

# Every snakemake and srun call runs under `timeout`: a lost job must fail the test, not hang CI.
TIMEOUT_S = 900
CI_PROFILE = REPO / "profiles" / "slurm-ci"
CANCELLED_STEP = 4
# Every rule but the local `all` runs as Slurm jobs, with logs in a folder per rule.
SLURM_JOBS = {f"rule_{rule}" for rule in ("demos", "validate", "split", "manifest", "encoders", "encode_lang",
                                          "encode_images", "plan", "train", "eval", "baseline", "report")}


@dataclass
class SlurmRun:
    config_file: Path
    run: Path
    output: str
    slurm_logs: Path
    cancelled_job: str
    checkpoint_existed_at_cancel: bool


def submissions(output: str, rule: str, step: int | None = None) -> list[str]:
    """Slurm job ids the plugin reported for a rule's jobs (of one checkpoint step, if given).

    The plugin logs each job in rule_<rule>/<wildcards>/, its wildcard values joined by "_" with
    every "/" made "_": a training job's folder is the run's path, then its step.
    """
    where = rf"{rule}/[^/\s]*_{step}/" if step is not None else f"{rule}/"
    return re.findall(rf"submitted with SLURM jobid (\d+) \(log: \S*/{where}", output)


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """States of finished jobs, from squeue: up.sh keeps them visible for MinJobAge (an hour)."""
    listed = subprocess.run(
        ["timeout", "60", "squeue", "-h", "--states=all", "-o", "%i|%T", "-j", ",".join(job_ids)],
        capture_output=True, text=True, check=True,
    )
    return dict(line.split("|") for line in listed.stdout.split())


def cancel_while_training(snakemake: subprocess.Popen, output: Path, train_log: Path) -> str:
    """scancel the training job of CANCELLED_STEP once its command runs; returns its Slurm id."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and snakemake.poll() is None:
        job_ids = submissions(output.read_text(), "rule_train", CANCELLED_STEP)
        if job_ids and train_log.is_file():  # the shell opened the log: `accelerate launch` is running
            subprocess.run(["timeout", "60", "scancel", job_ids[0]], check=True)
            return job_ids[0]
        time.sleep(0.2)
    raise AssertionError(f"training job {CANCELLED_STEP} never started:\n{output.read_text()[-5000:]}")


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> SlurmRun:
    root = tmp_path_factory.mktemp("slurm")
    config_file = write_config(root / "config.yaml", root / "results")
    run = root / "results" / "e2e"
    output = root / "snakemake.txt"
    with output.open("w") as sink:
        snakemake = subprocess.Popen(
            ["timeout", str(TIMEOUT_S), *SNAKEMAKE, "--configfile", str(config_file), "--profile", str(CI_PROFILE),
             "--slurm-logdir", str(root / "slurm_logs")],
            cwd=REPO, env=ENV, stdout=sink, stderr=subprocess.STDOUT,
        )
        cancelled = cancel_while_training(snakemake, output, run / "logs" / "train" / f"checkpoint-{CANCELLED_STEP}.log")
        existed = (run / "train" / f"checkpoint-{CANCELLED_STEP}").exists()
        returncode = snakemake.wait()
    assert returncode == 0, output.read_text()[-10000:]
    return SlurmRun(config_file, run, output.read_text(), root / "slurm_logs", cancelled, existed)


def test_reduced_pipeline_runs_through_slurm(slurm_run):
    check_reduced_outputs(slurm_run.run)
    job_folders = {path.name for path in slurm_run.slurm_logs.iterdir()}
    assert job_folders == SLURM_JOBS
    job_ids = [job_id for folder in SLURM_JOBS for job_id in submissions(slurm_run.output, folder)]
    states = slurm_states(job_ids)
    assert set(states) == set(job_ids)
    assert {state for job_id, state in states.items() if job_id != slurm_run.cancelled_job} == {"COMPLETED"}
    for log in slurm_run.slurm_logs.rglob("*.log"):
        assert log.stem in states  # the plugin names each job's log after its Slurm id


def test_cancelled_training_job_is_retried_from_the_last_checkpoint(slurm_run, tmp_path):
    retried = submissions(slurm_run.output, "rule_train", CANCELLED_STEP)
    assert len(retried) == 2 and retried[0] == slurm_run.cancelled_job and not slurm_run.checkpoint_existed_at_cancel
    assert slurm_states(retried) == {retried[0]: "CANCELLED", retried[1]: "COMPLETED"}
    assert "SLURM status is: 'CANCELLED'" in slurm_run.output
    assert not list((slurm_run.run / "train").glob("*.tmp"))
    # The same training, never interrupted and outside Slurm, from the same prepared data.
    reference_results = tmp_path / "results"
    shutil.copytree(slurm_run.run, reference_results / "e2e", ignore=shutil.ignore_patterns("train", "eval", "report"))
    reference_config = write_config(tmp_path / "config.yaml", reference_results)
    final = f"train/checkpoint-{CANCELLED_STEP + 2}"
    uninterrupted = subprocess.run(
        ["timeout", str(TIMEOUT_S), *SNAKEMAKE, str(reference_results / "e2e" / final),
         "--configfile", str(reference_config)],
        cwd=REPO, env=ENV, capture_output=True, text=True, check=False,
    )
    assert uninterrupted.returncode == 0, uninterrupted.stdout[-5000:] + uninterrupted.stderr[-5000:]
    for part in ("model.safetensors", "state/optimizer.pt", "state/scheduler.pt"):
        retried_bytes = (slurm_run.run / final / part).read_bytes()
        assert retried_bytes == (reference_results / "e2e" / final / part).read_bytes(), part


TWO_NODES = {"device": "cpu", "nodes": 2, "processes_per_node": 1, "per_device_batch": 2, "gradient_accumulation": 2,
             "cpu_threads": 1}


def test_two_slurm_tasks_train_as_two_machines(prepared_data, one_process_checkpoint, tmp_path):
    """srun starts one launcher per task, as train_command does per node of a two-node job."""
    single = one_process_checkpoint
    results = tmp_path / "two_nodes"
    shutil.copytree(prepared_data, results)
    config = training.write_config(tmp_path / "two_nodes.json", results, TWO_NODES)
    assert rdtflow(["plan", "--config", str(config)]) == 0
    command = node_command(load_profile(TWO_NODES), f"--config {config} --until-step {training.STEPS}")
    assert '--machine_rank "$SLURM_PROCID"' in command and "--num_machines 2" in command
    finished = subprocess.run(
        ["timeout", str(TIMEOUT_S), "srun", "--ntasks=2", "--cpus-per-task=1", "--mem=6G", "--kill-on-bad-exit=1",
         "--label", "bash", "-c", command],
        cwd=REPO, env=ENV, capture_output=True, text=True, check=False,
    )
    assert finished.returncode == 0, finished.stdout[-5000:] + finished.stderr[-5000:]
    double = results / "equivalence" / "train" / f"checkpoint-{training.STEPS}"
    for weights in ("model.safetensors", "ema/model.safetensors"):
        first, second = load_file(str(single / weights)), load_file(str(double / weights))
        assert first.keys() == second.keys()
        for name in first:
            torch.testing.assert_close(second[name], first[name], atol=2e-6, rtol=1e-4, msg=f"{weights}:{name}")
    state = json.loads((double / "trainer_state.json").read_text())
    assert state["layout"]["processes"] == 2 and state["effective_batch"] == 8
