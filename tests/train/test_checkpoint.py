"""Checkpoint integrity: damaged checkpoints are named and skipped, a full disk stops before writing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from diffusers.optimization import get_scheduler

from rdtflow.model.policy import RDTPolicy
from rdtflow.train import checkpoint as ckpt
from rdtflow.train.checkpoint import (
    CorruptCheckpoint,
    DiskSpaceError,
    checkpoint_problem,
    load_policy,
    resumable_checkpoint,
    save_checkpoint,
)
from tests.helpers.models import TINY


def write_checkpoint(folder: Path, step: int) -> Path:
    torch.manual_seed(step)
    policy = RDTPolicy(TINY)
    optimizer = torch.optim.AdamW(policy.parameters())
    scheduler = get_scheduler("constant", optimizer)
    out = folder / f"checkpoint-{step}"
    save_checkpoint(out, policy, optimizer, scheduler, None, {"normalization": {"mode": "min_max"}},
                    {"step": step}, pd.DataFrame({"step": [step]}), {"run": "x"})
    return out


def damage(path: Path, truncate: bool = False) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if truncate else data[:-1] + bytes([data[-1] ^ 0xFF]))


def test_an_intact_checkpoint_passes_and_a_damaged_one_is_named(tmp_path):
    folder = write_checkpoint(tmp_path, 2)
    assert checkpoint_problem(folder) is None and load_policy(folder)[0] is not None
    damage(folder / "model.safetensors")
    assert "model.safetensors does not match its checksum" in checkpoint_problem(folder)
    with pytest.raises(CorruptCheckpoint, match="delete .*checkpoint-2 and re-run"):
        load_policy(folder)


def test_resume_skips_a_truncated_checkpoint_for_the_latest_intact_one(tmp_path, capsys):
    write_checkpoint(tmp_path, 2)
    latest = write_checkpoint(tmp_path, 4)
    damage(latest / "state" / "optimizer.pt", truncate=True)
    assert resumable_checkpoint(latest) == tmp_path / "checkpoint-2"
    assert "cannot resume from checkpoint-4" in capsys.readouterr().err
    damage(tmp_path / "checkpoint-2" / "model.safetensors")
    assert resumable_checkpoint(latest) is None
    assert "training from the start" in capsys.readouterr().err


def test_a_full_disk_stops_before_writing_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda _: type("Usage", (), {"free": 1000})())
    with pytest.raises(DiskSpaceError, match=r"needs about 0\.\d\d GiB, 0\.00 GiB free"):
        write_checkpoint(tmp_path, 2)
    assert not list(tmp_path.iterdir())


def test_a_failed_write_leaves_no_staging_folder(tmp_path, monkeypatch):
    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", fail)
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(tmp_path, 2)
    assert not list(tmp_path.iterdir())
