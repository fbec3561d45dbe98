"""The `accelerate launch` arguments of a training job, from the config.

One function, used by the workflow's train rule (and by `rdtflow plan` to show the user
the exact command), so what is shown is what runs.
"""

from __future__ import annotations


def accelerate_launch_args(train_cfg: dict) -> str:
    """Flags for `accelerate launch` (everything before the training module)."""
    processes = train_cfg["num_processes"]
    args = [f"--num_processes {processes}", "--num_machines 1", f"--mixed_precision {train_cfg['mixed_precision']}",
            "--dynamo_backend no"]
    if train_cfg["cpu"]:
        args.insert(0, "--cpu")
    elif processes > 1:
        args.insert(0, "--multi_gpu")
    return " ".join(args)
