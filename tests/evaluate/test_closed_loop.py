"""Closed-loop runner and the blind baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rdtflow.config import validate_config
from rdtflow.data.episode import read_attributes, read_trajectory
from rdtflow.evaluate.closed_loop import run_closed_loop
from rdtflow.evaluate.policies import MeanTrajectoryPolicy, Observations
from rdtflow.evaluate.run import closed_loop_outcomes, evaluate_baseline, held_out_episodes
from rdtflow.sim.demos import load_reset
from rdtflow.sim.expert import expert_actions
from rdtflow.sim.pick_place import PickPlaceBatch, TaskSettings, sample_reset

SETTINGS = TaskSettings()


class ExpertChunks:
    """An oracle that re-simulates the expert from the observed state (it sees the scene)."""

    name = "oracle"

    def __init__(self, resets, settings: TaskSettings = SETTINGS):
        self.scenes = PickPlaceBatch.from_resets(settings, resets)
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


def _prepared_run(prepared_data):
    """The prepared run's config (executing whole 4-step chunks, as the oracle plans them) and held-out episodes."""
    config = validate_config(json.loads((prepared_data / "config.json").read_text()))
    config["eval"]["execute_horizon"] = 4
    return config, held_out_episodes(prepared_data / "equivalence" / "data" / "index.parquet")


def test_evaluation_re_simulates_each_held_out_episode_from_its_recorded_initial_state(prepared_data):
    config, episodes = _prepared_run(prepared_data)
    settings = TaskSettings.from_config(config["demos"]["sim"])
    recorded = [load_reset(read_attributes(Path(path))) for path in episodes["path"]]
    assert len(recorded) == 2 and all(o["success"] for o in closed_loop_outcomes(config, ExpertChunks(recorded, settings),
                                                                                  episodes))
    others = resets(2)  # the oracle fails where it plans for other layouts than the simulated ones
    assert not any(o["success"] for o in closed_loop_outcomes(config, ExpertChunks(others, settings), episodes))


def test_the_baseline_is_fitted_on_the_training_episodes_only(prepared_data, tmp_path, monkeypatch):
    config, _ = _prepared_run(prepared_data)
    data = prepared_data / "equivalence" / "data"
    fitted_on = []
    fit = MeanTrajectoryPolicy.fit.__func__

    def recording_fit(cls, trajectories, horizon):
        fitted_on.extend(trajectories)
        return fit(cls, trajectories, horizon)

    monkeypatch.setattr(MeanTrajectoryPolicy, "fit", classmethod(recording_fit))
    evaluate_baseline(config, data / "index.parquet", data / "stats.json", tmp_path / "baseline.json")
    index = pd.read_parquet(data / "index.parquet")
    training = [read_trajectory(Path(path), config["data"])[0] for path in index.loc[index["split"] == "train", "path"]]
    assert len(fitted_on) == len(training) == 4
    assert all(np.array_equal(a, b) for a, b in zip(fitted_on, training, strict=True))
