"""A corpus of damaged episode files for the validator's fuzz test, reproducible from one seed.

Each kind of damage is applied to a fresh copy of a valid episode, in each layout the
validator reads. Damage to the bytes can hit anything; damage to the structure is aimed at
what an episode needs (action, qpos, the image group, a camera), since damage to an optional
dataset is accepted by design. ``EXPECTED`` says which reasons each structural kind may give.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tests.helpers.episodes import replace_object, store_frames_raw, write_instruction_json, write_synthetic_episode

IMAGES = "/observations/images"
STATE_KEYS = ("/action", "/observations/qpos")
CAMERA = f"{IMAGES}/cam_high"
NEEDED = (*STATE_KEYS, CAMERA)
Damage = Callable[[Path, np.random.Generator], None]


def _vlen_frames(path: Path) -> None:
    """The frames as variable-length uint8 arrays, as recorders other than agilex's store them."""
    with h5py.File(path, "a") as h5:
        frames = [np.frombuffer(bytes(frame).rstrip(b"\0"), np.uint8) for frame in h5[CAMERA][()]]
        del h5[CAMERA]
        dataset = h5.create_dataset(CAMERA, (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
        for step, frame in enumerate(frames):
            dataset[step] = frame


def _chunked_compressed(path: Path) -> None:
    """Action and qpos stored chunked and gzip-compressed, so byte damage can hit a chunk's stream."""
    with h5py.File(path, "a") as h5:
        for key in STATE_KEYS:
            values = h5[key][()]
            del h5[key]
            h5.create_dataset(key, data=values, chunks=(5, values.shape[1]), compression="gzip")


LAYOUTS: dict[str, Callable[[Path], None]] = {
    "agilex_padded_jpeg": lambda path: None,
    "vlen_jpeg": _vlen_frames,
    "gzip_chunks": _chunked_compressed,
    "act_raw_frames": store_frames_raw,
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


def truncate(path: Path, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(rng.integers(len(data)))])


def overwrite_bytes(path: Path, rng: np.random.Generator) -> None:
    data = bytearray(path.read_bytes())
    start, length = int(rng.integers(len(data))), int(rng.integers(1, 257))
    span = data[start : start + length]
    data[start : start + len(span)] = rng.integers(0, 256, len(span), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def flip_bits(path: Path, rng: np.random.Generator) -> None:
    data = np.frombuffer(path.read_bytes(), np.uint8).copy()
    positions = rng.integers(len(data), size=int(rng.integers(1, 17)))
    data[positions] ^= (1 << rng.integers(8, size=len(positions))).astype(np.uint8)
    path.write_bytes(data.tobytes())


def remove_dataset(path: Path, rng: np.random.Generator) -> None:
    with h5py.File(path, "a") as h5:
        del h5[_choose(rng, NEEDED)]


def rename_dataset(path: Path, rng: np.random.Generator) -> None:
    key = _choose(rng, NEEDED)
    with h5py.File(path, "a") as h5:
        h5.move(key, f"{key}_{_choose(rng, ('old', 'v2', 'raw'))}")


def remove_group(path: Path, rng: np.random.Generator) -> None:
    with h5py.File(path, "a") as h5:
        del h5[_choose(rng, ("/observations", IMAGES))]


def group_for_dataset(path: Path, rng: np.random.Generator) -> None:
    replace_object(path, _choose(rng, NEEDED), lambda h5, key: h5.create_group(key))


def soft_link_cycle(path: Path, rng: np.random.Generator) -> None:
    loop = _choose(rng, ("/loop", "/observations/loop"))

    def make(h5: h5py.File, key: str) -> None:
        h5[key] = h5py.SoftLink(loop)
        h5[loop] = h5py.SoftLink(key)

    replace_object(path, _choose(rng, (*NEEDED, IMAGES)), make)


def dangling_soft_link(path: Path, rng: np.random.Generator) -> None:
    replace_object(path, _choose(rng, NEEDED), lambda h5, key: h5.__setitem__(key, h5py.SoftLink(f"/recorded{key}")))


def missing_external_link(path: Path, rng: np.random.Generator) -> None:
    link = h5py.ExternalLink("episode_source.hdf5", "/data")
    replace_object(path, _choose(rng, NEEDED), lambda h5, key: h5.__setitem__(key, link))


def wrong_dtype(path: Path, rng: np.random.Generator) -> None:
    key = _choose(rng, NEEDED)
    shape = _values(path, key).shape
    kind = _choose(rng, ("text", "complex", "bool", "compound", "other"))
    values = {
        "text": np.full(shape, b"0.5"),
        "complex": np.ones(shape, np.complex64),
        "bool": np.ones(shape, bool),
        "compound": np.zeros(shape, [("x", "f4"), ("y", "f4")]),
        # pixels as floats where JPEG bytes belong; opaque bytes where numbers belong
        "other": np.zeros((*shape, 8, 8, 3), np.float32) if key == CAMERA else np.zeros(shape, "f4").view("V4"),
    }[kind]
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=values))


def wrong_shape(path: Path, rng: np.random.Generator) -> None:
    key = _choose(rng, NEEDED)
    values = _values(path, key)
    options = (values[: len(values) // 2], values[None], values.reshape(-1)) if key != CAMERA else (
        values[: len(values) // 2], np.stack([values, values], axis=1))
    reshaped = options[int(rng.integers(len(options)))]
    if key != CAMERA and rng.integers(2):
        reshaped = np.concatenate([values, values[:, :1]], axis=1)  # one column too many
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=reshaped))


def transposed(path: Path, rng: np.random.Generator) -> None:
    key = _choose(rng, STATE_KEYS)
    values = _values(path, key)
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=values.T))


def non_finite(path: Path, rng: np.random.Generator) -> None:
    key = _choose(rng, STATE_KEYS)
    values = _values(path, key).astype(np.float32)
    values[int(rng.integers(len(values))), int(rng.integers(values.shape[1]))] = _choose(rng, (np.nan, np.inf, -np.inf))
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=values))


def implausible_magnitude(path: Path, rng: np.random.Generator) -> None:
    key = _choose(rng, STATE_KEYS)
    values = _values(path, key).astype(np.float32)
    step, column = int(rng.integers(len(values))), int(rng.integers(values.shape[1]))
    values[step, column] = float(rng.choice([-1, 1])) * 10.0 ** float(rng.uniform(4.5, 30))
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=values))


def odd_attributes(path: Path, rng: np.random.Generator) -> None:
    """Root attributes of types a reader rarely meets: empty, a reference, complex, nested."""
    with h5py.File(path, "a") as h5:
        kind = _choose(rng, ("empty", "reference", "complex", "vlen"))
        if kind == "empty":
            h5.attrs["sim_reset"] = h5py.Empty("f4")
        elif kind == "reference":
            h5.attrs.create("source", h5["/action"].ref, dtype=h5py.ref_dtype)
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
    "remove_group": {"missing_dataset"},
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
    """``files_per_kind`` damaged files per layout and kind, each from its own valid episode."""
    rng = np.random.default_rng(seed)
    corpus = []
    pristine = folder.parent / f"{folder.name}_pristine"
    for layout, convert in LAYOUTS.items():
        for damage_name, damage in DAMAGES.items():
            for index in range(files_per_kind):
                source = write_synthetic_episode(pristine / f"{layout}.hdf5", seed=len(corpus))
                convert(source)
                path = folder / layout / damage_name / f"{index:03d}.hdf5"
                if not path.parent.is_dir():
                    write_instruction_json(path.parent)
                shutil.copy(source, path)
                damage(path, rng)
                corpus.append(DamagedFile(path, layout, damage_name))
    shutil.rmtree(pristine)
    return corpus
