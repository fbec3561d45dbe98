"""Training runs launched as the workflow launches them, for tests that compare their weights."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from rdtflow.cli import main as rdtflow
from rdtflow.train.launch import accelerate_launch_args
from tests.helpers.sizes import TINY_ENCODERS, TINY_MODEL

STEPS = 3
BASE = {
    "run": "equivalence",
    "sim": {"env": "builtin-pick-place", "options": {"image_size": 32}},
    "demos": {"generate": True, "n_episodes": 6},
    "split": {"held_out": 2},
    "encoders": TINY_ENCODERS,
    "model": {**TINY_MODEL, "pred_horizon": 4},
    "train": {"max_steps": STEPS, "checkpointing_period": STEPS, "effective_batch": 8, "lr_warmup_steps": 2,
              "learning_rate": 0.001, "ema_decay": 0.9},
}
LAYOUTS = {
    "one_process": {"device": "cpu", "processes_per_node": 1, "per_device_batch": 8, "gradient_accumulation": 1,
                    "cpu_threads": 1},
    "two_processes": {"device": "cpu", "processes_per_node": 2, "per_device_batch": 2, "gradient_accumulation": 2,
                      "cpu_threads": 1},
}


def write_config(path: Path, results: Path, hardware: dict) -> Path:
    """A whole config file: sections it does not name take their defaults."""
    path.write_text(json.dumps({**BASE, "results_dir": str(results), "hardware": hardware}))
    return path


def prepare_data(results: Path) -> Path:
    """Every stage before the plan, once, for runs that differ only in their hardware."""
    config = write_config(results / "config.json", results, LAYOUTS["one_process"])
    for stage in ("demos", "encoders", "validate", "split", "manifest", "encode-lang"):
        assert rdtflow([stage, "--config", str(config)]) == 0
    return results


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_with(layout: str, prepared: Path, tmp_path: Path) -> Path:
    """Plan and train STEPS steps with one of LAYOUTS through `accelerate launch`; the checkpoint."""
    results = tmp_path / layout
    shutil.copytree(prepared, results)
    config = write_config(tmp_path / f"{layout}.json", results, LAYOUTS[layout])
    assert rdtflow(["plan", "--config", str(config)]) == 0
    hardware = {"nodes": 1, "mixed_precision": "no", **LAYOUTS[layout]}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *accelerate_launch_args(hardware).split(),
        "--main_process_port", str(free_port()),
        "-m", "rdtflow.cli", "train", "--config", str(config), "--until-step", str(STEPS),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return results / "equivalence" / "train" / f"checkpoint-{STEPS}"
