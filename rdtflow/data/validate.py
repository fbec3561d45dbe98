"""Stage validate: check every demonstration file and record which ones training may use.

Bad files are common in real demonstration folders (aborted recordings, copied episodes,
renamed keys), so each file is checked on its own and rejected with a short reason code and
a human detail naming the key and the fix, while the good files go on. Outputs are
``validated.parquet`` and ``validation.json`` (docs/formats.md, which lists the reasons).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from PIL import Image

from rdtflow.data.cameras import recorded_cameras
from rdtflow.data.episode import episode_from_h5, read_instruction
from rdtflow.data.frames import JPEG_END, JPEG_START, CameraFrames, decode_jpeg
from rdtflow.data.state_vector import check_state_names
from rdtflow.errors import RdtflowError
from rdtflow.progress import progress

VALIDATED_COLUMNS = [
    "path", "episode_id", "n_steps", "first_moving_step", "content_hash", "instruction", "valid", "reason"
]

# float32, the precision every array is read in, holds integers exactly only up to 2**24.
FLOAT32_EXACT_INTEGER = 2**24
# Python's default repr of an object, and h5py's of its objects: internals a user cannot act on.
OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>|<HDF5 [^\">]*(?:\"[^\"]*\"[^\">]*)*>|<Closed HDF5 [^>]*>")


class DemoValidationError(RdtflowError):
    """The demonstrations cannot be used: no valid episode, or a rejection under ``data.strict``."""


class Rejected(Exception):
    """One file fails one check; ``reason`` is a snake_case code, ``detail`` says what to fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def first_moving_step(qpos: np.ndarray, moving_threshold: float) -> int | None:
    """First step whose state differs from step 0 by more than the threshold (max abs); None if never.

    Recordings usually start with the robot idle; training on those steps teaches it to wait.
    """
    moved = np.abs(qpos - qpos[:1]).max(axis=1) > moving_threshold
    return int(np.argmax(moved)) if moved.any() else None


def _plain(err: Exception) -> str:
    """A library's message on one line, without object reprs: the part a user can act on."""
    return OBJECT_REPR.sub("an object", " ".join(str(err).split())) or "no message"


def _lookup(h5: h5py.File, key: str) -> h5py.Dataset | h5py.Group | None:
    """The object at ``key``, None if there is none; a soft link that leads nowhere or in a
    circle is rejected as what it is (HDF5 itself reports a cycle as an opaque RuntimeError)."""
    try:
        found = h5.get(key)
    except RuntimeError as err:  # "Special link traversal failed (too many links)"
        raise Rejected(
            "broken_link",
            f"'{key}' is reached through soft links that form a cycle (HDF5: {_plain(err)}); replace the links with the data",
        ) from err
    if found is None:
        link = h5.get(key, getlink=True)
        if isinstance(link, h5py.SoftLink):
            raise Rejected(
                "broken_link", f"'{key}' is a soft link to '{link.path}', which does not exist; point it at the data"
            )
    return found


def _dataset_keys(h5: h5py.File) -> list[str]:
    """Every dataset path in the file, to show the user what the keys should have been."""
    keys: list[str] = []
    h5.visititems(lambda name, item: keys.append(f"/{name}") if isinstance(item, h5py.Dataset) else None)
    return keys


def _require_dataset(h5: h5py.File, key: str, config_key: str) -> h5py.Dataset:
    """The dataset at ``key``, or a missing_dataset rejection listing what the file does hold."""
    dataset = _lookup(h5, key)
    if isinstance(dataset, h5py.Group):
        raise Rejected("missing_dataset", f"'{key}' is a group, not a dataset; set data.{config_key} to the dataset's key")
    if not isinstance(dataset, h5py.Dataset):
        raise Rejected(
            "missing_dataset",
            f"no dataset '{key}' (the file holds {', '.join(_dataset_keys(h5)) or 'no datasets'}); "
            f"set data.{config_key} to the right key",
        )
    return dataset


def _require_cameras(h5: h5py.File, image_group: str, cameras: list[str]) -> dict[str, h5py.Dataset]:
    """Each configured camera's dataset: every camera that fills a model image slot is required."""
    group = _lookup(h5, image_group)
    if not isinstance(group, h5py.Group):
        raise Rejected("missing_dataset", f"no image group '{image_group}'; set data.image_group to the right key")
    datasets = {camera: _lookup(h5, f"{image_group}/{camera}") for camera in cameras}
    groups = [camera for camera, dataset in datasets.items() if isinstance(dataset, h5py.Group)]
    if groups:
        raise Rejected("missing_camera", f"camera(s) {', '.join(groups)} in '{image_group}' are groups, not datasets of "
                                         "frames; store one frame per step in a dataset named after the camera")
    missing = [camera for camera, dataset in datasets.items() if dataset is None]
    if missing:
        raise Rejected(
            "missing_camera",
            f"camera(s) {', '.join(missing)} not in '{image_group}' (it holds {', '.join(group) or 'nothing'}); "
            "fix data.cameras or re-record",
        )
    return datasets


def _check_state_dataset(key: str, dataset: h5py.Dataset, state_names: list[str]) -> None:
    """A state/action dataset must be numeric (T, D) with one column per ``data.state_names`` entry."""
    if dataset.dtype.kind not in "iuf":
        raise Rejected("bad_dtype", f"'{key}' has dtype {dataset.dtype}; it must hold numbers")
    if dataset.ndim != 2 or dataset.shape[1] != len(state_names):
        raise Rejected(
            "wrong_state_dim",
            f"'{key}' has shape {dataset.shape} but data.state_names lists {len(state_names)} names "
            f"(one per column, expected shape (T, {len(state_names)}))",
        )


def _check_float32_range(key: str, dataset: h5py.Dataset) -> None:
    """Every array is read as float32; values it cannot hold are rejected with the value itself,
    which the rounded or infinite number would no longer show.

    - Integers beyond 2**24 would be silently rounded. In a recording they are a fault, not a
      measurement: an unsigned reading that wrapped below zero (-1 stored as uint32 is
      4294967295), or a counter or timestamp stored as a joint (integer_overflow).
    - float64 values beyond float32's range would become Inf (inf_values).
    """
    if dataset.dtype.kind in "iu":
        limit, reason, text = FLOAT32_EXACT_INTEGER, "integer_overflow", "{}"
        fix = "that float32 represents exactly (a wrapped unsigned value or a counter?); store the recording as float32"
    elif dataset.dtype.kind == "f" and dataset.dtype.itemsize > 4:
        limit, reason, text = float(np.finfo(np.float32).max), "inf_values", "{:.3g}"
        fix = "of float32, which rdtflow reads it as (it would become Inf); fix or drop the recording"
    else:
        return
    if dataset.size == 0:
        return
    values = dataset[()]
    beyond = np.abs(values.astype(np.float64)) > limit  # also a float64 file's own Inf, which float32 keeps
    if beyond.any():
        step, column = np.argwhere(beyond)[0]
        raise Rejected(reason, f"'{key}' ({dataset.dtype}) holds {text.format(values[step, column])} at step {step} "
                               f"column {column}, beyond the +-{text.format(limit)} {fix}")


def _check_lengths(step_counts: dict[str, int]) -> int:
    """Action, state and every camera must have one entry per step; returns the step count."""
    if len(set(step_counts.values())) > 1:
        counts = ", ".join(f"'{key}': {count}" for key, count in step_counts.items())
        raise Rejected("length_mismatch", f"step counts differ ({counts}); every dataset needs one entry per step")
    return next(iter(step_counts.values()))


def _check_min_steps(n_steps: int, min_episode_steps: int) -> None:
    """Too short episodes cannot fill a training window; an empty one is a recording that never started."""
    if n_steps == 0:
        raise Rejected(
            "zero_steps", "every dataset is empty (0 steps): the recording stopped before its first step; delete it"
        )
    if n_steps < min_episode_steps:
        raise Rejected("too_short", f"{n_steps} steps, fewer than data.min_episode_steps={min_episode_steps}")


def _check_finite(key: str, values: np.ndarray, state_names: list[str]) -> None:
    """NaN or Inf (also float64 values too large for float32) would poison the normalisation stats."""
    for is_bad, reason, label in ((np.isnan, "nan_values", "NaN"), (np.isinf, "inf_values", "Inf")):
        bad = is_bad(values)
        if bad.any():
            step, column = np.argwhere(bad)[0]
            raise Rejected(
                reason,
                f"'{key}' has {int(bad.sum())} {label} value(s), first at step {step} column {column} "
                f"({state_names[column]}); fix or drop the recording",
            )


def _check_plausible(key: str, values: np.ndarray, state_names: list[str], limit: float) -> None:
    """Finite but absurd values (1e30) would still wreck the normalisation of every other episode."""
    beyond = np.abs(values) > limit
    if beyond.any():
        step, column = np.argwhere(beyond)[0]
        raise Rejected(
            "implausible_values",
            f"'{key}' holds {values[step, column]:.3g} at step {step} column {column} ({state_names[column]}), beyond "
            f"data.max_abs_value={limit:g}, which no joint angle in radians or gripper opening reaches: a unit or "
            "recording fault; fix or drop the recording (or raise data.max_abs_value if your units are that large)",
        )


def _undecodable(camera: str, step: int, problem: str) -> Rejected:
    return Rejected("undecodable_jpeg", f"camera '{camera}' step {step} {problem}; re-record or drop the episode")


def _frame_size(camera: str, step: int, frame: bytes) -> tuple[int, int]:
    """(width, height) from the frame's JPEG header, without decoding its pixels."""
    if not frame.startswith(JPEG_START):
        raise _undecodable(camera, step, f"is not a JPEG ({len(frame)} bytes without the JPEG start marker)")
    if not frame.rstrip(b"\0").endswith(JPEG_END):
        raise _undecodable(camera, step, f"is cut short ({len(frame)} bytes without the JPEG end marker)")
    try:
        with Image.open(io.BytesIO(frame)) as image:
            return image.size
    except Exception as err:  # Pillow raises several types for a corrupt header
        raise _undecodable(camera, step, f"has an unreadable JPEG header ({_plain(err)})") from err


def _decoded_steps(n_frames: int, validate_frames: str) -> range | list[int]:
    """Which frames are decoded: all, or the first, middle and last (``data.validate_frames``)."""
    return range(n_frames) if validate_frames == "all" else sorted({0, n_frames // 2, n_frames - 1})


def _check_frames(camera: str, frames: CameraFrames, validate_frames: str, digest: Any) -> None:
    """Every JPEG frame must be complete and of the first one's size, and the sampled ones
    must decode: a bad frame would crash training later. Headers are cheap; decoding is not.
    Raw pixel frames are what they are. Each frame is read once, and hashed on the way."""
    decoded = set(_decoded_steps(len(frames), validate_frames))
    first_size = None
    for step, stored in enumerate(frames.stored()):
        digest.update(stored)
        if not frames.is_jpeg:
            continue
        size = _frame_size(camera, step, stored)
        first_size = first_size or size
        if size != first_size:
            sizes = f"{size[0]}x{size[1]} but step 0 is {first_size[0]}x{first_size[1]}"
            raise Rejected("frame_size_changes", f"camera '{camera}' step {step} is {sizes}")
        if step in decoded:
            try:
                decode_jpeg(stored)
            except Exception as err:  # Pillow raises several types for corrupt data
                raise _undecodable(camera, step, f"does not decode ({_plain(err)})") from err


def _require_instruction(path: Path, data_cfg: dict, attrs: dict[str, Any]) -> str:
    """The model is language-conditioned, so every episode needs an instruction."""
    source = data_cfg["instruction"]
    if source["source"] == "json":
        where = f"key '{source['key']}' in {path.parent / source['file']}"
    else:
        where = f"root attribute '{source['key']}'"
    try:
        instruction = read_instruction(path, data_cfg, attrs)
    except ValueError as err:
        raise Rejected("missing_instruction", str(err)) from err
    if instruction is None:
        raise Rejected("missing_instruction", f"no instruction: expected {where} (see data.instruction)")
    return instruction


def check_layout(h5: h5py.File, data_cfg: dict) -> dict[str, CameraFrames]:
    """Keys, dtypes, shapes and step counts: cheap checks that read no frames (and tell
    `rdtflow inspect` whether a preset reads a file). Returns the cameras."""
    state_datasets = {
        data_cfg[config_key]: _require_dataset(h5, data_cfg[config_key], config_key)
        for config_key in ("action_key", "qpos_key")
    }
    cameras = _require_cameras(h5, data_cfg["image_group"].rstrip("/"), recorded_cameras(data_cfg["cameras"]))
    for key, dataset in state_datasets.items():
        _check_state_dataset(key, dataset, data_cfg["state_names"])
        _check_float32_range(key, dataset)
    step_counts = {key: len(dataset) for key, dataset in state_datasets.items()}
    step_counts |= {f"camera {camera}": len(dataset) for camera, dataset in cameras.items()}
    _check_min_steps(_check_lengths(step_counts), data_cfg["min_episode_steps"])
    try:
        return {camera: CameraFrames(dataset) for camera, dataset in cameras.items()}
    except TypeError as err:  # neither JPEG bytes nor raw uint8 pixels
        raise Rejected("bad_dtype", str(err)) from err


def _external_data(h5: h5py.File, folder: Path) -> list[tuple[str, str, str, Path]]:
    """(reason, object, file name, resolved file) for every object whose data lives in another
    file: external links, virtual datasets' sources and external raw storage. HDF5 resolves the
    first two from the episode's ``folder`` and raw storage from the working directory."""
    found: list[tuple[str, str, str, Path]] = []

    def visit(name: str, link: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink) -> None:
        where = f"/{name}"
        if isinstance(link, h5py.ExternalLink):
            found.append(("external_link", where, link.filename, folder / link.filename))
            return
        item = h5.get(name) if isinstance(link, h5py.HardLink) else None
        if not isinstance(item, h5py.Dataset):
            return
        if item.is_virtual:
            found.extend(("virtual_dataset", where, source.file_name, folder / source.file_name)
                         for source in item.virtual_sources() if source.file_name != ".")  # "." is this file
        for file_name, _, _ in item.external or []:
            found.append(("external_storage", where, os.fsdecode(file_name), Path(os.fsdecode(file_name))))

    h5.visititems_links(visit)
    return found


def _check_external_data(h5: h5py.File, path: Path, demo_dir: Path, allow_outside: bool) -> None:
    """Data in another file must exist and, unless data.allow_external_files, lie in the demo
    folder: the workflow tracks only that folder, so an outside file could change without
    re-running validation, or be missing where training runs. Runs before any data is read."""
    for reason, where, file_name, target in _external_data(h5, path.parent):
        target = target.resolve()
        if not target.is_file():
            raise Rejected(reason, f"'{where}' reads its data from {file_name}, which does not exist ({target})")
        if not allow_outside and not target.is_relative_to(demo_dir):
            raise Rejected(
                reason,
                f"'{where}' reads its data from {target}, outside the demo folder {demo_dir}; copy the data into "
                "the episode (h5repack / h5copy) or set data.allow_external_files: true",
            )


def describe_unopenable(path: Path, err: OSError) -> Rejected:
    """Empty, truncated (it has the HDF5 signature but cannot be read) or not HDF5 at all."""
    if path.stat().st_size == 0:
        return Rejected("empty_file", "the file is empty (0 bytes): a recording or copy that never wrote; delete it")
    if h5py.is_hdf5(path):
        return Rejected(
            "truncated_file",
            f"starts like an HDF5 file but cannot be read, most likely cut short by an interrupted copy or recording; "
            f"copy it again or re-record it ({_plain(err)})",
        )
    return Rejected("not_hdf5", f"cannot be read as HDF5 (no HDF5 signature); remove it from the demo folder ({_plain(err)})")


def inspect_episode(path: Path, demo_dir: Path, data_cfg: dict) -> dict[str, Any]:
    """Facts about one usable episode (n_steps, first_moving_step, content_hash, instruction).

    Raises Rejected at the first failed check. The file is opened and read once: where its
    data lives and its structure first, then the numbers, then the frames, hashed as they pass.
    """
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise describe_unopenable(path, err) from err
    with h5:
        _check_external_data(h5, path, demo_dir, data_cfg["allow_external_files"])
        cameras = check_layout(h5, data_cfg)
        episode = episode_from_h5(h5, path, data_cfg)
        for key, values in ((data_cfg["action_key"], episode.action), (data_cfg["qpos_key"], episode.qpos)):
            _check_finite(key, values, data_cfg["state_names"])
            _check_plausible(key, values, data_cfg["state_names"], data_cfg["max_abs_value"])
        moving_step = first_moving_step(episode.qpos, data_cfg["moving_threshold"])
        if moving_step is None:
            raise Rejected(
                "never_moves",
                f"'{data_cfg['qpos_key']}' never changes by more than data.moving_threshold={data_cfg['moving_threshold']}",
            )
        digest = hashlib.sha256(np.ascontiguousarray(episode.action).tobytes())
        digest.update(np.ascontiguousarray(episode.qpos).tobytes())
        for camera, frames in cameras.items():
            _check_frames(camera, frames, data_cfg["validate_frames"], digest)
    return {
        "n_steps": len(episode.qpos),
        "first_moving_step": moving_step,
        "content_hash": digest.hexdigest(),  # a copied episode is recognised under any name
        "instruction": _require_instruction(path, data_cfg, episode.attrs),
    }


def check_file(path: Path, demo_dir: Path, data_cfg: dict) -> dict[str, Any]:
    """inspect_episode, with any failure inside a check turned into this file's rejection.

    A damaged file can make HDF5, h5py or Pillow raise anything; one such file must never stop
    the validation of thousands of good ones.
    """
    try:
        return inspect_episode(path, demo_dir, data_cfg)
    except Rejected:
        raise
    except Exception as err:  # whatever one file raises becomes its rejection
        raise Rejected(
            "unreadable",
            f"checking it failed ({type(err).__name__}: {_plain(err)}): the file is damaged or stored in a way rdtflow "
            "cannot read; list its contents with h5ls -r, then repair or re-record it",
        ) from err


def find_episode_files(demo_dir: Path) -> list[Path]:
    """All *.hdf5 files under the folder, sorted so that ids, duplicates and splits are reproducible."""
    files = sorted(path for path in demo_dir.rglob("*.hdf5") if path.is_file())
    if not files:
        state = "" if demo_dir.is_dir() else " (the folder does not exist)"
        raise DemoValidationError(
            f"no *.hdf5 files were found under {demo_dir}{state}; set demos.dir to the episode folder"
        )
    return files


def episode_id(path: Path, demo_dir: Path) -> str:
    """The path relative to the demo folder without .hdf5: unique, and readable in reports."""
    return path.relative_to(demo_dir).with_suffix("").as_posix()


def _validate_files(files: list[Path], demo_dir: Path, data_cfg: dict) -> tuple[list[dict], list[dict]]:
    """One row per file plus the rejection records; the first copy of duplicated content is kept."""
    rows: list[dict] = []
    rejections: list[dict] = []
    first_path_by_hash: dict[str, Path] = {}
    for path in progress(files, desc="validate", unit="file"):
        row = {"path": str(path), "episode_id": episode_id(path, demo_dir)}
        row.update(n_steps=None, first_moving_step=None, content_hash=None, instruction=None, valid=True, reason="")
        try:
            row.update(check_file(path, demo_dir, data_cfg))
            original = first_path_by_hash.get(row["content_hash"])
            if original is not None:
                raise Rejected("duplicate", f"same content as {original}; keeping that one")
            first_path_by_hash[row["content_hash"]] = path
        except Rejected as rejection:
            row.update(valid=False, reason=rejection.reason)
            rejections.append({k: row[k] for k in ("path", "episode_id", "reason")} | {"detail": rejection.detail})
        rows.append(row)
    return rows, rejections


def _reason_counts(rejections: list[dict]) -> dict[str, int]:
    """Number of rejected files per reason, most frequent first."""
    return dict(Counter(rejection["reason"] for rejection in rejections).most_common())


def _reason_counts_text(rejections: list[dict]) -> str:
    """'reason: count, ...' for messages."""
    return ", ".join(f"{reason}: {count}" for reason, count in _reason_counts(rejections).items())


def _summary_line(n_files: int, rejections: list[dict]) -> str:
    """The one line a user reads after validation."""
    rejected = f"{len(rejections)} rejected" + (f" ({_reason_counts_text(rejections)})" if rejections else "")
    return f"validated {n_files} files: {n_files - len(rejections)} accepted, {rejected}"


def _listing(rejections: list[dict]) -> str:
    """Rejections one per line, for error messages."""
    return "\n".join(f"  {r['episode_id']}: {r['reason']}: {r['detail']}" for r in rejections)


def _validated_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as a table with stable column types (nullable ints: rejected files may lack counts)."""
    frame = pd.DataFrame(rows, columns=VALIDATED_COLUMNS)
    return frame.astype({"n_steps": "Int64", "first_moving_step": "Int64", "valid": bool})


def validate_demos(demo_dir: Path, data_cfg: dict, validated_out: Path, report_out: Path) -> pd.DataFrame:
    """Check every *.hdf5 episode under ``demo_dir``; write validated.parquet and validation.json."""
    demo_dir = Path(demo_dir).resolve()
    check_state_names(data_cfg["state_names"])
    files = find_episode_files(demo_dir)
    rows, rejections = _validate_files(files, demo_dir, data_cfg)
    print(_summary_line(len(files), rejections))
    if len(rejections) == len(files):
        raise DemoValidationError(
            f"no valid episode under {demo_dir}: all {len(files)} files were rejected "
            f"({_reason_counts_text(rejections)})\n{_listing(rejections)}"
        )
    if rejections and data_cfg["strict"]:
        raise DemoValidationError(
            f"{len(rejections)} of {len(files)} files under {demo_dir} were rejected and data.strict is true "
            f"(set it to false to train on the rest):\n{_listing(rejections)}"
        )
    validated = _validated_frame(rows)
    Path(validated_out).parent.mkdir(parents=True, exist_ok=True)
    validated.to_parquet(validated_out, index=False)
    report = {
        "n_files": len(files),
        "n_valid": len(files) - len(rejections),
        "n_rejected": len(rejections),
        "rejected_by_reason": _reason_counts(rejections),
        "frames_decoded": data_cfg["validate_frames"],
        "rejected": rejections,
    }
    Path(report_out).parent.mkdir(parents=True, exist_ok=True)
    Path(report_out).write_text(json.dumps(report, indent=2) + "\n")
    return validated
