"""The training job's command and Slurm request, without a Slurm: what the plugin would submit."""

from __future__ import annotations

import os
import subprocess

from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

from rdtflow.train.hardware import load_profile
from rdtflow.train.launch import node_command, train_command, train_job_resources, train_runtime_minutes
from tests.helpers.workflow import ENV, REPO, SNAKEMAKE, write_config

ARGS = "--config c.json --until-step 2"


class Resources(dict):
    """Job resources as the plugin reads them: `.get(name)` and `.name`."""

    __getattr__ = dict.__getitem__


class Job:
    def __init__(self, hardware: dict):
        self.resources = Resources(train_job_resources(hardware), runtime=240)
        self.threads = self.resources["cpus_per_task"]


def sbatch_line(profile: str) -> str:
    job = Job(load_profile(profile))
    params = {"run_uuid": "run", "slurm_logfile": "log", "comment_str": "rule_train", "account": "", "partition": "",
              "workdir": "."}
    return get_submit_command(job, params) + set_gres_string(job)


def test_one_node_runs_the_launcher_directly():
    cpu = load_profile("cpu")
    assert train_command(cpu, ARGS) == node_command(cpu, ARGS)
    assert train_command(cpu, ARGS).startswith("accelerate launch --cpu --num_processes 1 --num_machines 1")
    assert "SLURM" not in train_command(load_profile("a800-80g-x8"), ARGS)


def test_two_nodes_start_one_launcher_per_node_with_rank_and_address_from_slurm():
    command = train_command(load_profile("h100-80g-2x8"), ARGS)
    assert command.startswith("srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --overlap bash -c ")
    for flag in ("--multi_gpu --num_processes 16 --num_machines 2", '--machine_rank "$SLURM_PROCID"',
                 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1',
                 '--main_process_port "$((20000 + SLURM_JOB_ID % 10000))"'):  # one port per job
        assert flag in command


def test_each_retry_of_a_training_job_gets_another_240_minutes():
    assert [train_runtime_minutes(attempt) for attempt in (1, 2, 3)] == [240, 480, 720]


def test_cpu_job_asks_for_no_gpu():
    line = sbatch_line("cpu")
    assert "gpu" not in line and "gres" not in line
    assert "--nodes=1" in line and "--ntasks=1" in line and "--mem 8192" in line
    assert f"--cpus-per-task={os.cpu_count()}" in line  # cpu_threads auto: this machine's cores


def test_gpu_job_asks_for_gpus_per_node_and_one_task_per_node():
    line = sbatch_line("h100-80g-2x8")
    assert "--nodes=2" in line and "--gres=gpu:8" in line and "--cpus-per-task=72" in line
    assert "--mem 262144" in line and "-t 240" in line
    # tasks_per_gpu 0: no --ntasks-per-gpu, which would start the launcher once per GPU.
    assert "ntasks-per-gpu" not in line and "--gpus" not in line


def test_train_rule_requests_the_hardware_profile(tmp_path):
    config = write_config(tmp_path / "config.yaml", tmp_path / "results",
                          hardware={"device": "cpu", "processes_per_node": 2, "cpu_threads": 1, "per_device_batch": 2})
    profile = str(REPO / "profiles" / "slurm-ci")
    dry_run = subprocess.run([*SNAKEMAKE, "--configfile", str(config), "--dry-run", "--profile", profile],
                             cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert dry_run.returncode == 0, dry_run.stdout[-3000:] + dry_run.stderr[-3000:]
    train = dry_run.stdout.split("rule train:")[1].split("\n\n")[0]
    assert "threads: 2" in train and "nodes=1" in train and "cpus_per_task=2" in train and "runtime=240" in train
    assert "gres" not in train


def test_profile_installs_for_snakemake_profile_slurm(tmp_path):
    env = {**{name: value for name, value in ENV.items() if name != "XDG_CONFIG_HOME"}, "HOME": str(tmp_path)}
    install = [str(REPO / "scripts" / "install_slurm_profile.sh")]
    assert subprocess.run(install, env=env, capture_output=True, check=False).returncode == 0
    installed = tmp_path / ".config" / "snakemake" / "slurm" / "config.yaml"
    assert installed.read_text() == (REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text()
    installed.write_text(installed.read_text() + "# the user's edit\n")
    kept = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    assert kept.returncode == 1 and "--force" in kept.stderr and installed.read_text().endswith("# the user's edit\n")
    assert subprocess.run([*install, "--force"], env=env, capture_output=True, check=False).returncode == 0
    config = write_config(tmp_path / "config.yaml", tmp_path / "results")
    dry_run = subprocess.run([*SNAKEMAKE, "--configfile", str(config), "--dry-run", "--profile", "slurm"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert dry_run.returncode == 0, dry_run.stdout[-3000:] + dry_run.stderr[-3000:]
    assert "rule train:" in dry_run.stdout
