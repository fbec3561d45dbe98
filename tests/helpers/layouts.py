"""Other recorders' layouts: the built-in task's demos rewritten in them, and files shaped
exactly as those recorders write them.

The ``*_layout`` functions take a folder of agilex-layout episodes (as the demos stage writes
them) and store the same numbers, frames and simulator attributes the way ACT, robomimic or
RoboTwin 2.0 would, so a test can run the whole workflow on that layout. The ``write_*``
functions write files with those recorders' own keys, shapes and dtypes, which the shipped
presets read as they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from rdtflow.data.frames import decode_jpeg, encode_jpeg, padded_byte_strings
from tests.helpers.episodes import store_frames_raw

CAMERA = "cam_high"


def _episode_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.hdf5"))


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, list[bytes], dict]:
    """(action, qpos, the camera's JPEG frames, root attributes) of an agilex episode."""
    with h5py.File(path, "r") as h5:
        frames = [bytes(frame).rstrip(b"\0") for frame in h5[f"/observations/images/{CAMERA}"][()]]
        return h5["action"][()], h5["observations/qpos"][()], frames, dict(h5.attrs)


def act_layout(folder: Path) -> Path:
    """ACT: the agilex keys, raw uint8 frames chunked one per frame."""
    for path in _episode_files(folder):
        store_frames_raw(path)
    return folder


def task_folders(folder: Path, tasks: dict[str, str]) -> Path:
    """Several tasks in one demo folder, as agilex keeps them: the episodes dealt in turn into
    one subfolder per task, each with its own instruction.json. ``tasks``: folder -> instruction."""
    for name, instruction in tasks.items():
        (folder / name).mkdir()
        (folder / name / "instruction.json").write_text(json.dumps({"instruction": instruction}))
    names = list(tasks)
    for index, path in enumerate(_episode_files(folder)):
        path.rename(folder / names[index % len(names)] / path.name)
    (folder / "instruction.json").unlink()
    return folder


def robomimic_layout(folder: Path, valid: int) -> Path:
    """robomimic: one file, demo_N groups holding actions and obs/ (states split over two keys,
    the gripper a 1-D dataset, frames raw uint8), /mask/valid naming the last ``valid`` demos
    and /mask/train the others. Returns the folder holding the file and its instruction.json."""
    files = _episode_files(folder)
    out = folder.parent / f"{folder.name}_robomimic"
    out.mkdir()
    shutil.copy(folder / "instruction.json", out / "instruction.json")
    names = [f"demo_{index}" for index in range(len(files))]
    with h5py.File(out / "demos.hdf5", "w") as h5:
        data = h5.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "builtin-pick-place"})
        for name, path in zip(names, files):
            action, qpos, frames, attrs = _read(path)
            demo = data.create_group(name)
            demo.attrs.update(attrs | {"num_samples": len(action)})
            demo["actions"] = action
            demo["obs/robot0_eef_pos"] = qpos[:, :2]
            demo["obs/robot0_gripper_qpos"] = qpos[:, 2]
            demo["obs/agentview_image"] = np.stack([decode_jpeg(frame) for frame in frames])
        h5["mask/train"] = np.array(names[:-valid], dtype="S")
        h5["mask/valid"] = np.array(names[-valid:], dtype="S")
    shutil.rmtree(folder)
    return out


def robotwin_layout(folder: Path) -> Path:
    """RoboTwin 2.0: data/episodeN.hdf5 with joint_action/vector (states only, no action) and
    observation/head_camera/rgb as padded JPEG bytes; instructions/episodeN.json with the
    "seen" and "unseen" lists. Returns the data folder."""
    instruction = json.loads((folder / "instruction.json").read_text())["instruction"]
    task = folder.parent / f"{folder.name}_robotwin"
    (task / "data").mkdir(parents=True)
    (task / "instructions").mkdir()
    for index, path in enumerate(_episode_files(folder)):
        _, qpos, frames, attrs = _read(path)
        with h5py.File(task / "data" / f"episode{index}.hdf5", "w") as h5:
            h5["joint_action/vector"] = qpos.astype(np.float64)
            h5["joint_action/left_gripper"] = qpos[:, 2].astype(np.float64)
            h5["observation/head_camera/rgb"] = padded_byte_strings(frames)
            h5["observation/head_camera/intrinsic_cv"] = np.eye(3)
            h5["endpose"] = np.zeros((len(qpos), 14))
            h5.attrs.update(attrs)
        (task / "instructions" / f"episode{index}.json").write_text(
            json.dumps({"seen": [instruction], "unseen": [f"{instruction}, please"]}))
    shutil.rmtree(folder)
    return task / "data"


def _pixels(n_steps: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n_steps, height, width, 3), dtype=np.uint8)


def _joints(n_steps: int, n_cols: int, seed: int) -> np.ndarray:
    """A smooth walk that starts still for a few steps, as a recording does."""
    moves = np.random.default_rng(seed).normal(0, 0.02, size=(n_steps, n_cols))
    moves[:3] = 0
    return np.cumsum(moves, axis=0)


def write_robomimic_file(path: Path, n_demos: int = 3, n_steps: int = 40) -> Path:
    """A robomimic image dataset as its conversion scripts write it (Panda arm)."""
    with h5py.File(path, "w") as h5:
        data = h5.create_group("data")
        data.attrs["total"] = n_demos * n_steps
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1})
        for index in range(n_demos):
            demo = data.create_group(f"demo_{index}")
            demo.attrs["num_samples"] = n_steps
            demo["actions"] = np.random.default_rng(index).uniform(-1, 1, (n_steps, 7))
            demo["states"] = np.zeros((n_steps, 32))
            demo["rewards"] = np.zeros(n_steps)
            demo["dones"] = np.zeros(n_steps, dtype=np.int64)
            demo["obs/robot0_joint_pos"] = _joints(n_steps, 7, index)
            demo["obs/robot0_gripper_qpos"] = 0.04 + _joints(n_steps, 2, index + 100) / 10
            demo["obs/robot0_eef_pos"] = _joints(n_steps, 3, index + 200)
            demo["obs/robot0_eef_quat"] = np.tile([0.0, 0.0, 0.0, 1.0], (n_steps, 1))
            for camera in ("agentview_image", "robot0_eye_in_hand_image"):
                demo[f"obs/{camera}"] = _pixels(n_steps, 84, 84, index)
        h5["mask/train"] = np.array([f"demo_{index}" for index in range(n_demos - 1)], dtype="S")
        h5["mask/valid"] = np.array([f"demo_{n_demos - 1}"], dtype="S")
    return path


def write_robotwin_episode(path: Path, n_steps: int = 40) -> Path:
    """A RoboTwin 2.0 episode (aloha-agilex embodiment) as its collector writes it."""
    vector = _joints(n_steps, 14, 0)
    with h5py.File(path, "w") as h5:
        h5["joint_action/left_arm"] = vector[:, :6]
        h5["joint_action/left_gripper"] = vector[:, 6]
        h5["joint_action/right_arm"] = vector[:, 7:13]
        h5["joint_action/right_gripper"] = vector[:, 13]
        h5["joint_action/vector"] = vector
        h5["endpose"] = np.zeros((n_steps, 14))
        h5["pointcloud"] = np.zeros((n_steps, 16, 6), dtype=np.float32)
        for index, camera in enumerate(("head_camera", "left_camera", "right_camera", "front_camera")):
            h5[f"observation/{camera}/rgb"] = padded_byte_strings([encode_jpeg(p) for p in _pixels(n_steps, 24, 32, index)])
            h5[f"observation/{camera}/intrinsic_cv"] = np.eye(3)
    return path
