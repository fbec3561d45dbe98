"""Sample order, batch layout, per-sample diffusion draws and sample construction."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from rdtflow.data.cameras import camera_slots
from rdtflow.data.episode import episode_cameras, write_episode
from rdtflow.train.layout import BatchLayout
from rdtflow.train.samples import SampleOrder, StepSamples, diffusion_draws
from tests.helpers.episodes import store_frames_raw

DATA_CFG = {"action_key": "/action", "qpos_key": "/observations/qpos", "image_group": "/observations/images",
            "cameras": ["cam_high", "cam_left_wrist"]}


def test_every_layout_with_the_same_effective_batch_sees_the_same_samples_per_step():
    layouts = [BatchLayout(8, 1, 1), BatchLayout(2, 2, 2), BatchLayout(4, 2, 1), BatchLayout(1, 1, 8)]
    for step in (0, 3):
        seen = []
        for layout in layouts:
            numbers = [n for m in range(layout.accumulation) for r in range(layout.processes)
                       for n in layout.sample_numbers(step, m, r)]
            seen.append(sorted(numbers))
        assert all(s == list(range(step * 8, step * 8 + 8)) for s in seen)


def test_sample_order_visits_every_row_once_per_epoch_and_reshuffles():
    order = SampleOrder(10, seed=1)
    first = [order.row(k) for k in range(10)]
    second = [order.row(k) for k in range(10, 20)]
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second
    assert [SampleOrder(10, seed=1).row(k) for k in range(10)] == first


def test_diffusion_draws_depend_only_on_the_sample_number():
    noise, timesteps = diffusion_draws(range(4, 8), seed=0, shape=(2, 3), num_train_timesteps=1000)
    later_noise, later_timesteps = diffusion_draws(range(6, 8), seed=0, shape=(2, 3), num_train_timesteps=1000)
    torch.testing.assert_close(noise[2:], later_noise)
    torch.testing.assert_close(timesteps[2:], later_timesteps)
    other_seed, _ = diffusion_draws(range(4, 8), seed=1, shape=(2, 3), num_train_timesteps=1000)
    assert not torch.equal(noise, other_seed)


def test_step_sample_pads_the_chunk_and_masks_history_before_the_start(tmp_path):
    steps = 6
    action = np.arange(steps * 2, dtype=np.float32).reshape(steps, 2)
    frames = {camera: [np.full((8, 8, 3), 10 * s + offset, np.uint8) for s in range(steps)]
              for offset, camera in enumerate(DATA_CFG["cameras"])}
    write_episode(tmp_path / "e.hdf5", action=action, qpos=action, frames=frames)
    manifest = pd.DataFrame([{"episode_id": "e", "path": str(tmp_path / "e.hdf5"), "group": "", "step": s, "n_steps": steps,
                              "instruction": "go"} for s in (0, 4)])
    samples = StepSamples(manifest, DATA_CFG, pred_horizon=4, img_history=2)
    start = samples.sample(0)
    np.testing.assert_array_equal(start["action"], action[[0, 1, 2, 3]])
    assert start["frames"].shape == (4, 8, 8, 3)  # 2 frames x 2 cameras
    np.testing.assert_array_equal(start["frames_valid"], [False, False, True, True])
    late = samples.sample(1)
    np.testing.assert_array_equal(late["action"], action[[4, 5, 5, 5]])  # the last action repeats
    np.testing.assert_array_equal(late["frames_valid"], [True] * 4)
    assert abs(int(late["frames"][0].mean()) - 30) <= 2  # step 3, first camera
    assert abs(int(late["frames"][3].mean()) - 41) <= 2  # step 4, second camera


@pytest.mark.parametrize("cameras", [
    ["cam_high", "cam_left_wrist"],
    {"exterior": "cam_high", "wrist": "cam_left_wrist"},  # RDT's 3 slots, the left-wrist one without a camera
])
def test_precomputed_image_features_equal_encoding_in_the_loop(tmp_path, cameras):
    from rdtflow.model.encoders import VisionEncoder, build_small_vision_tower
    from rdtflow.model.image_features import encode_image_features
    from rdtflow.model.inputs import PolicyInputs
    from rdtflow.train.samples import collate

    data_cfg = {**DATA_CFG, "cameras": cameras}
    steps = 5
    rng = np.random.default_rng(0)
    frames = {camera: [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(steps)]
              for camera in DATA_CFG["cameras"]}
    action = np.cumsum(np.ones((steps, 2), np.float32), axis=0)
    write_episode(tmp_path / "e.hdf5", action=action, qpos=action, frames=frames)
    manifest = pd.DataFrame([{"episode_id": "e", "path": str(tmp_path / "e.hdf5"), "group": "", "step": s, "n_steps": steps,
                              "instruction": "go"} for s in range(steps)])
    manifest.to_parquet(tmp_path / "manifest.parquet")
    build_small_vision_tower(tmp_path / "vision", 16, {"hidden_size": 8, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 16, "patch_size": 8}, seed=0)
    encode_image_features(tmp_path / "manifest.parquet", data_cfg, tmp_path / "vision", tmp_path / "features.safetensors")

    stats = {"state_names": ["right_eef_pos_x", "right_eef_pos_y"], "normalization": {"mode": "min_max"},
             "qpos": {"min": [0, 0], "max": [5, 5]},
             "action": {"min": [0, 0], "max": [5, 5]}}
    vision = VisionEncoder.load(tmp_path / "vision")
    inputs = PolicyInputs.create(stats, {}, vision, 10)
    from_frames = StepSamples(manifest, data_cfg, 2, img_history=2)
    from_table = StepSamples(manifest, data_cfg, 2, img_history=2, image_features=tmp_path / "features.safetensors")
    slots = len(camera_slots(cameras))
    for rows in ([0, 1], [3, 4]):  # the first step has blank history slots
        encoded = inputs.batch_image_tokens(collate([from_frames.sample(r) for r in rows]))
        cached = inputs.batch_image_tokens(collate([from_table.sample(r) for r in rows]))
        assert cached.shape == encoded.shape == (2, 2 * slots * 4, 8)
        torch.testing.assert_close(cached, encoded, atol=2e-2, rtol=1e-2)  # float16 storage
    if slots == 3:
        assert from_frames.sample(4)["frames_valid"].tolist() == [True, True, False] * 2
        background = vision.encode(vision.mean_colour.expand(1, 16, 16, 3))[0]
        late = inputs.batch_image_tokens(collate([from_frames.sample(4)])).view(2 * slots, 4, 8)
        torch.testing.assert_close(late[2], background)  # the empty left-wrist slot, both frames
        torch.testing.assert_close(late[5], background)


def test_raw_pixel_frames_give_the_model_what_jpeg_frames_of_the_same_pixels_give(tmp_path):
    """ACT's raw uint8 frames and agilex's JPEG frames read in place, alone or mixed across
    cameras: the same pixels, the same samples on the fly and the same precomputed features."""
    from rdtflow.model.encoders import build_small_vision_tower
    from rdtflow.model.image_features import ImageFeatureTable, encode_image_features

    steps = 4
    rng = np.random.default_rng(1)
    action = np.cumsum(np.ones((steps, 2), np.float32), axis=0)
    frames = {camera: [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(steps)]
              for camera in DATA_CFG["cameras"]}
    write_episode(tmp_path / "jpeg.hdf5", action=action, qpos=action, frames=frames)
    with episode_cameras(tmp_path / "jpeg.hdf5", DATA_CFG) as cameras:
        decoded = {camera: [cameras[camera].pixels(step) for step in range(steps)] for camera in cameras}
    write_episode(tmp_path / "raw.hdf5", action=action, qpos=action, frames=decoded, raw_frames=True)
    shutil.copy(tmp_path / "jpeg.hdf5", tmp_path / "mixed.hdf5")
    store_frames_raw(tmp_path / "mixed.hdf5", "/observations/images/cam_high")  # raw beside a JPEG camera
    with h5py.File(tmp_path / "raw.hdf5") as h5:
        stored = h5["/observations/images/cam_high"]
        assert stored.dtype == np.uint8 and stored.shape == (steps, 16, 16, 3) and stored.compression == "gzip"
    build_small_vision_tower(tmp_path / "vision", 16, {"hidden_size": 8, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 16, "patch_size": 8}, seed=0)
    samples, tables = {}, {}
    for name in ("jpeg", "raw", "mixed"):
        manifest = pd.DataFrame([{"episode_id": "e", "path": str(tmp_path / f"{name}.hdf5"), "group": "", "step": s,
                                  "n_steps": steps, "instruction": "go"} for s in range(steps)])
        manifest.to_parquet(tmp_path / f"{name}.parquet")
        samples[name] = StepSamples(manifest, DATA_CFG, 2, img_history=2)
        encode_image_features(tmp_path / f"{name}.parquet", DATA_CFG, tmp_path / "vision", tmp_path / f"{name}.safetensors")
        tables[name] = ImageFeatureTable(tmp_path / f"{name}.safetensors")
    for other in ("raw", "mixed"):
        for row in range(steps):
            np.testing.assert_array_equal(samples["jpeg"].sample(row)["frames"], samples[other].sample(row)["frames"])
            for camera in DATA_CFG["cameras"]:
                assert torch.equal(tables["jpeg"].tokens("e", camera, row), tables[other].tokens("e", camera, row))


def test_a_sample_carries_its_episodes_state_spread(tmp_path):
    qpos = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]], np.float32)
    frames = {camera: [np.zeros((8, 8, 3), np.uint8)] * 3 for camera in DATA_CFG["cameras"]}
    write_episode(tmp_path / "e.hdf5", action=qpos, qpos=qpos, frames=frames)
    manifest = pd.DataFrame([{"episode_id": "e", "path": str(tmp_path / "e.hdf5"), "group": "", "step": 1, "n_steps": 3,
                              "instruction": "go"}])
    sample = StepSamples(manifest, DATA_CFG, pred_horizon=2, img_history=1).sample(0)
    np.testing.assert_allclose(sample["qpos_std"], [np.std([0, 2, 4]), 0.0])  # over the whole episode, as RDT
