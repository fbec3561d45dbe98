"""`rdtflow inspect` shows what a file holds and names the preset that reads it, or why none does."""

from __future__ import annotations

from pathlib import Path

import h5py

from rdtflow.cli import main as rdtflow
from tests.helpers.episodes import write_synthetic_episode
from tests.helpers.layouts import write_robomimic_file, write_robotwin_episode

AGILEX_CAMERAS = ("cam_high", "cam_right_wrist", "cam_left_wrist")


def inspect(path: Path, capsys) -> tuple[int, str]:
    code = rdtflow(["inspect", str(path)])
    return code, capsys.readouterr().out


def test_an_agilex_episode_is_read_by_the_agilex_preset(tmp_path: Path, capsys) -> None:
    path = write_synthetic_episode(tmp_path / "episode_0.hdf5", n_steps=130, n_cols=14, cameras=AGILEX_CAMERAS,
                                   attrs={"compress": "True"})
    code, out = inspect(path, capsys)
    assert code == 0
    assert "reads this file: set data.preset: agilex" in out
    assert "act        does not fit (missing_camera: camera(s) top not in '/observations/images'" in out
    assert "/observations/images/cam_high  |S" in out and "(130,)  -> JPEG frames, padded byte strings (agilex)" in out
    assert "  /action  float32 (130, 14)" in out and "  @compress = True" in out


def test_an_act_episode_with_raw_frames_is_read_by_the_act_preset(tmp_path: Path, capsys) -> None:
    path = write_synthetic_episode(tmp_path / "episode_0.hdf5", n_steps=120, n_cols=14, cameras=("top",),
                                   raw_frames=True)
    code, out = inspect(path, capsys)
    assert code == 0 and "reads this file: set data.preset: act" in out
    assert "/observations/images/top  uint8 (120, 16, 16, 3)  chunks (1, 16, 16, 3)  gzip  -> raw uint8 RGB frames, 16x16" in out
    assert "agilex     does not fit (missing_camera:" in out


def test_a_robomimic_file_of_many_demos_is_read_by_the_robomimic_preset(tmp_path: Path, capsys) -> None:
    code, out = inspect(write_robomimic_file(tmp_path / "image.hdf5", n_demos=5), capsys)
    assert code == 0 and "reads this file: set data.preset: robomimic" in out
    assert "/data/demo_1/obs/agentview_image  uint8 (40, 84, 84, 3)  -> raw uint8 RGB frames, 84x84" in out
    assert "/data/demo_2/" not in out and "... and 3 more groups in /data like those above" in out  # two drawn
    assert "robotwin   does not fit (missing_dataset: no dataset '/joint_action/vector' (the file holds /data/demo_0/actions" \
        in out


def test_a_robotwin_episode_is_read_by_the_robotwin_preset(tmp_path: Path, capsys) -> None:
    code, out = inspect(write_robotwin_episode(tmp_path / "episode0.hdf5"), capsys)
    assert code == 0 and "reads this file: set data.preset: robotwin" in out
    assert "/observation/head_camera/rgb  |S" in out and "-> JPEG frames, padded byte strings (agilex)" in out
    assert "robomimic  does not fit (missing_dataset: no group '/data' holding the demos" in out


def test_a_file_no_preset_reads_says_why_for_each(tmp_path: Path, capsys) -> None:
    path = write_synthetic_episode(tmp_path / "episode_0.hdf5", n_steps=130, n_cols=3, cameras=AGILEX_CAMERAS)
    with h5py.File(path, "a") as h5:
        h5["/observations/state"] = h5py.SoftLink("/observations/qpos")
    code, out = inspect(path, capsys)
    assert code == 1
    assert "agilex     does not fit (wrong_state_dim: '/action' has shape (130, 3) but data.state_names lists 14" in out
    assert "/observations/state  soft link to /observations/qpos" in out and "No preset fits." in out


def test_a_file_that_is_not_hdf5_is_named_as_such(tmp_path: Path, capsys) -> None:
    path = tmp_path / "episode_0.hdf5"
    path.write_text("time,x\n0,1\n")
    code, out = inspect(path, capsys)
    assert code == 1 and "cannot be opened: not_hdf5: cannot be read as HDF5 (no HDF5 signature)" in out
