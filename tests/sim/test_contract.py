"""The simulator contract (rdtflow/sim/env.py, docs/simulators.md), held by every environment
rdtflow ships and by the documented example factory alike."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from rdtflow.sim.env import check_observation
from rdtflow.sim.registry import build_env
from tests.sim.test_simulator_example import documented_example

ENVIRONMENTS = {
    "builtin-pick-place": ({"env": "builtin-pick-place", "options": {"image_size": 24, "max_steps": 12}}, ["cam_high"]),
    "builtin relations": ({"env": "builtin-pick-place", "options": {"image_size": 24, "max_steps": 12,
                                                                     "relations": ["left of", "below"]}}, ["cam_high"]),
    "aloha-transfer-cube": ({"env": "aloha-transfer-cube", "options": {"image_height": 24, "image_width": 32}},
                            ["cam_high", "cam_left_wrist"]),
    "aloha-insertion": ({"env": "aloha-insertion", "options": {"image_height": 24, "image_width": 32}}, ["cam_high"]),
    "documented example": ({"env": "reach_example:make_env", "options": {"image_size": 20}}, ["cam_high"]),
}


@pytest.fixture(params=ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
def environment(request, tmp_path, monkeypatch):
    sim, cameras = request.param
    if sim["env"].startswith("reach_example"):
        (tmp_path / "reach_example.py").write_text(documented_example())
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "reach_example", raising=False)
    env = build_env(sim, cameras)
    yield env, cameras
    env.close()


def rollout(env, states, steps):
    """Observations after the reset and after each step of holding still (qpos as the action)."""
    observation = env.reset(states)
    seen = [observation]
    for _ in range(steps):
        observation = env.step(observation.qpos.copy())
        seen.append(observation)
    return seen


def test_every_environment_keeps_the_contract(environment):
    env, cameras = environment
    rng = np.random.default_rng(0)
    states = [env.sample_reset(rng) for _ in range(2)]
    assert json.loads(json.dumps(states)) == states  # what an episode's sim_reset attribute stores
    assert isinstance(env.instruction, str) and env.instruction and len(env.stages) >= 1
    seen = rollout(env, states, env.max_steps)
    for observation in seen:
        assert check_observation(observation, cameras, 2, len(env.stages)) == []
    assert seen[-1].done.all()  # every episode is done after max_steps steps
    assert not seen[0].done.any()


def test_every_environment_repeats_exactly(environment):
    env, _ = environment
    states = [env.sample_reset(np.random.default_rng(5))]
    first, again = rollout(env, states, 3), rollout(env, states, 3)
    for one, other in zip(first, again):
        assert all(np.array_equal(one.frames[c], other.frames[c]) for c in one.frames)
        np.testing.assert_array_equal(one.qpos, other.qpos)
        np.testing.assert_array_equal(one.level, other.level)
