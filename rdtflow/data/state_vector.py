"""RDT's unified 128-d state/action vector: where each episode column lives in it.

RDT trains one model across robots by placing every robot's quantities at fixed slots of a
128-d vector (``state_vec.json``, copied from RDT's ``configs/state_vec.py``); unused slots
are zero and masked out.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from rdtflow.errors import ConfigError

STATE_VEC_FILE = Path(__file__).with_name("state_vec.json")
STATE_DIM = 128


@lru_cache(maxsize=1)
def _name_to_index() -> dict[str, int]:
    """Load the name -> slot table once; it never changes while the process runs."""
    table = json.loads(STATE_VEC_FILE.read_text())
    if table["state_dim"] != STATE_DIM:
        raise ValueError(f"{STATE_VEC_FILE} describes a {table['state_dim']}-d vector, expected {STATE_DIM}")
    return dict(table["index"])


def _unknown_name_message(name: str) -> str:
    """Explain an unknown name with its closest known spellings, since typos are the usual cause."""
    close = difflib.get_close_matches(name, _name_to_index(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown unified state name '{name}'{hint}; valid names are the keys of 'index' in {STATE_VEC_FILE}"


def unified_indices(names: list[str]) -> np.ndarray:
    """Slot in the unified vector of each named column, in column order.

    Two columns mapping to one slot would silently overwrite each other, so that is an error too.
    """
    table = _name_to_index()
    unknown = [name for name in names if name not in table]
    if unknown:
        raise ValueError("; ".join(_unknown_name_message(name) for name in unknown))
    indices = np.array([table[name] for name in names], dtype=np.int64)
    slots, counts = np.unique(indices, return_counts=True)
    shared = [[n for n in names if table[n] == slot] for slot in slots[counts > 1]]
    if shared:
        raise ValueError(f"state names share a unified slot and would overwrite each other: {shared}")
    return indices


def check_state_names(names: list[str]) -> None:
    """data.state_names must each name a slot of the unified vector, each slot once; the
    error is a ConfigError naming the key."""
    try:
        unified_indices(names)
    except ValueError as error:
        raise ConfigError(f"data.state_names: {error}") from None


def to_unified(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Scatter (..., D) episode columns into zero-filled (..., 128) unified vectors."""
    values = np.asarray(values)
    if values.shape[-1] != len(indices):
        raise ValueError(f"values have {values.shape[-1]} columns but {len(indices)} unified indices were given")
    unified = np.zeros((*values.shape[:-1], STATE_DIM), dtype=np.float32)
    unified[..., indices] = values
    return unified


def unified_mask(indices: np.ndarray) -> np.ndarray:
    """(128,) float32 mask: 1 at the slots this robot fills, 0 elsewhere (RDT's state_elem_mask)."""
    mask = np.zeros(STATE_DIM, dtype=np.float32)
    mask[indices] = 1.0
    return mask
