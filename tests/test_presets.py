"""Model sizes and data presets: two words instead of copied constants, never a silent contradiction."""

from __future__ import annotations

import pytest

from rdtflow.config import ConfigError, validate_config
from rdtflow.data.cameras import camera_slots, recorded_cameras
from rdtflow.model.shapes import EncoderShapes, parameter_counts, policy_config


def test_published_sizes_set_the_architecture():
    assert {k: validate_config({"run": "x", "model": {"size": "rdt-1b"}})["model"][k]
            for k in ("hidden_size", "depth", "num_heads")} == {"hidden_size": 2048, "depth": 28, "num_heads": 32}
    assert validate_config({"run": "x", "model": {"size": "rdt-170m"}})["model"]["hidden_size"] == 1024


def test_rdt_170m_is_about_170m_parameters_with_rdt_1b_token_layout():
    config = validate_config({"run": "x", "model": {"size": "rdt-170m", "pred_horizon": 64, "img_history_size": 2},
                              "data": {"preset": "agilex"}, "encoders": {"max_lang_tokens": 1024}})
    shapes = EncoderShapes(tokens_per_image=729, img_token_dim=1152, vision_params=0, lang_token_dim=4096, source="test")
    core, adaptors = parameter_counts(policy_config(config, shapes, "timm-1.0.3"))
    assert 150e6 < core + adaptors < 200e6


def test_a_size_contradicted_by_an_explicit_key_is_an_error():
    with pytest.raises(ConfigError, match=r"model.size rdt-1b .* model.depth is 4"):
        validate_config({"run": "x", "model": {"size": "rdt-1b", "depth": 4}})


def test_the_agilex_preset_fills_data_and_the_users_keys_win():
    data = validate_config({"run": "x", "data": {"preset": "agilex", "min_episode_steps": 20,
                                                  "normalization": {"mode": "min_max"}}})["data"]
    assert len(data["state_names"]) == 14
    assert data["min_episode_steps"] == 20 and data["moving_threshold"] == 0.01
    assert data["normalization"]["mode"] == "min_max"
    assert data["normalization"]["qpos_divisors"][6] == 4.7908  # nested keys the user left alone stay


def test_an_unknown_preset_names_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="data.preset: no data preset 'agilx'.*shipped: act, agilex"):
        validate_config({"run": "x", "data": {"preset": "agilx"}})


def test_divisors_must_cover_every_column():
    with pytest.raises(ConfigError, match="qpos_divisors has 2 numbers but data.state_names has 3"):
        validate_config({"run": "x", "data": {"normalization": {"mode": "raw", "qpos_divisors": [1, 2]}}})


def test_the_agilex_preset_feeds_cameras_in_upstreams_order():
    """Upstream RDT's slots are [exterior, right wrist, left wrist] (train/dataset.py, its README)."""
    cameras = validate_config({"run": "x", "data": {"preset": "agilex"}})["data"]["cameras"]
    assert camera_slots(cameras) == ["cam_high", "cam_right_wrist", "cam_left_wrist"]


def test_roles_fill_rdts_slots_whatever_order_they_are_written_in():
    assert camera_slots({"left_wrist": "l", "exterior": "e", "right_wrist": "r"}) == ["e", "r", "l"]


def test_a_single_wrist_camera_goes_in_the_right_wrist_slot():
    cameras = validate_config({"run": "x", "data": {"cameras": {"exterior": "cam_high", "wrist": "cam_hand"}}})["data"]["cameras"]
    assert camera_slots(cameras) == ["cam_high", "cam_hand", None]  # the left-wrist slot shows the background
    assert recorded_cameras(cameras) == ["cam_high", "cam_hand"]


def test_the_agilex_preset_without_its_left_wrist_keeps_the_slot_empty():
    data = validate_config({"run": "x", "data": {"preset": "agilex", "cameras": {"left_wrist": None}}})["data"]
    assert camera_slots(data["cameras"]) == ["cam_high", "cam_right_wrist", None]


def test_a_list_keeps_its_own_slot_order():
    assert camera_slots(["top", "side"]) == ["top", "side"]


@pytest.mark.parametrize(("cameras", "message"), [
    ({"wrist": "a", "left_wrist": "b"}, "'wrist' is for a robot's only wrist camera"),
    ({"exterior": "a", "right_wrist": "a"}, "camera.s. a fill more than one slot"),
    ({"exterior": None}, "names no camera"),
    ({"exterior": "a", "top": "b"}, "data.cameras.top: unknown key; valid: exterior, right_wrist, left_wrist, wrist"),
])
def test_camera_roles_that_cannot_be_placed_are_errors(cameras, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"run": "x", "data": {"cameras": cameras}})
