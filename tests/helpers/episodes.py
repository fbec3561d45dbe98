"""Small synthetic episodes (3 columns, 20 steps, 16x16 RGB frames) and the data config they fit."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from rdtflow.data.episode import write_episode
from rdtflow.data.frames import decode_jpeg

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "rdtflow" / "schemas" / "config.schema.yaml"
INSTRUCTION = "pick up the cube and place it on the goal"
IDLE_STEPS = 3  # the synthetic robot waits this many steps before moving


def schema_defaults(node: dict) -> Any:
    """The default value a schema node gets once the workflow fills in defaults."""
    if "properties" in node:
        return {name: schema_defaults(child) for name, child in node["properties"].items()}
    return node.get("default")


def make_data_cfg(**overrides: Any) -> dict:
    """The ``data`` section with the schema's defaults, then ``overrides``."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    return schema_defaults(schema["properties"]["data"]) | overrides


def documented_reasons() -> set[str]:
    """The rejection reasons of docs/formats.md's table, the list users read."""
    table = (REPO / "docs" / "formats.md").read_text().split("| reason | the file |")[1].split("\n\n")[0]
    return {reason for line in table.splitlines()[2:] for reason in re.findall(r"`(\w+)`", line.split("|")[1])}


def synthetic_trajectory(n_steps: int, n_cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(action, qpos): idle for IDLE_STEPS, then a random walk; the action is the next state."""
    rng = np.random.default_rng(seed)
    moves = rng.normal(0.0, 0.05, size=(n_steps, n_cols)).astype(np.float32)
    moves[:IDLE_STEPS] = 0.0
    qpos = np.cumsum(moves, axis=0) + rng.uniform(-1, 1, size=n_cols).astype(np.float32)
    action = np.concatenate([qpos[1:], qpos[-1:]])
    return action.astype(np.float32), qpos.astype(np.float32)


def synthetic_frames(n_steps: int, seed: int, size: int = 16) -> list[np.ndarray]:
    """Smooth RGB images that change with the step (smooth, so JPEG keeps them close)."""
    base = np.random.default_rng(seed).integers(40, 200, size=3)
    return [np.full((size, size, 3), (base + 2 * step) % 256, dtype=np.uint8) for step in range(n_steps)]


def write_synthetic_episode(
    path: Path,
    n_steps: int = 20,
    n_cols: int = 3,
    cameras: tuple[str, ...] = ("cam_high",),
    seed: int = 0,
    **replacements: Any,
) -> Path:
    """Write a valid synthetic episode; ``replacements`` (action=, qpos=, frames=, attrs=) break it on purpose."""
    action, qpos = synthetic_trajectory(n_steps, n_cols, seed)
    arrays = {
        "action": action,
        "qpos": qpos,
        "frames": {camera: synthetic_frames(n_steps, seed + index) for index, camera in enumerate(cameras)},
    }
    write_episode(path, **(arrays | replacements))
    return path


def write_instruction_json(folder: Path, instruction: Any = INSTRUCTION) -> None:
    """The instruction.json agilex puts next to the episodes of one task."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instruction.json").write_text(json.dumps({"instruction": instruction}))


def replace_object(path: Path, key: str, make: Callable[[h5py.File, str], None]) -> None:
    """Delete the object at ``key`` of an episode file and let ``make(h5, key)`` put another there."""
    with h5py.File(path, "a") as h5:
        del h5[key]
        make(h5, key)


def store_frames_raw(path: Path, camera_key: str = "/observations/images/cam_high") -> Path:
    """Rewrite one camera's JPEG frames as raw uint8 pixels, one gzip chunk per frame (ACT's layout)."""
    with h5py.File(path, "a") as h5:
        pixels = np.stack([decode_jpeg(bytes(frame).rstrip(b"\0")) for frame in h5[camera_key][()]])
        del h5[camera_key]
        h5.create_dataset(camera_key, data=pixels, chunks=(1, *pixels.shape[1:]), compression="gzip")
    return path
