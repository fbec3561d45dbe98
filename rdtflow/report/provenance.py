"""What made a run, written to results/{run}/provenance.json and shown at the end of the report.

A reader who wants to redo a paper's number needs the code (the commit, and whether the tree
had uncommitted changes), the packages whose kernels compute it, the config (its hash), the
machines (CPU floats differ between processors, so bitwise identity holds on one machine only)
and how long each stage took.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from rdtflow.machine import describe_machine

SOURCE_TREE = Path(__file__).resolve().parents[2]
KEY_PACKAGES = ("rdtflow", "torch", "accelerate", "diffusers", "transformers", "safetensors", "numpy", "h5py",
                "snakemake", "snakemake-executor-plugin-slurm", "mujoco", "gym-aloha", "dm-control")


def _git(*args: str) -> str | None:
    """A git command's output in rdtflow's source tree; None where it is no git checkout."""
    try:
        # safe.directory: a checkout owned by another user (CI as root) is still ours to read.
        done = subprocess.run(["git", "-c", f"safe.directory={SOURCE_TREE}", "-C", str(SOURCE_TREE), *args],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_state() -> dict[str, Any]:
    """The commit rdtflow runs from, and whether its tracked or new files differ from it."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "note": f"{SOURCE_TREE} is not a git checkout (an installed package)"}
    return {"commit": commit, "dirty": bool(_git("status", "--porcelain"))}


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose code computes the run's numbers."""
    versions = {}
    for package in KEY_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue  # an optional extra that is not installed (the simulator, Slurm)
    return versions


def config_hash(config: dict) -> str:
    """SHA-256 of the config's canonical JSON: equal hashes, equal settings."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def training_machines(trainer_states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The machines the checkpoints were trained on (each distinct one once), from their
    trainer_state.json; checkpoints written before rdtflow recorded it add nothing."""
    machines = []
    for state in trainer_states:
        machine = state.get("machine")
        if machine is not None and machine not in machines:
            machines.append(machine)
    return machines


def stage_times(benchmarks: pd.DataFrame) -> list[dict[str, Any]]:
    """Per stage, in workflow order: its jobs, their summed wall seconds and the largest peak memory."""
    grouped = benchmarks.groupby("stage", sort=False)
    return [{"stage": stage, "jobs": len(rows), "wall_seconds": round(float(rows["seconds"].sum()), 1),
             "max_rss_mb": None if rows["max_rss_mb"].isna().all() else round(float(rows["max_rss_mb"].max()), 1)}
            for stage, rows in grouped]


def collect_provenance(config: dict, trainer_states: list[dict[str, Any]], benchmarks: pd.DataFrame) -> dict[str, Any]:
    """Everything provenance.json holds (docs/formats.md)."""
    times = stage_times(benchmarks)
    return {"code": code_state(), "packages": package_versions(), "config_sha256": config_hash(config),
            "training_machines": training_machines(trainer_states), "report_machine": describe_machine(),
            "stages": times, "total_wall_seconds": round(sum(stage["wall_seconds"] for stage in times), 1)}
