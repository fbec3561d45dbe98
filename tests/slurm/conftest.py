"""Tests marked `slurm` need a running Slurm (scripts/slurm/up.sh starts a single-node one).

Without one they skip, so the suite passes on a laptop; CI sets RDTFLOW_REQUIRE_SLURM=1 after
bringing Slurm up, and then a Slurm that does not answer fails them instead of hiding them.
The check runs before any fixture, so no pipeline starts for a test that will skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest


@functools.cache
def slurm_problem() -> str | None:
    """Why Slurm cannot take jobs here, or None when sinfo reports a usable node."""
    if shutil.which("sinfo") is None:
        return "no sinfo on PATH (Slurm is not installed; scripts/slurm/up.sh installs and starts one)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s"
    if states.returncode != 0:
        return f"sinfo failed: {states.stderr.strip()}"
    if not any(state.rstrip("*~#") in {"idle", "mixed", "allocated"} for state in states.stdout.split()):
        return f"no node takes jobs (sinfo states: {states.stdout.split()})"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is None:
        return
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get("RDTFLOW_REQUIRE_SLURM") == "1":
        pytest.fail(f"RDTFLOW_REQUIRE_SLURM=1 but Slurm is not usable: {problem}", pytrace=False)
    pytest.skip(f"Slurm is not usable: {problem}")
