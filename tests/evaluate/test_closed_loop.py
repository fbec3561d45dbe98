"""Closed-loop runner and the blind baseline."""

from __future__ import annotations

import numpy as np

from rdtflow.evaluate.closed_loop import run_closed_loop
from rdtflow.evaluate.policies import MeanTrajectoryPolicy, Observations
from rdtflow.sim.expert import expert_actions
from rdtflow.sim.pick_place import PickPlaceBatch, TaskSettings, sample_reset

SETTINGS = TaskSettings()


class ExpertChunks:
    """An oracle that re-simulates the expert from the observed state (it sees the scene)."""

    name = "oracle"

    def __init__(self, resets):
        self.scenes = PickPlaceBatch.from_resets(SETTINGS, resets)
        self.rng = np.random.default_rng(0)
        self.calls = 0

    def __call__(self, observations: Observations) -> np.ndarray:
        self.calls += 1
        chunk = []
        for _ in range(4):
            action = expert_actions(self.scenes, np.zeros((len(self.scenes.gripper), 2)), self.rng)
            chunk.append(action)
            self.scenes.step(action)
        return np.stack(chunk, axis=1)


class Frozen:
    name = "frozen"

    def __call__(self, observations: Observations) -> np.ndarray:
        return np.repeat(observations.qpos[:, None], 4, axis=1)


def resets(count: int):
    rng = np.random.default_rng(7)
    return [sample_reset(rng) for _ in range(count)]


def test_a_policy_that_acts_like_the_expert_succeeds_everywhere():
    layouts = resets(12)
    oracle = ExpertChunks(layouts)
    outcomes = run_closed_loop(oracle, layouts, ["go"] * 12, SETTINGS, execute_horizon=4, img_history=2)
    assert all(o["success"] for o in outcomes)
    assert all(o["final_distance"] < SETTINGS.goal_tolerance for o in outcomes)
    assert oracle.calls == int(np.ceil(max(o["steps"] for o in outcomes) / 4))


def test_a_policy_that_never_moves_fails_and_runs_to_the_step_limit():
    outcomes = run_closed_loop(Frozen(), resets(5), ["go"] * 5, SETTINGS, execute_horizon=4, img_history=1)
    assert not any(o["success"] for o in outcomes)
    assert all(o["steps"] == SETTINGS.max_steps for o in outcomes)


def test_observations_carry_history_slots_with_validity():
    seen = []

    class Recorder(Frozen):
        def __call__(self, observations):
            seen.append(observations)
            return super().__call__(observations)

    run_closed_loop(Recorder(), resets(2), ["go"] * 2, TaskSettings(max_steps=8), execute_horizon=4, img_history=2)
    first, second = seen[0], seen[1]
    assert first.frames.shape == (2, 2, 64, 64, 3)
    assert first.frames_valid.tolist() == [[False, True]] * 2
    assert second.frames_valid.all() and second.steps.tolist() == [4, 4]


def test_mean_trajectory_baseline_averages_time_aligned_actions_and_holds_the_last():
    short = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    long = np.array([[2.0, 2.0, 1.0], [3.0, 3.0, 0.0], [4.0, 4.0, 0.0]])
    baseline = MeanTrajectoryPolicy.fit([short, long], horizon=3)
    np.testing.assert_allclose(baseline.mean_actions[:, 0], [1.0, 2.0, 2.5])
    observations = Observations(qpos=np.zeros((2, 3)), frames=None, frames_valid=None, instructions=["a", "b"],
                                steps=np.array([0, 2]))
    chunk = baseline(observations)
    np.testing.assert_allclose(chunk[0, :, 0], [1.0, 2.0, 2.5])
    np.testing.assert_allclose(chunk[1, :, 0], [2.5, 2.5, 2.5])
