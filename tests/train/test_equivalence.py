"""Equal effective batch means equal training: 1 process x 8 x 1 == 2 processes x 2 x 2.

Both runs go through a real `accelerate launch` on the CPU (gloo DDP for the two-process one),
from the same seed and manifest; after a few optimizer steps their weights must agree.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rdtflow.cli import main as rdtflow
from rdtflow.train.launch import accelerate_launch_args
from tests.sizes import TINY_ENCODERS, TINY_MODEL

STEPS = 3
BASE = {
    "run": "equivalence",
    "demos": {"generate": True, "n_episodes": 6, "sim": {"image_size": 32}},
    "split": {"held_out": 2},
    "encoders": TINY_ENCODERS,
    "model": {**TINY_MODEL, "pred_horizon": 4},
    "train": {"max_steps": STEPS, "checkpointing_period": STEPS, "effective_batch": 8, "lr_warmup_steps": 2,
              "learning_rate": 0.001, "ema_decay": 0.9},
}
LAYOUTS = {
    "one_process": {"device": "cpu", "processes_per_node": 1, "per_device_batch": 8, "gradient_accumulation": 1, "cpu_threads": 1},
    "two_processes": {"device": "cpu", "processes_per_node": 2, "per_device_batch": 2, "gradient_accumulation": 2, "cpu_threads": 1},
}


@pytest.fixture(scope="module")
def prepared_data(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("equivalence")
    config = write_config(results / "config.json", results, "one_process")
    for stage in ("demos", "encoders", "validate", "split", "manifest", "encode-lang"):
        assert rdtflow([stage, "--config", str(config)]) == 0
    return results


def write_config(path: Path, results: Path, layout: str) -> Path:
    """A whole config file: sections it does not name take their defaults."""
    path.write_text(json.dumps({**BASE, "results_dir": str(results), "hardware": LAYOUTS[layout]}))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_with(layout: str, prepared: Path, tmp_path: Path) -> Path:
    results = tmp_path / layout
    shutil.copytree(prepared, results)
    config = write_config(tmp_path / f"{layout}.json", results, layout)
    hardware = {"nodes": 1, "mixed_precision": "no", **LAYOUTS[layout]}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *accelerate_launch_args(hardware).split(),
        "--main_process_port", str(free_port()),
        "-m", "rdtflow.cli", "train", "--config", str(config), "--until-step", str(STEPS),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return results / "equivalence" / "train" / f"checkpoint-{STEPS}"


def test_one_by_eight_equals_two_processes_by_two_by_two(prepared_data, tmp_path):
    single = train_with("one_process", prepared_data, tmp_path)
    double = train_with("two_processes", prepared_data, tmp_path)
    for weights in ("model.safetensors", "ema/model.safetensors"):
        first, second = load_file(str(single / weights)), load_file(str(double / weights))
        assert first.keys() == second.keys()
        for name in first:
            torch.testing.assert_close(second[name], first[name], atol=2e-6, rtol=1e-4, msg=f"{weights}:{name}")
    model, ema = load_file(str(single / "model.safetensors")), load_file(str(single / "ema/model.safetensors"))
    assert any(not torch.equal(model[name], ema[name]) for name in model)  # it trained, and the EMA lags
    states = [json.loads((path / "trainer_state.json").read_text()) for path in (single, double)]
    assert [s["effective_batch"] for s in states] == [8, 8]
    assert [s["layout"]["processes"] for s in states] == [1, 2]
    # Warmup, schedule and EMA count optimizer steps, whatever the accumulation.
    logs = [pd.read_csv(path / "train_log.csv") for path in (single, double)]
    assert list(logs[0]["step"]) == list(logs[1]["step"]) == [1, 2, 3]
    assert list(logs[0]["lr"]) == list(logs[1]["lr"]) == [0.0, 0.0005, 0.001]
    for path in (single, double):
        assert torch.load(path / "state" / "ema.pt", weights_only=True)["optimization_step"] == STEPS
