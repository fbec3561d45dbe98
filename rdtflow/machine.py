"""What machine a job runs on: the facts a reader needs to judge whether two runs' floats can
match, and the threads a CPU job may use.

Bitwise reproduction holds only on one machine: CPU float kernels differ between processors,
so a checkpoint and the report both record the host, the CPU model, its cores and any GPUs.
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model() -> str:
    """The processor's marketing name (Linux /proc/cpuinfo), else what the platform module says."""
    if CPUINFO.is_file():
        for line in CPUINFO.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """The CUDA devices this process sees, by name; empty without CUDA."""
    import torch

    return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]


def describe_machine() -> dict[str, object]:
    """Host name, operating system, CPU model, cores usable by this process and GPU names."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_model(), "cores": cores,
            "gpus": gpu_names()}


def cpu_threads(setting: int | str) -> int:
    """A CPU job's threads (hardware.cpu_threads, eval.threads): the number given, or with `auto`
    the threads Snakemake gave the job, up to the machine's cores. Snakemake says how many in
    OMP_NUM_THREADS, and a training launch line hands each process its share the same way."""
    if setting != "auto":
        return int(setting)
    cores = os.cpu_count() or 1
    return min(int(os.environ.get("OMP_NUM_THREADS") or cores), cores)
