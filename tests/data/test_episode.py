"""Episode reader/writer, JPEG codec, instruction sources and the unified state vector."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from rdtflow.data.episode import episode_cameras, read_episode, read_instruction, read_trajectory
from rdtflow.data.frames import CameraFrames, JpegCodec, decode_jpeg, encode_jpeg
from rdtflow.data.state_vector import STATE_DIM, to_unified, unified_indices, unified_mask
from tests.helpers.episodes import INSTRUCTION, make_data_cfg, synthetic_frames, synthetic_trajectory, write_synthetic_episode


def test_round_trip_keeps_arrays_and_pixels(tmp_path: Path) -> None:
    cameras = ("cam_high", "cam_right_wrist")
    path = write_synthetic_episode(tmp_path / "episode.hdf5", cameras=cameras, seed=7, attrs={"sim_reset": '{"x": 1}'})
    action, qpos = synthetic_trajectory(20, 3, seed=7)

    episode = read_episode(path, make_data_cfg(cameras=list(cameras)))
    with episode_cameras(path, make_data_cfg(cameras=list(cameras))) as frames:
        decoded_frames = {camera: [frames[camera].pixels(step) for step in range(20)] for camera in frames}

    np.testing.assert_array_equal(episode.action, action)
    np.testing.assert_array_equal(episode.qpos, qpos)
    assert episode.action.dtype == episode.qpos.dtype == np.float32
    assert list(decoded_frames) == list(cameras)
    for index, camera in enumerate(cameras):
        originals = synthetic_frames(20, seed=7 + index)
        decoded = decoded_frames[camera]
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
    with episode_cameras(path, make_data_cfg()) as cameras:
        assert all(frame.endswith(b"\xff\xd9") for frame in cameras["cam_high"].stored())


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


@pytest.mark.parametrize(("quality", "subsampling"), [(90, 2), (60, 0), (95, 1)])
def test_a_recorders_codec_read_from_its_frame_reproduces_its_frames_exactly(quality: int, subsampling: int) -> None:
    """Closed-loop evaluation (eval.frame_codec: recorded) shows the policy rendered frames as
    the demonstrations' recorder would have stored them; other settings would differ."""
    image = np.random.default_rng(quality).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    codec = JpegCodec.of(buffer.getvalue())
    assert codec.subsampling == subsampling
    np.testing.assert_array_equal(codec.round_trip(image), decode_jpeg(buffer.getvalue()))
    assert not np.array_equal(JpegCodec.of(encode_jpeg(image, quality=30)).round_trip(image), decode_jpeg(buffer.getvalue()))


def test_the_codec_of_raw_frames_is_none_and_of_jpeg_frames_their_first(tmp_path: Path) -> None:
    jpeg = write_synthetic_episode(tmp_path / "jpeg.hdf5")
    with episode_cameras(jpeg, make_data_cfg()) as cameras:
        assert cameras["cam_high"].codec() == JpegCodec.of(cameras["cam_high"].jpeg(0))
    raw = tmp_path / "raw.hdf5"
    with h5py.File(raw, "w") as h5:
        h5["frames"] = synthetic_frames(3, seed=1)
        assert CameraFrames(h5["frames"]).codec() is None
    with pytest.raises(ValueError, match="expected a JPEG frame, got PNG"):
        png = BytesIO()
        Image.new("RGB", (4, 4)).save(png, format="PNG")
        JpegCodec.of(png.getvalue())


def test_reads_variable_length_uint8_frames(tmp_path: Path) -> None:
    path = write_synthetic_episode(tmp_path / "episode.hdf5")
    jpegs = [encode_jpeg(frame) for frame in synthetic_frames(20, seed=0)]
    with h5py.File(path, "a") as h5:
        del h5["/observations/images/cam_high"]
        frames = h5.create_dataset("/observations/images/cam_high", (20,), dtype=h5py.vlen_dtype(np.uint8))
        for step, jpeg in enumerate(jpegs):
            frames[step] = np.frombuffer(jpeg, np.uint8)
    with episode_cameras(path, make_data_cfg()) as cameras:
        assert list(cameras["cam_high"].stored()) == jpegs and cameras["cam_high"].jpeg(3) == jpegs[3]


def test_custom_keys(tmp_path: Path) -> None:
    path = write_synthetic_episode(tmp_path / "episode.hdf5", cameras=("front",))
    with h5py.File(path, "a") as h5:
        h5.move("/action", "/commands")
        h5.move("/observations/images", "/cameras")
    cfg = make_data_cfg(action_key="/commands", image_group="/cameras/", cameras=["front"])
    with episode_cameras(path, cfg) as cameras:
        assert read_episode(path, cfg).action.shape == (20, 3) and len(cameras["front"]) == 20


def test_instruction_from_json_list_uses_first_entry(tmp_path: Path) -> None:
    (tmp_path / "instruction.json").write_text(json.dumps({"instruction": ["first phrasing", "second"]}))
    assert read_instruction(tmp_path / "episode.hdf5", make_data_cfg(), {}) == "first phrasing"


def test_instruction_missing_or_blank_is_none(tmp_path: Path) -> None:
    assert read_instruction(tmp_path / "episode.hdf5", make_data_cfg(), {}) is None
    (tmp_path / "instruction.json").write_text(json.dumps({"instruction": "  "}))
    assert read_instruction(tmp_path / "episode.hdf5", make_data_cfg(), {}) is None


def test_instruction_from_malformed_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "instruction.json").write_text("{not json")
    with pytest.raises(ValueError, match="instruction.json is not valid JSON"):
        read_instruction(tmp_path / "episode.hdf5", make_data_cfg(), {})


def test_instruction_from_attribute(tmp_path: Path) -> None:
    path = write_synthetic_episode(tmp_path / "episode.hdf5", attrs={"task": INSTRUCTION})
    cfg = make_data_cfg(instruction={"source": "attribute", "file": "instruction.json", "key": "task"})
    assert read_instruction(path, cfg, read_episode(path, cfg).attrs) == INSTRUCTION
    cfg["instruction"]["key"] = "absent"
    assert read_instruction(path, cfg, read_episode(path, cfg).attrs) is None


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


class CountingReads:
    """An h5py dataset that records what each read asked for."""

    def __init__(self, dataset: h5py.Dataset) -> None:
        self.dataset, self.reads = dataset, []

    def __getattr__(self, name: str):
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        self.reads.append(key)
        return self.dataset[key]


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_raw_pixel_frames_are_read_in_place_one_frame_per_access(tmp_path: Path, compression: str | None) -> None:
    """ACT's layout: uint8 (T, H, W, 3), chunked per frame or stored contiguous, compressed or not."""
    pixels = np.stack(synthetic_frames(20, seed=3))
    path = write_synthetic_episode(tmp_path / "episode.hdf5")
    with h5py.File(path, "a") as h5:
        del h5["/observations/images/cam_high"]
        h5.create_dataset("/observations/images/cam_high", data=pixels, compression=compression,
                          chunks=(1, 16, 16, 3) if compression else None)
    with h5py.File(path, "r") as h5:
        counted = CountingReads(h5["/observations/images/cam_high"])
        frames = CameraFrames(counted)
        assert not frames.is_jpeg and len(frames) == 20
        np.testing.assert_array_equal(frames.pixels(7), pixels[7])
        assert b"".join(frames.stored()) == pixels.tobytes()
        assert np.abs(decode_jpeg(frames.jpeg(4)).astype(int) - pixels[4]).mean() < 3
        assert counted.reads == [7, *range(20), 4]  # never the whole camera at once
