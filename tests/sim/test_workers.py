"""Worker processes step the same episodes to the same observations as one environment."""

from __future__ import annotations

import numpy as np
import pytest

from rdtflow.errors import RdtflowError
from rdtflow.sim.registry import build_env

# A factory path, as a user's simulator is named: those are stepped in workers.
IN_WORKERS = {"env": "rdtflow.sim.builtin:make_env", "options": {"image_size": 16, "max_steps": 5}}


def test_workers_give_the_observations_of_one_environment_in_batch_order():
    single = build_env(IN_WORKERS, ["cam_high"])
    rng = np.random.default_rng(0)
    states = [single.sample_reset(rng) for _ in range(5)]
    parallel = build_env(IN_WORKERS, ["cam_high"], workers=2)
    try:
        assert parallel.stages == single.stages and parallel.max_steps == 5
        observations = [(single.reset(states), parallel.reset(states))]
        actions = np.random.default_rng(1).uniform(0, 1, size=(5, 3))
        observations.append((single.step(actions), parallel.step(actions)))
        for one, split in observations:
            np.testing.assert_array_equal(one.frames["cam_high"], split.frames["cam_high"])
            np.testing.assert_array_equal(one.qpos, split.qpos)
            np.testing.assert_array_equal(one.level, split.level)
            np.testing.assert_array_equal(one.done, split.done)
        # sample_reset goes to a worker and advances the caller's generator as the environment's does
        first, second = np.random.default_rng(3), np.random.default_rng(3)
        assert parallel.sample_reset(first) == single.sample_reset(second)
        assert first.bit_generator.state == second.bit_generator.state
    finally:
        parallel.close()


def test_a_failing_worker_reports_its_traceback():
    parallel = build_env(IN_WORKERS, ["cam_high"], workers=2)
    with pytest.raises(RdtflowError, match="(?s)a simulator worker .* failed:.*KeyError: 'gripper'"):
        parallel.reset([{"not": "a state"}] * 2)
    parallel.close()
