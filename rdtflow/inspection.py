"""`rdtflow inspect PATH`: what is in one episode file, and which data preset reads it.

A newcomer's first question is not how to train but "what is in my file, and what do I write
in the config?". This prints the file's tree (groups, datasets with shapes, dtypes, storage
and frame format, links, attributes) and tries every shipped data preset with the same
layout check the validate stage runs, so a preset that "matches" is one validation accepts
the structure of, and one that does not says why in validation's own words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rdtflow.config import validate_config
from rdtflow.data.frames import JPEG_START, CameraFrames
from rdtflow.data.validate import Rejected, check_layout, describe_unopenable, episode_groups
from rdtflow.presets import shipped

ATTRIBUTE_WIDTH = 70
GROUPS_SHOWN = 2  # of a group's many member groups, the ones drawn


def frame_format(dataset: h5py.Dataset) -> str | None:
    """How a dataset holds camera frames, if it does: JPEG (padded or variable-length) or raw pixels."""
    try:
        frames = CameraFrames(dataset)
    except TypeError:
        return None
    if not frames.is_jpeg:
        return f"raw uint8 RGB frames, {dataset.shape[2]}x{dataset.shape[1]}"
    if len(frames) == 0 or not next(frames.stored(), b"").startswith(JPEG_START):
        return None
    return "JPEG frames, " + ("variable-length uint8" if frames.variable_length else "padded byte strings (agilex)")


def _attribute(value: Any) -> str:
    """An attribute's value, shortened to one line."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size > 8:
        return f"array {value.dtype} {value.shape}"
    text = " ".join(str(value).split())
    return text if len(text) <= ATTRIBUTE_WIDTH else text[: ATTRIBUTE_WIDTH - 3] + "..."


def _attributes(item: h5py.Group | h5py.Dataset, indent: str) -> list[str]:
    lines = []
    for name in item.attrs:
        try:
            value = _attribute(item.attrs[name])
        except Exception as err:  # an attribute of a type h5py cannot read is shown, not fatal
            value = f"(unreadable: {type(err).__name__})"
        lines.append(f"{indent}@{name} = {value}")
    return lines


def _dataset_line(dataset: h5py.Dataset) -> str:
    storage = [f"chunks {dataset.chunks}"] if dataset.chunks else []
    storage += [dataset.compression] if dataset.compression else []
    frames = frame_format(dataset)
    return "  ".join([f"{dataset.dtype} {dataset.shape}", *storage, *([f"-> {frames}"] if frames else [])])


def _link_line(group: h5py.Group, name: str, depth: str) -> str | None:
    """The line of a soft or external link, None for a hard link."""
    link = group.get(name, getlink=True)
    where = f"{group.name.rstrip('/')}/{name}"
    if isinstance(link, h5py.SoftLink):
        return f"{depth}{where}  soft link to {link.path}"
    if isinstance(link, h5py.ExternalLink):
        return f"{depth}{where}  external link to {link.path} in {link.filename}"
    return None


def _walk(group: h5py.Group, depth: str, lines: list[str]) -> None:
    """The members of ``group``; of many member groups (robomimic's demo_0 ... demo_199) only
    the first GROUPS_SHOWN are drawn, since the others repeat them."""
    member_groups = 0
    for name in group:
        link_line = _link_line(group, name, depth)
        if link_line is not None:
            lines.append(link_line)
            continue
        item = group.get(name)
        if isinstance(item, h5py.Group):
            member_groups += 1
            if member_groups > GROUPS_SHOWN:
                continue
            lines.append(f"{depth}{item.name}/")
            lines.extend(_attributes(item, depth + "  "))
            _walk(item, depth + "  ", lines)
        elif isinstance(item, h5py.Dataset):
            lines.append(f"{depth}{item.name}  {_dataset_line(item)}")
            lines.extend(_attributes(item, depth + "  "))
    if member_groups > GROUPS_SHOWN:
        lines.append(f"{depth}... and {member_groups - GROUPS_SHOWN} more groups in {group.name} like those above")


def tree_lines(h5: h5py.File) -> list[str]:
    """One line per group, dataset and link, with their attributes beneath."""
    lines = _attributes(h5, "  ")
    _walk(h5, "  ", lines)
    return lines


def preset_fits(h5: h5py.File) -> dict[str, str | None]:
    """Each shipped data preset, and why it does not read this file (None: it does). A file of
    many demos fits when its first demo does (validation then checks every one)."""
    fits = {}
    for name in shipped("data"):
        data_cfg = validate_config({"run": "inspect", "data": {"preset": name}}, partial=True)["data"]
        try:
            groups = episode_groups(h5, data_cfg)
            check_layout(h5[groups[0]] if groups[0] else h5, data_cfg)
            fits[name] = None
        except Rejected as rejection:
            fits[name] = f"{rejection.reason}: {rejection.detail}"
    return fits


def inspect_file(path: Path) -> tuple[str, bool]:
    """The text `rdtflow inspect` prints, and whether any preset reads the file."""
    path = Path(path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        rejection = describe_unopenable(path, err)
        return f"{path}: cannot be opened: {rejection.reason}: {rejection.detail}", False
    with h5:
        lines = [f"{path} ({path.stat().st_size / 2**20:.1f} MiB)", *tree_lines(h5), "", "data presets:"]
        fits = preset_fits(h5)
    width = max(len(name) for name in fits)
    lines += [f"  {name:<{width}}  " + ("reads this file: set data.preset: " + name if problem is None else
                                        f"does not fit ({problem})") for name, problem in fits.items()]
    matching = [name for name, problem in fits.items() if problem is None]
    if not matching:
        lines += ["", "No preset fits. Set the data keys yourself (data.action_key, data.qpos_key, data.image_group, "
                  "data.cameras, data.state_names; docs/formats.md) starting from the preset whose problem is "
                  "smallest."]
    return "\n".join(lines), bool(matching)
