"""RDT weights in the official checkpoint layout: strict loading and export.

The published RDT checkpoints are a folder with a flat `config.json` and `pytorch_model.bin`
(or `model.safetensors`). rdtflow's tensor names equal the official ones, so they load with
strict=True; anything missing, unexpected or of another shape is an error naming the tensor,
never a silently random layer. A `.bin` is unpickled with `weights_only=True` (no code from
the file runs); rdtflow writes only safetensors.
"""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from rdtflow.errors import BadCheckpoint, MissingFile
from rdtflow.model.policy import RDTConfig, RDTPolicy
from rdtflow.paths import CheckpointFile


class WeightsMismatch(BadCheckpoint):
    """A checkpoint whose tensors do not fit the model exactly."""


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of an official-layout folder: safetensors if present, else the .bin."""
    folder = Path(folder)
    if (folder / CheckpointFile.WEIGHTS).is_file():
        return load_file(str(folder / CheckpointFile.WEIGHTS))
    if (folder / CheckpointFile.UPSTREAM_WEIGHTS).is_file():
        try:
            return torch.load(folder / CheckpointFile.UPSTREAM_WEIGHTS, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            found = re.search(r"GLOBAL (\S+)", str(error))  # torch names the first object it refused
            reason = f"it refers to {found[1]}" if found else "it is not a plain tensor file"
            raise BadCheckpoint(
                f"{folder / CheckpointFile.UPSTREAM_WEIGHTS} holds objects other than tensors, which could run code if "
                f"unpickled, so it was not ({reason}); convert it to {CheckpointFile.WEIGHTS} where you trust its "
                "origin, or use the publisher's original file"
            ) from None
    raise MissingFile(f"{folder}: no {CheckpointFile.WEIGHTS} or {CheckpointFile.UPSTREAM_WEIGHTS}; point "
                      "model.pretrained at an RDT checkpoint folder")


def load_strict(policy: RDTPolicy, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy every tensor into the model (casting dtypes), or say exactly which ones do not fit."""
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [
        f"{name}: checkpoint {tuple(tensors[name].shape)}, model {tuple(expected[name].shape)}"
        for name in sorted(set(expected) & set(tensors))
        if tensors[name].shape != expected[name].shape
    ]
    problems = (
        [f"missing tensor {name}" for name in missing[:10]]
        + [f"unexpected tensor {name}" for name in unexpected[:10]]
        + [f"shape mismatch {line}" for line in mismatched[:10]]
    )
    if problems:
        counts = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} of another shape"
        raise WeightsMismatch(f"{source} does not fit the model ({counts}):\n  " + "\n  ".join(problems))
    policy.load_state_dict(tensors, strict=True)


def config_file(folder: Path) -> Path:
    """The config.json that describes a checkpoint folder's weights.

    Upstream saves its EMA weights as `ema/model.safetensors` with no config.json of their
    own: they are the same model as the folder above, so that folder's config.json is used.
    """
    folder = Path(folder)
    if (folder / CheckpointFile.CONFIG).is_file():
        return folder / CheckpointFile.CONFIG
    if folder.name == CheckpointFile.EMA_DIR and (folder.parent / CheckpointFile.CONFIG).is_file():
        return folder.parent / CheckpointFile.CONFIG
    raise MissingFile(f"model.pretrained: {folder} has no {CheckpointFile.CONFIG} (only an "
                      f"{CheckpointFile.EMA_DIR}/ folder may use its parent's)")


def load_pretrained(folder: Path) -> RDTPolicy:
    """An RDT policy with the architecture and weights of a checkpoint folder."""
    policy = RDTPolicy(RDTConfig.from_json(config_file(folder)))
    load_strict(policy, read_state_dict(folder), Path(folder))
    return policy


def starting_weights(folder: Path) -> Path:
    """The weights a run starts from in a checkpoint folder: its EMA (ema/, what the run that
    wrote it evaluated and exported) where it kept one, else its own."""
    ema = Path(folder) / CheckpointFile.EMA_DIR
    kept = any((ema / name).is_file() for name in (CheckpointFile.WEIGHTS, CheckpointFile.UPSTREAM_WEIGHTS))
    return ema if kept else Path(folder)


def load_pretrained_into(policy: RDTPolicy, folder: Path) -> Path:
    """Start `policy` (built from the run's config) from a checkpoint folder's starting weights,
    once their config.json describes the same architecture (the error lists what differs).
    Returns the folder whose weights were loaded."""
    weights = starting_weights(folder)
    differences = RDTConfig.from_json(config_file(weights)).architecture_differences(policy.config)
    if differences:
        raise WeightsMismatch(
            f"model.pretrained {folder} has another architecture than this config describes "
            f"(checkpoint vs config): {'; '.join(differences)}; set model/encoders/data to match it"
        )
    load_strict(policy, read_state_dict(weights), weights)
    return weights


def export_checkpoint(checkpoint_dir: Path, out_dir: Path) -> Path:
    """Write a training checkpoint in the official layout: config.json + model.safetensors,
    ema/ (same layout) when the run kept an EMA, and rdtflow's stats.json for normalisation and
    run_config.json (the config it was trained with, and the rdtflow version)."""
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    config = RDTConfig.from_json(checkpoint_dir / CheckpointFile.CONFIG)
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = [(checkpoint_dir / CheckpointFile.WEIGHTS, out_dir)]
    if (checkpoint_dir / CheckpointFile.EMA_WEIGHTS).is_file():
        variants.append((checkpoint_dir / CheckpointFile.EMA_WEIGHTS, out_dir / CheckpointFile.EMA_DIR))
    for weights, target in variants:
        target.mkdir(parents=True, exist_ok=True)
        tensors = load_file(str(weights))
        policy = RDTPolicy(config)
        load_strict(policy, tensors, weights)  # never export something that would not load back
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(target / CheckpointFile.WEIGHTS),
                  metadata={"format": "pt"})
        config.to_json(target / CheckpointFile.CONFIG)
    for name in (CheckpointFile.STATS, CheckpointFile.RUN_CONFIG):
        shutil.copy(checkpoint_dir / name, out_dir / name)
    return out_dir
