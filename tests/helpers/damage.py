"""A corpus of damaged episode files for the validator's fuzz test, reproducible from one seed.

Each kind of damage is applied to a fresh copy of a valid episode, in each layout the
validator reads (four storages of the agilex keys, a robomimic file of demos, a RoboTwin
episode). Damage to the bytes can hit anything; damage to the structure is aimed at what an
episode needs (action, qpos, the image group, a camera; in a robomimic file, those of its
middle demo), since damage to an optional dataset is accepted by design. ``EXPECTED`` says
which reasons each structural kind may give.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from rdtflow.data.frames import decode_jpeg
from tests.helpers.episodes import replace_object, store_frames_raw, write_instruction_json, write_synthetic_episode

Damage = Callable[[Path, np.random.Generator, "Layout"], None]
AGILEX_IMAGES = "/observations/images"
AGILEX_CAMERA = f"{AGILEX_IMAGES}/cam_high"
AGILEX_STATES = ("/action", "/observations/qpos")
DEMOS = 3  # demos in each robomimic file; damage is aimed at the middle one


@dataclass(frozen=True)
class Layout:
    """How a valid synthetic agilex episode is stored in one layout, where the damage is aimed
    (the keys of the one episode it targets), and the data config that reads the layout."""

    convert: Callable[[Path], None]
    state_keys: tuple[str, ...]  # (T, D) datasets: action and/or state
    camera: str
    groups: tuple[str, ...]  # groups whose loss the episode cannot survive
    link_home: str  # a group the damage may add soft links to, outside those groups
    data: dict = field(default_factory=dict)
    target_group: str = ""  # the demo damage is aimed at, in a file of many

    @property
    def needed(self) -> tuple[str, ...]:
        return (*self.state_keys, self.camera)


def _vlen_frames(path: Path) -> None:
    """The frames as variable-length uint8 arrays, as recorders other than agilex's store them."""
    with h5py.File(path, "a") as h5:
        frames = [np.frombuffer(bytes(frame).rstrip(b"\0"), np.uint8) for frame in h5[AGILEX_CAMERA][()]]
        del h5[AGILEX_CAMERA]
        dataset = h5.create_dataset(AGILEX_CAMERA, (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
        for step, frame in enumerate(frames):
            dataset[step] = frame


def _chunked_compressed(path: Path) -> None:
    """Action and qpos stored chunked and gzip-compressed, so byte damage can hit a chunk's stream."""
    with h5py.File(path, "a") as h5:
        for key in AGILEX_STATES:
            values = h5[key][()]
            del h5[key]
            h5.create_dataset(key, data=values, chunks=(5, values.shape[1]), compression="gzip")


def _robomimic_file(path: Path) -> None:
    """The episode as DEMOS demos of one robomimic file (each a little shifted, so none is a
    copy): actions, the state over two obs keys (one of them 1-D), raw uint8 frames."""
    with h5py.File(path, "r") as h5:
        action, qpos = h5["/action"][()], h5["/observations/qpos"][()]
        pixels = np.stack([decode_jpeg(bytes(frame).rstrip(b"\0")) for frame in h5[AGILEX_CAMERA][()]])
    with h5py.File(path, "w") as h5:
        for index in range(DEMOS):
            demo = h5.create_group(f"data/demo_{index}")
            demo["actions"] = action + index * 0.01
            demo["obs/robot0_eef_pos"] = qpos[:, :2] + index * 0.01
            demo["obs/robot0_gripper_qpos"] = qpos[:, 2]
            demo.create_dataset("obs/agentview_image", data=pixels, chunks=(1, *pixels.shape[1:]), compression="gzip")
        h5["mask/valid"] = np.array([b"demo_1"])


def _robotwin_episode(path: Path) -> None:
    """The episode as RoboTwin 2.0 stores one: states only, JPEG frames under observation/."""
    with h5py.File(path, "r") as h5:
        qpos, frames = h5["/observations/qpos"][()], h5[AGILEX_CAMERA][()]
    with h5py.File(path, "w") as h5:
        h5["joint_action/vector"] = qpos.astype(np.float64)
        h5["observation/head_camera/rgb"] = frames
        h5["endpose"] = np.zeros((len(qpos), 14))


AGILEX_GROUPS = ("/observations", AGILEX_IMAGES)
ROBOMIMIC_DEMO = "/data/demo_1"
LAYOUTS: dict[str, Layout] = {
    "agilex_padded_jpeg": Layout(lambda path: None, AGILEX_STATES, AGILEX_CAMERA, AGILEX_GROUPS, "/observations"),
    "vlen_jpeg": Layout(_vlen_frames, AGILEX_STATES, AGILEX_CAMERA, AGILEX_GROUPS, "/observations"),
    "gzip_chunks": Layout(_chunked_compressed, AGILEX_STATES, AGILEX_CAMERA, AGILEX_GROUPS, "/observations"),
    "act_raw_frames": Layout(store_frames_raw, AGILEX_STATES, AGILEX_CAMERA, AGILEX_GROUPS, "/observations"),
    "robomimic_demos": Layout(
        _robomimic_file, (f"{ROBOMIMIC_DEMO}/actions", f"{ROBOMIMIC_DEMO}/obs/robot0_eef_pos"),
        f"{ROBOMIMIC_DEMO}/obs/agentview_image", (f"{ROBOMIMIC_DEMO}/obs",), ROBOMIMIC_DEMO,
        {"episode_group": "/data", "action_key": "actions", "qpos_key": ["obs/robot0_eef_pos", "obs/robot0_gripper_qpos"],
         "image_group": "obs", "cameras": ["agentview_image"]},
        target_group=ROBOMIMIC_DEMO,
    ),
    "robotwin": Layout(
        _robotwin_episode, ("/joint_action/vector",), "/observation/head_camera/rgb",
        ("/observation", "/observation/head_camera"), "/joint_action",
        {"action_key": None, "qpos_key": "/joint_action/vector", "image_group": "/observation", "cameras": ["head_camera/rgb"]},
    ),
}


def _values(path: Path, key: str) -> np.ndarray:
    """A dataset's values; variable-length frames as fixed-length byte strings, which any h5py writes."""
    with h5py.File(path, "r") as h5:
        values = h5[key][()]
    if values.dtype == object:
        return np.array([np.asarray(frame, np.uint8).tobytes() for frame in values])
    return values


def _choose(rng: np.random.Generator, options: tuple) -> str:
    return options[int(rng.integers(len(options)))]


def truncate(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(rng.integers(len(data)))])


def overwrite_bytes(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    data = bytearray(path.read_bytes())
    start, length = int(rng.integers(len(data))), int(rng.integers(1, 257))
    span = data[start : start + length]
    data[start : start + len(span)] = rng.integers(0, 256, len(span), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def flip_bits(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    data = np.frombuffer(path.read_bytes(), np.uint8).copy()
    positions = rng.integers(len(data), size=int(rng.integers(1, 17)))
    data[positions] ^= (1 << rng.integers(8, size=len(positions))).astype(np.uint8)
    path.write_bytes(data.tobytes())


def remove_dataset(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    with h5py.File(path, "a") as h5:
        del h5[_choose(rng, layout.needed)]


def rename_dataset(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    key = _choose(rng, layout.needed)
    with h5py.File(path, "a") as h5:
        h5.move(key, f"{key}_{_choose(rng, ('old', 'v2', 'raw'))}")


def remove_group(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    with h5py.File(path, "a") as h5:
        del h5[_choose(rng, layout.groups)]


def group_for_dataset(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    replace_object(path, _choose(rng, layout.needed), lambda h5, key: h5.create_group(key))


def soft_link_cycle(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    loop = _choose(rng, ("/loop", f"{layout.link_home}/loop"))

    def make(h5: h5py.File, key: str) -> None:
        h5[key] = h5py.SoftLink(loop)
        h5[loop] = h5py.SoftLink(key)

    replace_object(path, _choose(rng, (*layout.needed, layout.groups[-1])), make)


def dangling_soft_link(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    replace_object(path, _choose(rng, layout.needed), lambda h5, key: h5.__setitem__(key, h5py.SoftLink(f"/recorded{key}")))


def missing_external_link(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    link = h5py.ExternalLink("episode_source.hdf5", "/data")
    replace_object(path, _choose(rng, layout.needed), lambda h5, key: h5.__setitem__(key, link))


def wrong_dtype(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    key = _choose(rng, layout.needed)
    shape = _values(path, key).shape
    kind = _choose(rng, ("text", "complex", "bool", "compound", "other"))
    values = {
        "text": np.full(shape, b"0.5"),
        "complex": np.ones(shape, np.complex64),
        "bool": np.ones(shape, bool),
        "compound": np.zeros(shape, [("x", "f4"), ("y", "f4")]),
        # pixels as floats where JPEG bytes belong; opaque bytes where numbers belong
        "other": np.zeros((*shape[:1], 8, 8, 3), np.float32) if key == layout.camera else np.zeros(shape, "f4").view("V4"),
    }[kind]
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=values))


def wrong_shape(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    key = _choose(rng, layout.needed)
    values = _values(path, key)
    options = (values[: len(values) // 2], values[None], values.reshape(-1)) if key != layout.camera else (
        values[: len(values) // 2], np.stack([values, values], axis=1))
    reshaped = options[int(rng.integers(len(options)))]
    if key != layout.camera and rng.integers(2):
        reshaped = np.concatenate([values, values[:, :1]], axis=1)  # one column too many
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=reshaped))


def transposed(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    key = _choose(rng, layout.state_keys)
    values = _values(path, key)
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=values.T))


def non_finite(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    key = _choose(rng, layout.state_keys)
    values = _values(path, key).astype(np.float32)
    values[int(rng.integers(len(values))), int(rng.integers(values.shape[1]))] = _choose(rng, (np.nan, np.inf, -np.inf))
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=values))


def implausible_magnitude(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    key = _choose(rng, layout.state_keys)
    values = _values(path, key).astype(np.float32)
    step, column = int(rng.integers(len(values))), int(rng.integers(values.shape[1]))
    values[step, column] = float(rng.choice([-1, 1])) * 10.0 ** float(rng.uniform(4.5, 30))
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=values))


def odd_attributes(path: Path, rng: np.random.Generator, layout: Layout) -> None:
    """Root attributes of types a reader rarely meets: empty, a reference, complex, nested."""
    with h5py.File(path, "a") as h5:
        kind = _choose(rng, ("empty", "reference", "complex", "vlen"))
        if kind == "empty":
            h5.attrs["sim_reset"] = h5py.Empty("f4")
        elif kind == "reference":
            h5.attrs.create("source", h5[layout.state_keys[0]].ref, dtype=h5py.ref_dtype)
        elif kind == "complex":
            h5.attrs["calibration"] = np.ones(3, np.complex128)
        else:
            h5.attrs.create("notes", np.array([np.arange(2), np.arange(3)], dtype=object),
                            dtype=h5py.vlen_dtype(np.int64))


DAMAGES: dict[str, Damage] = {damage.__name__: damage for damage in (
    truncate, overwrite_bytes, flip_bits, remove_dataset, rename_dataset, remove_group, group_for_dataset,
    soft_link_cycle, dangling_soft_link, missing_external_link, wrong_dtype, wrong_shape, transposed, non_finite,
    implausible_magnitude, odd_attributes,
)}
# The reasons a structural kind may give (the first check that fails decides); damage to the
# bytes may give any documented reason or none.
EXPECTED: dict[str, set[str]] = {
    "remove_dataset": {"missing_dataset", "missing_camera"},
    "rename_dataset": {"missing_dataset", "missing_camera"},
    "remove_group": {"missing_dataset", "missing_camera"},
    "group_for_dataset": {"missing_dataset", "missing_camera"},
    "soft_link_cycle": {"broken_link"},
    "dangling_soft_link": {"broken_link"},
    "missing_external_link": {"external_link"},
    "wrong_dtype": {"bad_dtype", "undecodable_jpeg"},  # short byte strings as frames are not JPEGs
    "wrong_shape": {"wrong_state_dim", "length_mismatch", "bad_dtype", "too_short"},
    "transposed": {"wrong_state_dim"},
    "non_finite": {"nan_values", "inf_values"},
    "implausible_magnitude": {"implausible_values"},
    "odd_attributes": {""},  # attributes the episode does not use must not reject it
}
BYTE_DAMAGES = {"truncate", "overwrite_bytes", "flip_bits"}


@dataclass(frozen=True)
class DamagedFile:
    path: Path
    layout: str
    damage: str


def write_corpus(folder: Path, seed: int, files_per_kind: int) -> list[DamagedFile]:
    """``files_per_kind`` damaged files per layout and kind, each from its own valid episode,
    in ``folder/<layout>/<damage>/``."""
    rng = np.random.default_rng(seed)
    corpus = []
    pristine = folder.parent / f"{folder.name}_pristine"
    for layout_name, layout in LAYOUTS.items():
        for damage_name, damage in DAMAGES.items():
            for index in range(files_per_kind):
                source = write_synthetic_episode(pristine / f"{layout_name}.hdf5", seed=len(corpus))
                layout.convert(source)
                path = folder / layout_name / damage_name / f"{index:03d}.hdf5"
                if not path.parent.is_dir():
                    write_instruction_json(path.parent)
                shutil.copy(source, path)
                damage(path, rng, layout)
                corpus.append(DamagedFile(path, layout_name, damage_name))
    shutil.rmtree(pristine)
    return corpus
