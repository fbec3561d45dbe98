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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from PIL import Image

from rdtflow.data.cameras import recorded_cameras
from rdtflow.data.episode import episode_from_h5, instruction_file, read_instruction, state_keys
from rdtflow.data.frames import JPEG_END, JPEG_START, CameraFrames, decode_jpeg
from rdtflow.data.isolated import isolated_map
from rdtflow.data.state_vector import check_state_names
from rdtflow.errors import RdtflowError
from rdtflow.machine import cpu_threads
from rdtflow.progress import progress

VALIDATED_COLUMNS = [
    "path", "group", "episode_id", "task", "n_steps", "first_moving_step", "content_hash", "instruction", "masks", "valid",
    "reason",
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

    def __reduce__(self) -> tuple:
        """Rebuilt from reason and detail: rejections come back from the checking processes pickled."""
        return Rejected, (self.reason, self.detail)


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


def _held_datasets(node: h5py.Group, shown: int = 8) -> str:
    """The dataset paths an episode holds, to show what the keys should have been (the first
    ``shown`` of them: a file of many demos holds thousands)."""
    keys: list[str] = []
    node.visititems(lambda name, item: keys.append(f"{node.name.rstrip('/')}/{name}") if isinstance(item, h5py.Dataset) else None)
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return (", ".join(keys[:shown]) + more) or "no datasets"


def _require_dataset(h5: h5py.File, key: str, config_key: str) -> h5py.Dataset:
    """The dataset at ``key``, or a missing_dataset rejection listing what the file does hold."""
    dataset = _lookup(h5, key)
    if isinstance(dataset, h5py.Group):
        raise Rejected("missing_dataset", f"'{key}' is a group, not a dataset; set data.{config_key} to the dataset's key")
    if not isinstance(dataset, h5py.Dataset):
        raise Rejected(
            "missing_dataset",
            f"no dataset '{key}' (the {'file' if h5.name == '/' else 'episode ' + h5.name} holds {_held_datasets(h5)}); "
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


def _check_state_datasets(config_key: str, datasets: dict[str, h5py.Dataset], state_names: list[str]) -> None:
    """State/action datasets must be numeric, (T, D) or (T,) (one column), and together hold
    one column per ``data.state_names`` entry."""
    for key, dataset in datasets.items():
        if dataset.dtype.kind not in "iuf":
            raise Rejected("bad_dtype", f"'{key}' has dtype {dataset.dtype}; it must hold numbers")
        if dataset.ndim not in (1, 2):
            raise Rejected("wrong_state_dim", f"'{key}' has shape {dataset.shape}; it must be (T, D), or (T,) for one column")
    columns = sum(1 if dataset.ndim == 1 else dataset.shape[1] for dataset in datasets.values())
    if columns != len(state_names):
        if len(datasets) == 1:
            held = "'{}' has shape {}".format(*next((key, dataset.shape) for key, dataset in datasets.items()))
        else:
            held = " + ".join(f"'{key}' {dataset.shape}" for key, dataset in datasets.items()) + f" hold {columns} columns"
        raise Rejected(
            "wrong_state_dim",
            f"{held} but data.state_names lists {len(state_names)} names (one per column of data.{config_key}, "
            f"expected {len(state_names)} columns in all)",
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
    values = dataset[()].reshape(len(dataset), -1)
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
        where = f"key '{source['key']}' in {instruction_file(path, source['file'])}"
    else:
        where = f"attribute '{source['key']}' of the episode"
    try:
        instruction = read_instruction(path, data_cfg, attrs)
    except ValueError as err:
        raise Rejected("missing_instruction", str(err)) from err
    if instruction is None:
        raise Rejected("missing_instruction", f"no instruction: expected {where} (see data.instruction)")
    return instruction


def _state_config_keys(data_cfg: dict) -> list[str]:
    """The config keys naming state datasets: qpos, and action unless it is the next state."""
    return ["qpos_key"] if data_cfg["action_key"] is None else ["action_key", "qpos_key"]


def check_layout(node: h5py.Group, data_cfg: dict) -> dict[str, CameraFrames]:
    """Keys, dtypes, shapes and step counts of one episode (a file, or a demo's group): cheap
    checks that read no frames (and tell `rdtflow inspect` whether a preset reads a file).
    Returns the cameras."""
    step_counts: dict[str, int] = {}
    for config_key in _state_config_keys(data_cfg):
        datasets = {key: _require_dataset(node, key, config_key) for key in state_keys(data_cfg[config_key])}
        _check_state_datasets(config_key, datasets, data_cfg["state_names"])
        for key, dataset in datasets.items():
            _check_float32_range(key, dataset)
            step_counts[key] = len(dataset)
    cameras = _require_cameras(node, data_cfg["image_group"].rstrip("/"), recorded_cameras(data_cfg["cameras"]))
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


def _key_label(key: str | list[str] | None) -> str:
    """A data key for messages: one dataset, or several joined."""
    return "next qpos" if key is None else " + ".join(state_keys(key))


def inspect_episode(node: h5py.Group, path: Path, data_cfg: dict) -> dict[str, Any]:
    """Facts about one usable episode (n_steps, first_moving_step, content_hash, instruction).

    ``node`` is the open file, or a demo's group in a file of many. Raises Rejected at the
    first failed check. Its structure is checked first, then the numbers, then the frames,
    hashed as they pass: each is read once.
    """
    cameras = check_layout(node, data_cfg)
    episode = episode_from_h5(node, path, data_cfg)
    for key, values in ((data_cfg["qpos_key"], episode.qpos), (data_cfg["action_key"], episode.action)):
        _check_finite(_key_label(key), values, data_cfg["state_names"])
        _check_plausible(_key_label(key), values, data_cfg["state_names"], data_cfg["max_abs_value"])
    moving_step = first_moving_step(episode.qpos, data_cfg["moving_threshold"])
    if moving_step is None:
        raise Rejected(
            "never_moves",
            f"'{_key_label(data_cfg['qpos_key'])}' never changes by more than "
            f"data.moving_threshold={data_cfg['moving_threshold']}",
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


def _as_rejection(err: Exception) -> Rejected:
    """A failed check as it is; anything else a damaged file made HDF5, h5py or Pillow raise
    becomes the file's unreadable rejection, with the message."""
    if isinstance(err, Rejected):
        return err
    return Rejected(
        "unreadable",
        f"checking it failed ({type(err).__name__}: {_plain(err)}): the file is damaged or stored in a way rdtflow "
        "cannot read; list its contents with h5ls -r, then repair or re-record it",
    )


def _natural_key(name: str) -> tuple:
    """demo_2 before demo_10, as robomimic numbers its demos."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def episode_groups(h5: h5py.File, data_cfg: dict) -> list[str]:
    """The episodes of a file: [""] (the file itself), or with ``data.episode_group`` the
    member groups of that group (robomimic's /data/demo_N), in their natural order."""
    parent_key = data_cfg["episode_group"]
    if parent_key is None:
        return [""]
    parent = _lookup(h5, parent_key)
    if not isinstance(parent, h5py.Group):
        raise Rejected("missing_dataset", f"no group '{parent_key}' holding the demos; set data.episode_group to the "
                                          "group whose member groups are the episodes (or null: one episode per file)")
    names = sorted((name for name in parent if isinstance(parent.get(name), h5py.Group)), key=_natural_key)
    if not names:
        raise Rejected("missing_dataset", f"group '{parent_key}' holds no demo groups (data.episode_group)")
    return [f"{parent.name}/{name}" for name in names]


def mask_membership(h5: h5py.File) -> dict[str, list[str]]:
    """robomimic's filter masks (/mask/<name>: the demo names in it) as demo name -> mask names."""
    masks = h5.get("mask")
    membership: dict[str, list[str]] = {}
    if not isinstance(masks, h5py.Group):
        return membership
    for mask_name in sorted(masks):
        dataset = masks.get(mask_name)
        if isinstance(dataset, h5py.Dataset) and dataset.dtype.kind in "SOU":
            for demo in dataset[()].reshape(-1):
                membership.setdefault(demo.decode() if isinstance(demo, bytes) else str(demo), []).append(mask_name)
    return membership


def check_file(path: Path, demo_dir: Path, data_cfg: dict) -> list[tuple[str, str, dict[str, Any] | Rejected]]:
    """(group, the robomimic masks listing it, the episode's facts or its rejection) for each
    episode of one file.

    No failure escapes: a file that cannot be opened, or whose links, structure or demo list is
    broken, is one rejection (group ""); in a file of many demos each is accepted or rejected on
    its own. One bad file must never stop the validation of thousands of good ones.
    """
    try:
        h5 = h5py.File(path, "r")
    except Exception as err:
        return [("", "", describe_unopenable(path, err) if isinstance(err, OSError) else _as_rejection(err))]
    try:
        with h5:
            _check_external_data(h5, path, demo_dir, data_cfg["allow_external_files"])
            groups = episode_groups(h5, data_cfg)
            masks = mask_membership(h5) if data_cfg["episode_group"] is not None else {}
            results: list[tuple[str, str, dict[str, Any] | Rejected]] = []
            for group in groups:
                in_masks = ",".join(masks.get(group.rsplit("/", 1)[-1], []))
                try:
                    results.append((group, in_masks, inspect_episode(h5[group] if group else h5, path, data_cfg)))
                except Exception as err:
                    results.append((group, in_masks, _as_rejection(err)))
            return results
    except Exception as err:
        return [("", "", _as_rejection(err))]


def find_episode_files(demo_dir: Path) -> list[Path]:
    """All *.hdf5 files under the folder, sorted so that ids, duplicates and splits are reproducible."""
    files = sorted(path for path in demo_dir.rglob("*.hdf5") if path.is_file())
    if not files:
        state = "" if demo_dir.is_dir() else " (the folder does not exist)"
        raise DemoValidationError(
            f"no *.hdf5 files were found under {demo_dir}{state}; set demos.dir to the episode folder"
        )
    return files


def episode_id(path: Path, demo_dir: Path, group: str = "") -> str:
    """The path relative to the demo folder without .hdf5, then a demo's group name: unique,
    and readable in reports (robomimic's demo_3 of lift.hdf5 is lift/demo_3)."""
    file_id = path.relative_to(demo_dir).with_suffix("").as_posix()
    return f"{file_id}/{group.rsplit('/', 1)[-1]}" if group else file_id


def task_of(path: Path, demo_dir: Path) -> str:
    """An episode's task: its folder under the demo folder (agilex keeps one task per folder,
    with its instruction file), or the demo folder's own name for the files directly in it."""
    folder = path.parent.relative_to(demo_dir).as_posix()
    return demo_dir.name if folder == "." else folder


def _crashed(path: Path) -> list[tuple[str, str, Rejected]]:
    """The rejection of a file whose check killed the process reading it."""
    return [("", "", Rejected(
        "unreadable",
        "checking it crashed the process reading it (HDF5 or a frame decoder died, e.g. of a segmentation fault); "
        "the file is damaged: list its contents with h5ls -r, then repair or re-record it",
    ))]


def validate_files(files: list[Path], demo_dir: Path, data_cfg: dict,
                    check: Callable[..., list] = check_file) -> tuple[list[dict], list[dict]]:
    """One row per episode (per file where a file is rejected whole) plus the rejection
    records; the first copy of duplicated content is kept. Files are checked in
    ``data.validate_workers`` processes, so a file that crashes its reader is only rejected."""
    rows: list[dict] = []
    rejections: list[dict] = []
    first_by_hash: dict[str, str] = {}
    workers = min(cpu_threads(data_cfg["validate_workers"]), len(files))
    checks = isolated_map(partial(check, demo_dir=demo_dir, data_cfg=data_cfg), files, workers, _crashed)
    for path, results in progress(zip(files, checks), total=len(files), desc="validate", unit="file"):
        for group, in_masks, result in results:
            row = {"path": str(path), "group": group, "episode_id": episode_id(path, demo_dir, group),
                   "task": task_of(path, demo_dir)}
            row |= dict(n_steps=None, first_moving_step=None, content_hash=None, instruction=None, masks=in_masks,
                        valid=True, reason="")
            if isinstance(result, dict):
                row.update(result)
                original = first_by_hash.get(row["content_hash"])
                if original is not None:
                    result = Rejected("duplicate", f"same content as {original}; keeping that one")
                first_by_hash.setdefault(row["content_hash"], f"{path}:{group}" if group else str(path))
            if isinstance(result, Rejected):
                row.update(valid=False, reason=result.reason)
                rejections.append({k: row[k] for k in ("path", "episode_id", "reason")} | {"detail": result.detail})
            rows.append(row)
    return rows, rejections


def _reason_counts(rejections: list[dict]) -> dict[str, int]:
    """Number of rejected files per reason, most frequent first."""
    return dict(Counter(rejection["reason"] for rejection in rejections).most_common())


def _reason_counts_text(rejections: list[dict]) -> str:
    """'reason: count, ...' for messages."""
    return ", ".join(f"{reason}: {count}" for reason, count in _reason_counts(rejections).items())


def _summary_line(n_files: int, n_episodes: int, rejections: list[dict]) -> str:
    """The one line a user reads after validation (episodes are counted apart from files only
    where files hold many demos)."""
    rejected = f"{len(rejections)} rejected" + (f" ({_reason_counts_text(rejections)})" if rejections else "")
    counted = f"{n_files} files" if n_episodes == n_files else f"{n_files} files holding {n_episodes} episodes"
    return f"validated {counted}: {n_episodes - len(rejections)} accepted, {rejected}"


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
    rows, rejections = validate_files(files, demo_dir, data_cfg)
    print(_summary_line(len(files), len(rows), rejections))
    if len(rejections) == len(rows):
        raise DemoValidationError(
            f"no valid episode under {demo_dir}: all {len(rows)} episodes were rejected "
            f"({_reason_counts_text(rejections)})\n{_listing(rejections)}"
        )
    if rejections and data_cfg["strict"]:
        raise DemoValidationError(
            f"{len(rejections)} of {len(rows)} episodes under {demo_dir} were rejected and data.strict is true "
            f"(set it to false to train on the rest):\n{_listing(rejections)}"
        )
    validated = _validated_frame(rows)
    Path(validated_out).parent.mkdir(parents=True, exist_ok=True)
    validated.to_parquet(validated_out, index=False)
    report = {
        "n_files": len(files),
        "n_episodes": len(rows),
        "n_valid": len(rows) - len(rejections),
        "n_rejected": len(rejections),
        "rejected_by_reason": _reason_counts(rejections),
        "frames_decoded": data_cfg["validate_frames"],
        "rejected": rejections,
    }
    Path(report_out).parent.mkdir(parents=True, exist_ok=True)
    Path(report_out).write_text(json.dumps(report, indent=2) + "\n")
    return validated
