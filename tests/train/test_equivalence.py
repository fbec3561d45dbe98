"""Equal effective batch means equal training: 1 process x 8 x 1 == 2 processes x 2 x 2.

Both runs go through a real `accelerate launch` on the CPU (gloo DDP for the two-process one),
from the same seed and manifest; after a few optimizer steps their weights must agree.
"""

from __future__ import annotations

import json

import pandas as pd
import torch
from safetensors.torch import load_file

from tests.helpers.training import STEPS, train_with


def test_one_by_eight_equals_two_processes_by_two_by_two(prepared_data, one_process_checkpoint, tmp_path):
    single = one_process_checkpoint
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
