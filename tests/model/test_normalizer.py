"""The two normalisations: min/max to [-1, 1] for training from scratch, raw units for RDT's weights."""

from __future__ import annotations

import numpy as np

from rdtflow.config import validate_config
from rdtflow.data.state_vector import unified_indices
from rdtflow.model.inputs import Normalizer

AGILEX = validate_config({"run": "x", "data": {"preset": "agilex"}})["data"]


def stats_for(values: np.ndarray, normalization: dict) -> dict:
    columns = {"min": values.min(0).tolist(), "max": values.max(0).tolist()}
    return {"normalization": normalization, "qpos": columns, "action": columns}


def test_min_max_maps_the_training_range_to_minus_one_one_and_back():
    values = np.array([[0.0, 5.0, 2.0], [4.0, 7.0, 2.0]], np.float32)
    normalizer = Normalizer.from_stats(stats_for(values, {"mode": "min_max"}), "qpos")
    normalized = normalizer.normalize(values)
    np.testing.assert_allclose(normalized[:, :2], [[-1, -1], [1, 1]])
    assert np.all(normalized[:, 2] == 0)  # a constant column keeps unit scale, no division by zero
    np.testing.assert_allclose(normalizer.denormalize(normalized), values, rtol=1e-6)


def test_raw_mode_only_divides_agilex_grippers_into_zero_one():
    qpos = np.zeros((2, 14), np.float32)
    qpos[:, 6], qpos[:, 13], qpos[:, 0] = [0.0, 4.7908], [0.0, 4.7888], [-1.2, 0.3]
    normalizer = Normalizer.from_stats(stats_for(qpos, AGILEX["normalization"]), "qpos")
    normalized = normalizer.normalize(qpos)
    np.testing.assert_allclose(normalized[:, [6, 13]], [[0, 0], [1, 1]], rtol=1e-6)
    np.testing.assert_array_equal(normalized[:, 0], qpos[:, 0])  # joints stay in radians
    action = Normalizer.from_stats(stats_for(qpos, AGILEX["normalization"]), "action")
    np.testing.assert_allclose(action.normalize(np.full((1, 14), 11.8997, np.float32))[0, 6], 1.0, rtol=1e-6)
    np.testing.assert_allclose(normalizer.denormalize(normalized), qpos, rtol=1e-6)


def test_raw_mode_without_divisors_is_the_identity():
    values = np.array([[0.5, -2.0]], np.float32)
    normalizer = Normalizer.from_stats(stats_for(values, {"mode": "raw", "qpos_divisors": None}), "qpos")
    np.testing.assert_array_equal(normalizer.normalize(values), values)


def test_agilex_columns_land_on_rdts_dual_arm_slots():
    """RDT's literal slots (its configs/state_vec.py): right arm 0-5, right gripper 10, left arm
    50-55, left gripper 60; agilex lists the left arm first."""
    assert unified_indices(AGILEX["state_names"]).tolist() == [50, 51, 52, 53, 54, 55, 60, 0, 1, 2, 3, 4, 5, 10]
