"""Episode reader/writer, JPEG codec, instruction sources and the unified state vector."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from rdtflow.data.episode import decode_jpeg, encode_jpeg, read_episode, read_instruction, read_trajectory
from rdtflow.data.state_vector import STATE_DIM, to_unified, unified_indices, unified_mask
from tests.helpers.episodes import INSTRUCTION, make_data_cfg, synthetic_frames, synthetic_trajectory, write_synthetic_episode


def test_round_trip_keeps_arrays_and_pixels(tmp_path: Path) -> None:
    cameras = ("cam_high", "cam_right_wrist")
    path = write_synthetic_episode(tmp_path / "episode.hdf5", cameras=cameras, seed=7, attrs={"sim_reset": '{"x": 1}'})
    action, qpos = synthetic_trajectory(20, 3, seed=7)

    episode = read_episode(path, make_data_cfg(cameras=list(cameras)))

    np.testing.assert_array_equal(episode.action, action)
    np.testing.assert_array_equal(episode.qpos, qpos)
    assert episode.action.dtype == episode.qpos.dtype == np.float32
    assert list(episode.frames) == list(cameras)
    for index, camera in enumerate(cameras):
        originals = synthetic_frames(20, seed=7 + index)
        decoded = [decode_jpeg(frame) for frame in episode.frames[camera]]
        assert all(frame.shape == (16, 16, 3) and frame.dtype == np.uint8 for frame in decoded)
        errors = [np.abs(d.astype(int) - o.astype(int)).mean() for d, o in zip(decoded, originals)]
        assert max(errors) < 3.0
    assert episode.attrs == {"sim_reset": '{"x": 1}'}
    np.testing.assert_array_equal(read_trajectory(path, make_data_cfg())[1], qpos)


def test_frames_are_stored_padded_like_agilex(tmp_path: Path) -> None:
    path = write_synthetic_episode(tmp_path / "episode.hdf5")
    with h5py.File(path, "r") as h5:
        images = h5["/observations/images/cam_high"]
        assert images.dtype.kind == "S" and images.shape == (20,)
        np.testing.assert_array_equal(h5["/observations/qvel"][()], np.zeros((20, 3), np.float32))
    assert all(frame.endswith(b"\xff\xd9") for frame in read_episode(path, make_data_cfg()).frames["cam_high"])


@pytest.mark.parametrize("channel", [0, 2])
def test_pure_colour_decodes_to_the_same_channel(channel: int) -> None:
    """Guards against BGR/RGB mix-ups: a red image must come back red, a blue one blue."""
    image = np.zeros((16, 16, 3), np.uint8)
    image[..., channel] = 255
    decoded = decode_jpeg(encode_jpeg(image)).astype(int)
    assert decoded[..., channel].mean() > 240
    assert decoded[..., 2 - channel].mean() < 15


def test_decode_converts_grey_to_rgb() -> None:
    buffer = BytesIO()
    Image.new("L", (8, 4), color=128).save(buffer, format="JPEG")
    decoded = decode_jpeg(buffer.getvalue())
    assert decoded.shape == (4, 8, 3) and abs(int(decoded.mean()) - 128) <= 2


def test_reads_variable_length_uint8_frames(tmp_path: Path) -> None:
    path = write_synthetic_episode(tmp_path / "episode.hdf5")
    jpegs = [encode_jpeg(frame) for frame in synthetic_frames(20, seed=0)]
    with h5py.File(path, "a") as h5:
        del h5["/observations/images/cam_high"]
        frames = h5.create_dataset("/observations/images/cam_high", (20,), dtype=h5py.vlen_dtype(np.uint8))
        for step, jpeg in enumerate(jpegs):
            frames[step] = np.frombuffer(jpeg, np.uint8)
    assert read_episode(path, make_data_cfg()).frames["cam_high"] == jpegs


def test_custom_keys(tmp_path: Path) -> None:
    path = write_synthetic_episode(tmp_path / "episode.hdf5", cameras=("front",))
    with h5py.File(path, "a") as h5:
        h5.move("/action", "/commands")
        h5.move("/observations/images", "/cameras")
    cfg = make_data_cfg(action_key="/commands", image_group="/cameras/", cameras=["front"])
    episode = read_episode(path, cfg)
    assert episode.action.shape == (20, 3) and len(episode.frames["front"]) == 20


def test_instruction_from_json_list_uses_first_entry(tmp_path: Path) -> None:
    (tmp_path / "instruction.json").write_text(json.dumps({"instruction": ["first phrasing", "second"]}))
    assert read_instruction(tmp_path / "episode.hdf5", make_data_cfg()) == "first phrasing"


def test_instruction_missing_or_blank_is_none(tmp_path: Path) -> None:
    assert read_instruction(tmp_path / "episode.hdf5", make_data_cfg()) is None
    (tmp_path / "instruction.json").write_text(json.dumps({"instruction": "  "}))
    assert read_instruction(tmp_path / "episode.hdf5", make_data_cfg()) is None


def test_instruction_from_malformed_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "instruction.json").write_text("{not json")
    with pytest.raises(ValueError, match="instruction.json is not valid JSON"):
        read_instruction(tmp_path / "episode.hdf5", make_data_cfg())


def test_instruction_from_attribute(tmp_path: Path) -> None:
    path = write_synthetic_episode(tmp_path / "episode.hdf5", attrs={"task": INSTRUCTION})
    cfg = make_data_cfg(instruction={"source": "attribute", "file": "instruction.json", "key": "task"})
    assert read_instruction(path, cfg) == INSTRUCTION
    cfg["instruction"]["key"] = "absent"
    assert read_instruction(path, cfg) is None


def test_unified_vector_places_columns_at_their_slots() -> None:
    indices = unified_indices(["right_eef_pos_x", "right_eef_pos_y", "right_gripper_open"])
    assert indices.tolist() == [30, 31, 10]  # RDT's slots for the built-in task's columns
    values = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    unified = to_unified(values, indices)
    assert unified.shape == (2, STATE_DIM) and unified.dtype == np.float32
    np.testing.assert_array_equal(unified[:, indices], values)
    assert unified.sum() == values.sum()
    mask = unified_mask(indices)
    assert mask.sum() == 3 and set(mask[indices]) == {1.0}


def test_unknown_state_name_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match=r"right_eef_pos_q'.*did you mean.*right_eef_pos_x.*state_vec.json"):
        unified_indices(["right_eef_pos_q"])


def test_state_names_sharing_a_slot_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"share a unified slot .*\[\['arm_joint_0_pos', 'right_arm_joint_0_pos'\]\]"):
        unified_indices(["arm_joint_0_pos", "right_arm_joint_0_pos"])
