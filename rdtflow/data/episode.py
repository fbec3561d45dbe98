"""One demonstration episode in the ALOHA / agilex HDF5 layout (see docs/formats.md).

Actions and states are float (T, D) datasets; each camera is a dataset of T JPEG-encoded
frames. agilex stores the frames as fixed-length byte strings padded with b"\\0"; other
recorders store variable-length uint8 arrays, so the reader accepts both.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image

from rdtflow.data.cameras import recorded_cameras


@dataclass
class Episode:
    """An episode as read from disk; frames stay JPEG-encoded until a consumer needs pixels."""

    path: Path
    action: np.ndarray  # float32 (T, D)
    qpos: np.ndarray  # float32 (T, D)
    frames: dict[str, list[bytes]]  # camera -> T JPEG byte strings, in config camera order
    attrs: dict[str, Any]  # HDF5 root attributes, byte strings decoded to str


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an HxWx3 uint8 RGB image."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB pixels of an encoded image, whatever its stored mode (grey, CMYK, ...)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _padded_byte_strings(blobs: list[bytes]) -> np.ndarray:
    """Fixed-length ``S{max_len}`` array, which numpy pads with b"\\0" exactly as agilex does."""
    max_len = max([1, *(len(blob) for blob in blobs)])  # numpy has no zero-length "S0" dtype
    return np.array(blobs, dtype=f"S{max_len}")


def write_episode(
    path: Path,
    action: np.ndarray,
    qpos: np.ndarray,
    frames: dict[str, list[np.ndarray]],
    attrs: dict[str, str] | None = None,
    qvel: np.ndarray | None = None,
    jpeg_quality: int = 90,
) -> None:
    """Write an episode in the agilex layout so that real recorders' files and ours read alike."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    qpos = np.asarray(qpos, dtype=np.float32)
    qvel = np.zeros_like(qpos) if qvel is None else np.asarray(qvel, dtype=np.float32)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("action", data=np.asarray(action, dtype=np.float32))
        h5.create_dataset("observations/qpos", data=qpos)
        h5.create_dataset("observations/qvel", data=qvel)
        images = h5.create_group("observations/images")
        for camera, camera_frames in frames.items():
            jpegs = [encode_jpeg(frame, jpeg_quality) for frame in camera_frames]
            images.create_dataset(camera, data=_padded_byte_strings(jpegs))
        for name, value in (attrs or {}).items():
            h5.attrs[name] = value


def _is_variable_length(dataset: h5py.Dataset) -> bool:
    """Variable-length uint8 frames (True) or agilex's padded byte strings (False); else an error."""
    if h5py.check_vlen_dtype(dataset.dtype) is not None:
        return True
    if dataset.dtype.kind == "S" and dataset.ndim == 1:
        return False
    raise TypeError(
        f"camera dataset '{dataset.name}' has dtype {dataset.dtype} and shape {dataset.shape}; expected one JPEG per "
        "step as fixed-length byte strings or variable-length uint8 arrays (raw pixel arrays must be JPEG-encoded)"
    )


def _jpeg_bytes(value: Any, variable_length: bool) -> bytes:
    """Padding is stripped only from fixed-length strings: a JPEG ends with the EOI marker
    (FF D9), so trailing zeros there can only be padding, while variable-length data is exact."""
    if variable_length:
        return value if isinstance(value, bytes) else np.asarray(value, np.uint8).tobytes()
    return bytes(value).rstrip(b"\0")


def read_frames(dataset: h5py.Dataset) -> list[bytes]:
    """JPEG bytes of every frame of a camera dataset, padded or variable-length."""
    variable_length = _is_variable_length(dataset)
    return [_jpeg_bytes(frame, variable_length) for frame in dataset[()]]


def read_frame(dataset: h5py.Dataset, step: int) -> bytes:
    """JPEG bytes of one frame, without reading the others (training reads frames one by one)."""
    return _jpeg_bytes(dataset[step], _is_variable_length(dataset))


def _decode_attribute(value: Any) -> Any:
    """HDF5 string attributes may come back as bytes; callers want str."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _read_array(h5: h5py.File, key: str) -> np.ndarray:
    """A (T, D) dataset as float32, the precision the whole pipeline works in."""
    return np.asarray(h5[key][()], dtype=np.float32)


def episode_from_h5(h5: h5py.File, path: Path, data_cfg: dict) -> Episode:
    """Build an Episode from an already open file (the validator inspects the file first)."""
    image_group = data_cfg["image_group"].rstrip("/")
    return Episode(
        path=Path(path),
        action=_read_array(h5, data_cfg["action_key"]),
        qpos=_read_array(h5, data_cfg["qpos_key"]),
        frames={camera: read_frames(h5[f"{image_group}/{camera}"]) for camera in recorded_cameras(data_cfg["cameras"])},
        attrs={name: _decode_attribute(value) for name, value in h5.attrs.items()},
    )


def read_episode(path: Path, data_cfg: dict) -> Episode:
    """Read an episode using the configured dataset keys and cameras."""
    with h5py.File(path, "r") as h5:
        return episode_from_h5(h5, path, data_cfg)


def read_attributes(path: Path) -> dict[str, Any]:
    """The root attributes only (e.g. the simulator's stored initial state)."""
    with h5py.File(path, "r") as h5:
        return {name: _decode_attribute(value) for name, value in h5.attrs.items()}


def read_trajectory(path: Path, data_cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """(action, qpos) without the frames, for consumers that only need the numbers."""
    with h5py.File(path, "r") as h5:
        return _read_array(h5, data_cfg["action_key"]), _read_array(h5, data_cfg["qpos_key"])


def content_hash(episode: Episode) -> str:
    """sha256 of the arrays and every frame, so a copied episode is recognised under any name."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(episode.action).tobytes())
    digest.update(np.ascontiguousarray(episode.qpos).tobytes())
    for camera_frames in episode.frames.values():
        for frame in camera_frames:
            digest.update(frame)
    return digest.hexdigest()


def _first_entry(value: Any, source: str) -> str | None:
    """An instruction may be a string or a list of paraphrases; the first one is used."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{source}: expected a string or a list of strings, got {type(value).__name__}")
    return value


def _instruction_from_json(path: Path, file_name: str, key: str) -> str | None:
    """The instruction from the JSON file next to the episode, or None when there is none."""
    json_path = Path(path).parent / file_name
    if not json_path.is_file():
        return None
    try:
        content = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path} is not valid JSON ({err}); it should hold {{\"{key}\": \"...\"}}") from err
    if not isinstance(content, dict):
        raise ValueError(f"{json_path} should hold a JSON object {{\"{key}\": \"...\"}}, got {type(content).__name__}")
    return _first_entry(content.get(key), f"{json_path} key '{key}'")


def _instruction_from_attribute(path: Path, key: str) -> str | None:
    """The instruction stored as an HDF5 root attribute, or None when there is none."""
    with h5py.File(path, "r") as h5:
        value = h5.attrs.get(key)
    value = value.tolist() if isinstance(value, np.ndarray) else value
    if isinstance(value, list):
        value = [_decode_attribute(entry) for entry in value]
    return _first_entry(_decode_attribute(value), f"{path} attribute '{key}'")


def read_instruction(path: Path, data_cfg: dict) -> str | None:
    """The episode's language instruction per ``data.instruction``; None when missing or blank."""
    instruction_cfg = data_cfg["instruction"]
    if instruction_cfg["source"] == "json":
        instruction = _instruction_from_json(path, instruction_cfg["file"], instruction_cfg["key"])
    else:
        instruction = _instruction_from_attribute(path, instruction_cfg["key"])
    if instruction is None or not instruction.strip():
        return None
    return instruction.strip()
