"""The command of a training job and the Slurm allocation it needs, from the hardware profile.

One place, used by the workflow's train rule and by `rdtflow plan` to show the user the exact
command, so what is shown is what runs. The allocation is here too because it must agree with
the command: one `accelerate launch` per node, started by one Slurm task per node.
"""

from __future__ import annotations

import os
import shlex

from rdtflow.train.hardware import process_count

# Host memory a cluster job asks for, per training process. A GPU process holds the model
# while loading it and feeds its DataLoader workers; a CPU process trains in host memory.
HOST_MEMORY_MB_PER_PROCESS = {"gpu": 32 * 1024, "cpu": 8 * 1024}
TRAIN_PERIOD_MINUTES = 240  # one checkpoint period, first attempt

# Every node runs this: machine 0 of the allocation hosts the rendezvous. The rank comes from
# Slurm's task id and the address from the allocation's node list, so the same line works on
# any pair of nodes (and on one host, where the first node name resolves to itself). The port
# is derived from the job id so that two jobs sharing a node do not collide.
RENDEZVOUS_FLAGS = (
    '--machine_rank "$SLURM_PROCID"'
    ' --main_process_ip "$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"'
    ' --main_process_port "$((20000 + SLURM_JOB_ID % 10000))"'
)


def threads_per_process(hardware: dict, job_threads: int | None) -> int | None:
    """A CPU process's threads: the profile's number, or with cpu_threads auto its share of
    the job's threads (None where the job's threads are not known yet: accelerate then shares
    OMP_NUM_THREADS, which Snakemake sets to them)."""
    if hardware["cpu_threads"] != "auto":
        return hardware["cpu_threads"]
    return max(1, job_threads // hardware["processes_per_node"]) if job_threads else None


def accelerate_launch_args(hardware: dict, job_threads: int | None = None) -> str:
    """Flags for `accelerate launch` (everything before the training module); `job_threads` is
    what Snakemake gives the job."""
    processes = process_count(hardware)
    args = [f"--num_processes {processes}", f"--num_machines {hardware['nodes']}",
            f"--mixed_precision {hardware['mixed_precision']}", "--dynamo_backend no"]
    if processes > 1:
        # accelerate's multi-process launcher (torchrun); the trainer's Accelerator(cpu=True)
        # turns it into gloo DDP on CPU profiles. `--cpu` would start a single process.
        args.insert(0, "--multi_gpu")
    elif hardware["device"] == "cpu":
        args.insert(0, "--cpu")
    threads = threads_per_process(hardware, job_threads) if hardware["device"] == "cpu" else None
    if threads is not None:
        args.append(f"--num_cpu_threads_per_process {threads}")
    return " ".join(args)


def node_command(hardware: dict, train_args: str, job_threads: int | None = None) -> str:
    """What one node runs: `accelerate launch ... -m rdtflow.cli train {train_args}`.

    `train_args` is already shell-quoted. On several nodes the line reads its machine rank and
    the rendezvous address from the Slurm task's environment, so it must run as a Slurm task.
    """
    rendezvous = f" {RENDEZVOUS_FLAGS}" if hardware["nodes"] > 1 else ""
    return f"accelerate launch {accelerate_launch_args(hardware, job_threads)}{rendezvous} -m rdtflow.cli train {train_args}"


def train_command(hardware: dict, train_args: str, job_threads: int | None = None) -> str:
    """The shell command of one training job: the node command, on every node of the allocation.

    On one node it runs directly. On several, `srun` starts it once per node inside the job's
    allocation; `--overlap` because the Snakemake job step that runs this command already
    holds the CPUs of the first node, and a step without it would wait for them forever.
    """
    command = node_command(hardware, train_args, job_threads)
    nodes = hardware["nodes"]
    if nodes == 1:
        return command
    return f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 --overlap bash -c {shlex.quote(command)}"


def cpus_per_node(hardware: dict) -> int:
    """CPUs of one node's launcher: its processes' threads (CPU; all of this machine's cores
    with cpu_threads auto, which Snakemake lowers to its --cores) or DataLoader workers (GPU)."""
    if hardware["device"] == "gpu":
        return hardware["gpus_per_node"] * (1 + hardware["dataloader_workers"])
    if hardware["cpu_threads"] == "auto":
        return os.cpu_count() or 1
    return hardware["processes_per_node"] * hardware["cpu_threads"]


def train_runtime_minutes(attempt: int) -> int:
    """Wall-clock minutes a training job asks for. A period that hits the limit is repeated from
    its start (checkpoints are written only at period ends), so each retry gets that much
    more. Clusters with other limits set `set-resources: train: runtime:` in a profile."""
    return TRAIN_PERIOD_MINUTES * attempt


def train_job_resources(hardware: dict) -> dict:
    """Snakemake resources of a training job, as the Slurm executor plugin reads them.

    One task per node, each with all of the node's CPUs for training; GPUs as a per-node
    GRES, so a two-node job gets `gpus_per_node` on each. `tasks_per_gpu: 0` stops the plugin
    from reading `tasks` as tasks per GPU, which would start the launcher once per GPU.
    A CPU profile requests no GPUs at all: sbatch refuses GPU jobs where there are none.
    """
    per_node = hardware["gpus_per_node"] if hardware["device"] == "gpu" else hardware["processes_per_node"]
    resources = {
        "nodes": hardware["nodes"],
        "tasks": hardware["nodes"],
        "cpus_per_task": cpus_per_node(hardware),
        "mem_mb": per_node * HOST_MEMORY_MB_PER_PROCESS[hardware["device"]],
    }
    if hardware["device"] == "gpu":
        resources |= {"gres": f"gpu:{hardware['gpus_per_node']}", "tasks_per_gpu": 0}
    return resources


def eval_job_resources(hardware: dict) -> dict:
    """Snakemake resources of an evaluation job: one GPU (and one GPU process's host memory)
    where the hardware profile has GPUs, since the policy and its vision tower run there;
    nothing extra on a CPU profile, whose jobs take the profile's default resources."""
    if hardware["device"] != "gpu":
        return {}
    return {"gres": "gpu:1", "tasks_per_gpu": 0, "mem_mb": HOST_MEMORY_MB_PER_PROCESS["gpu"]}
