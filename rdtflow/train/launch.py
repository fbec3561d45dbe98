"""The `accelerate launch` arguments of a training job, from the hardware profile.

One function, used by the workflow's train rule and by `rdtflow plan` to show the user the
exact command, so what is shown is what runs.
"""

from __future__ import annotations

from rdtflow.train.hardware import process_count


def accelerate_launch_args(hardware: dict) -> str:
    """Flags for `accelerate launch` (everything before the training module)."""
    processes = process_count(hardware)
    args = [f"--num_processes {processes}", f"--num_machines {hardware['nodes']}",
            f"--mixed_precision {hardware['mixed_precision']}", "--dynamo_backend no"]
    if processes > 1:
        # accelerate's multi-process launcher (torchrun); the trainer's Accelerator(cpu=True)
        # turns it into gloo DDP on CPU profiles. `--cpu` would start a single process.
        args.insert(0, "--multi_gpu")
    elif hardware["device"] == "cpu":
        args.insert(0, "--cpu")
    if hardware["device"] == "cpu":
        args.append(f"--num_cpu_threads_per_process {hardware['cpu_threads']}")
    return " ".join(args)
