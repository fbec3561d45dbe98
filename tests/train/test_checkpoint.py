"""Checkpoint integrity: damaged checkpoints are named and skipped, a full disk stops before writing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file

from rdtflow.model.policy import RDTPolicy
from rdtflow.paths import CheckpointFile as File
from rdtflow.train import checkpoint as ckpt
from rdtflow.train.checkpoint import (
    CorruptCheckpoint,
    DiskSpaceError,
    checkpoint_problem,
    load_checkpoint_weights,
    resumable_checkpoint,
    save_checkpoint,
)
from tests.helpers.models import TINY, tiny_batch, write_checkpoint


def damage(path: Path, truncate: bool = False) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if truncate else data[:-1] + bytes([data[-1] ^ 0xFF]))


def test_an_intact_checkpoint_passes_and_a_damaged_one_is_named(tmp_path):
    folder = write_checkpoint(tmp_path, 2)
    assert checkpoint_problem(folder) is None and load_checkpoint_weights(folder)[0] is not None
    damage(folder / "model.safetensors")
    assert "model.safetensors does not match its checksum" in checkpoint_problem(folder)
    with pytest.raises(CorruptCheckpoint, match="delete .*checkpoint-2 and re-run"):
        load_checkpoint_weights(folder)


def test_evaluation_loads_the_ema_weights_when_the_run_kept_an_ema(tmp_path):
    """The EMA holds another initialisation's weights, so EMA and live weights differ wherever
    the two initialisations do (every weight matrix; biases start at 0, norms at 1)."""
    torch.manual_seed(1)
    ema = EMAModel(RDTPolicy(TINY).parameters(), decay=0.9)
    torch.manual_seed(2)
    policy = RDTPolicy(TINY)
    loaded = load_checkpoint_weights(write_checkpoint(tmp_path, 2, ema=ema, policy=policy))[0].state_dict()
    parameters = dict(policy.named_parameters())
    differing = [name for (name, live), shadow in zip(parameters.items(), ema.shadow_params, strict=True)
                 if not torch.equal(live, shadow)]
    assert len(differing) >= 20
    for name, shadow in zip(parameters, ema.shadow_params, strict=True):
        torch.testing.assert_close(loaded[name], shadow, rtol=0, atol=0)
    without_ema = write_checkpoint(tmp_path / "plain", 2, policy=policy)
    torch.testing.assert_close(load_checkpoint_weights(without_ema)[0].state_dict(), policy.state_dict(), rtol=0, atol=0)


def test_resume_skips_a_truncated_checkpoint_for_the_latest_intact_one(tmp_path, capsys):
    write_checkpoint(tmp_path, 2)
    latest = write_checkpoint(tmp_path, 4)
    damage(latest / "state" / "optimizer.pt", truncate=True)
    assert resumable_checkpoint(latest) == tmp_path / "checkpoint-2"
    assert "cannot resume from checkpoint-4" in capsys.readouterr().err
    damage(tmp_path / "checkpoint-2" / "model.safetensors")
    assert resumable_checkpoint(latest) is None
    assert "training from the start" in capsys.readouterr().err


def test_the_disk_space_asked_for_counts_every_tensor_written(tmp_path, monkeypatch):
    """Weights, EMA weights, optimizer and EMA state of a trained step, read back from the
    files, plus the margin for headers and small files."""
    asked = []
    check = ckpt.ensure_disk_space
    monkeypatch.setattr(ckpt, "ensure_disk_space", lambda folder, needed: (asked.append(needed), check(folder, needed)))
    torch.manual_seed(0)
    policy = RDTPolicy(TINY)
    optimizer = torch.optim.AdamW(policy.parameters())
    policy.compute_loss(tiny_batch()).backward()
    optimizer.step()
    ema = EMAModel(policy.parameters(), decay=0.9)
    out = tmp_path / "checkpoint-1"
    save_checkpoint(out, policy, optimizer, get_scheduler("constant", optimizer), ema, {}, {"step": 1}, pd.DataFrame(), {}, {})
    written = sum(ckpt._tensor_bytes(load_file(str(out / name))) for name in (File.WEIGHTS, File.EMA_WEIGHTS))
    written += sum(ckpt._tensor_bytes(torch.load(out / name, weights_only=True))
                   for name in (File.OPTIMIZER, File.SCHEDULER, File.EMA_STATE))
    assert asked == [written + ckpt.DISK_MARGIN_BYTES]


def test_a_full_disk_stops_before_writing_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda _: type("Usage", (), {"free": 1000})())
    with pytest.raises(DiskSpaceError, match=r"needs about 0\.\d\d GiB, 0\.00 GiB free"):
        write_checkpoint(tmp_path, 2)
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_is_written_under_a_temporary_name_and_renamed_into_place(tmp_path, monkeypatch):
    written_into = []
    save = ckpt.torch.save

    def recording_save(state, path):
        written_into.append((Path(path).relative_to(tmp_path).parts[0], (tmp_path / "checkpoint-2").exists()))
        save(state, path)

    monkeypatch.setattr(ckpt.torch, "save", recording_save)
    write_checkpoint(tmp_path, 2)
    assert written_into and set(written_into) == {("checkpoint-2.tmp", False)}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-2"] and checkpoint_problem(tmp_path / "checkpoint-2") is None


def test_a_failed_write_leaves_no_staging_folder(tmp_path, monkeypatch):
    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", fail)
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(tmp_path, 2)
    assert not list(tmp_path.iterdir())
