"""One demonstration episode as stored in HDF5 (the layouts are in docs/formats.md).

An episode is a whole file (agilex, ACT, RoboTwin) or one group of a file of many demos
(robomimic's data/demo_N); its data keys are relative to that node. Actions and states are
float (T, D) datasets, or several joined column-wise, or states only (the action is then the
next state); each camera is a dataset of T frames, stored as JPEG bytes or raw pixels
(rdtflow/data/frames.py reads them all, one frame at a time).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rdtflow.data.cameras import recorded_cameras
from rdtflow.data.frames import CameraFrames, encode_jpeg, padded_byte_strings

StateKey = str | list[str]  # one dataset, or several joined column-wise


@dataclass
class Episode:
    """An episode's numbers as read from disk; its frames stay in the file (``camera_frames``)."""

    path: Path
    action: np.ndarray  # float32 (T, D)
    qpos: np.ndarray  # float32 (T, D)
    attrs: dict[str, Any]  # HDF5 root attributes, byte strings decoded to str


def write_episode(
    path: Path,
    action: np.ndarray,
    qpos: np.ndarray,
    frames: dict[str, list[np.ndarray]],
    attrs: dict[str, str] | None = None,
    qvel: np.ndarray | None = None,
    jpeg_quality: int = 90,
    raw_frames: bool = False,
) -> None:
    """Write an episode in the agilex layout so that real recorders' files and ours read alike;
    ``raw_frames`` stores uint8 pixels instead of JPEG, one gzip chunk per frame, as ACT does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    qpos = np.asarray(qpos, dtype=np.float32)
    qvel = np.zeros_like(qpos) if qvel is None else np.asarray(qvel, dtype=np.float32)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("action", data=np.asarray(action, dtype=np.float32))
        h5.create_dataset("observations/qpos", data=qpos)
        h5.create_dataset("observations/qvel", data=qvel)
        images = h5.create_group("observations/images")
        for camera, pixels in frames.items():
            if raw_frames:
                stacked = np.stack(pixels).astype(np.uint8)
                images.create_dataset(camera, data=stacked, chunks=(1, *stacked.shape[1:]), compression="gzip")
            else:
                images.create_dataset(camera, data=padded_byte_strings([encode_jpeg(frame, jpeg_quality) for frame in pixels]))
        for name, value in (attrs or {}).items():
            h5.attrs[name] = value


def _decode_attribute(value: Any) -> Any:
    """HDF5 string attributes may come back as bytes; callers want str."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def state_keys(key: StateKey) -> list[str]:
    """The datasets of ``data.qpos_key`` / ``data.action_key``: one key, or several whose
    columns are joined in order (RoboTwin's arm and gripper datasets, robomimic's obs keys)."""
    return [key] if isinstance(key, str) else list(key)


def read_columns(node: h5py.Group, key: StateKey) -> np.ndarray:
    """The (T, D) float32 array of one key or of several joined side by side; a 1-D dataset
    (one gripper's opening per step) is one column. float32 is the pipeline's precision."""
    parts = [np.asarray(node[name][()], dtype=np.float32) for name in state_keys(key)]
    return np.concatenate([part.reshape(len(part), -1) for part in parts], axis=1)


def next_states(qpos: np.ndarray) -> np.ndarray:
    """The action of recordings that store only states (RoboTwin, robomimic's joints): step
    t's action is the state reached at t + 1, and the last step holds its state."""
    return np.concatenate([qpos[1:], qpos[-1:]])


def read_numbers(node: h5py.Group, data_cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """(action, qpos) of an open episode; ``data.action_key: null`` means the next state."""
    qpos = read_columns(node, data_cfg["qpos_key"])
    action_key = data_cfg["action_key"]
    return (next_states(qpos) if action_key is None else read_columns(node, action_key)), qpos


def episode_from_h5(node: h5py.Group, path: Path, data_cfg: dict) -> Episode:
    """Build an Episode from an already open file or episode group (the validator inspects it first)."""
    action, qpos = read_numbers(node, data_cfg)
    return Episode(path=Path(path), action=action, qpos=qpos,
                   attrs={name: _decode_attribute(value) for name, value in node.attrs.items()})


@contextmanager
def open_episode(path: Path, group: str = "") -> Iterator[h5py.Group]:
    """An episode's HDF5 node: the file's root, or for a file of many demos (robomimic) the
    episode's own group, which the data keys are then relative to."""
    with h5py.File(path, "r") as h5:
        yield h5[group] if group else h5


def read_episode(path: Path, data_cfg: dict, group: str = "") -> Episode:
    """Read an episode's numbers using the configured dataset keys."""
    with open_episode(path, group) as node:
        return episode_from_h5(node, path, data_cfg)


def camera_frames(node: h5py.Group, data_cfg: dict) -> dict[str, CameraFrames]:
    """Each configured camera's frames in an open episode, in config camera order."""
    image_group = data_cfg["image_group"].rstrip("/")
    return {camera: CameraFrames(node[f"{image_group}/{camera}"]) for camera in recorded_cameras(data_cfg["cameras"])}


@contextmanager
def episode_cameras(path: Path, data_cfg: dict, group: str = "") -> Iterator[dict[str, CameraFrames]]:
    """The cameras' frames of an episode, readable while the context is open."""
    with open_episode(path, group) as node:
        yield camera_frames(node, data_cfg)


def read_attributes(path: Path, group: str = "") -> dict[str, Any]:
    """The episode's attributes only (e.g. the simulator's stored initial state)."""
    with open_episode(path, group) as node:
        return {name: _decode_attribute(value) for name, value in node.attrs.items()}


def read_trajectory(path: Path, data_cfg: dict, group: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(action, qpos) without the frames, for consumers that only need the numbers."""
    with open_episode(path, group) as node:
        return read_numbers(node, data_cfg)


def _first_entry(value: Any, source: str) -> str | None:
    """An instruction may be a string or a list of paraphrases; the first one is used."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{source}: expected a string or a list of strings, got {type(value).__name__}")
    return value


def instruction_file(path: Path, file_name: str) -> Path:
    """The JSON instruction file of an episode: ``file_name`` relative to the episode's folder,
    with ``{stem}`` standing for the episode file's name without .hdf5 (RoboTwin keeps one per
    episode: ../instructions/{stem}.json); agilex keeps one per task folder."""
    return Path(path).parent / file_name.replace("{stem}", Path(path).stem)


def _instruction_from_json(path: Path, file_name: str, key: str) -> str | None:
    """The instruction from the episode's JSON file, or None when there is none."""
    json_path = instruction_file(path, file_name)
    if not json_path.is_file():
        return None
    try:
        content = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path} is not valid JSON ({err}); it should hold {{\"{key}\": \"...\"}}") from err
    if not isinstance(content, dict):
        raise ValueError(f"{json_path} should hold a JSON object {{\"{key}\": \"...\"}}, got {type(content).__name__}")
    return _first_entry(content.get(key), f"{json_path} key '{key}'")


def _instruction_from_attribute(attrs: Mapping[str, Any], path: Path, key: str) -> str | None:
    """The instruction stored as an HDF5 root attribute, or None when there is none."""
    value = attrs.get(key)
    value = value.tolist() if isinstance(value, np.ndarray) else value
    if isinstance(value, list):
        value = [_decode_attribute(entry) for entry in value]
    return _first_entry(_decode_attribute(value), f"{path} attribute '{key}'")


def read_instruction(path: Path, data_cfg: dict, attrs: Mapping[str, Any]) -> str | None:
    """The episode's language instruction per ``data.instruction``; None when missing or blank.

    ``attrs`` are the episode's root attributes, already read (the validator opens each file once).
    """
    instruction_cfg = data_cfg["instruction"]
    if instruction_cfg["source"] == "json":
        instruction = _instruction_from_json(path, instruction_cfg["file"], instruction_cfg["key"])
    else:
        instruction = _instruction_from_attribute(attrs, path, instruction_cfg["key"])
    if instruction is None or not instruction.strip():
        return None
    return instruction.strip()
