"""The embedded default stays what it was: golden values of a reduced default run
(tests/fixtures/default_golden.json), recorded before the built-in task learned relations
(2026-12-08, on main at cfd64cf, from the session's reference training: tests/conftest.py).

The determinism test compares two runs of the same code, so it cannot notice that a change to
the simulator moved the default's numbers. These values can: the demos bit for bit (their
arrays, frames and attributes), and the checkpoint trained on them. The checkpoint's floats
come from torch on this CPU; another CPU may round differently, so its training losses and
weight norms are compared to 1e-5 relative, far below what any change to the data or the
random draws moves them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from rdtflow.paths import CheckpointFile

GOLDEN = json.loads((Path(__file__).parents[1] / "fixtures" / "default_golden.json").read_text())


def demos_digest(folder: Path) -> str:
    """SHA-256 of every episode's datasets (name, dtype, shape, values) and root attributes, and
    of the folder's JSON files: what the demos hold, not how HDF5 laid out its bytes."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.json")):
        digest.update(path.name.encode() + path.read_bytes())
    for path in sorted(folder.glob("*.hdf5")):
        digest.update(path.name.encode())
        with h5py.File(path, "r") as file:
            for key in sorted(file.attrs):
                digest.update(f"{key}={file.attrs[key]}".encode())
            datasets: list[tuple[str, h5py.Dataset]] = []
            file.visititems(lambda name, item: datasets.append((name, item)) if isinstance(item, h5py.Dataset) else None)
            for name, dataset in sorted(datasets):
                values = dataset[()]
                digest.update(f"{name}:{dataset.dtype}:{dataset.shape}".encode())
                if dataset.dtype.kind == "O":  # variable-length JPEG frames
                    for value in values:
                        digest.update(np.asarray(value).tobytes())
                else:
                    digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def weight_norms(path: Path) -> dict[str, float]:
    return {name: float(np.linalg.norm(tensor.astype(np.float64))) for name, tensor in sorted(load_file(path).items())}


def test_the_default_tasks_demos_are_bit_for_bit_as_recorded(prepared_data):
    assert demos_digest(prepared_data / "equivalence" / "demos") == GOLDEN["demos_sha256"]


def test_the_checkpoint_trained_on_them_is_as_recorded(one_process_checkpoint):
    losses = pd.read_csv(one_process_checkpoint / CheckpointFile.TRAIN_LOG)["loss"].tolist()
    norms = weight_norms(one_process_checkpoint / CheckpointFile.WEIGHTS)
    ema = weight_norms(one_process_checkpoint / CheckpointFile.EMA_WEIGHTS)
    assert losses == pytest.approx(GOLDEN["losses"], rel=1e-5)
    assert norms == pytest.approx(GOLDEN["weight_norms"], rel=1e-5)
    assert ema == pytest.approx(GOLDEN["ema_weight_norms"], rel=1e-5)
