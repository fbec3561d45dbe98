"""Closed-loop runner and the blind baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rdtflow.config import validate_config
from rdtflow.data.episode import episode_cameras, read_attributes, read_trajectory
from rdtflow.data.frames import JpegCodec, encode_jpeg
from rdtflow.evaluate.closed_loop import episode_outcome, run_closed_loop
from rdtflow.evaluate.policies import MeanTrajectoryPolicy, Observations
from rdtflow.evaluate.run import (
    closed_loop_rollouts,
    closed_loop_summary,
    evaluate_baseline,
    held_out_episodes,
    recorded_codecs,
    summary_by,
)
from rdtflow.sim.builtin import PickPlaceEnv
from rdtflow.sim.env import SimObservation
from rdtflow.sim.expert import expert_actions
from rdtflow.sim.pick_place import PickPlaceBatch, ResetState, TaskSettings, sample_reset
from rdtflow.sim.registry import reset_states

SETTINGS = TaskSettings()
SLOTS = ["cam_high"]


def roll(policy, layouts, settings=SETTINGS, execute_horizon=4, img_history=2, video_camera=None, codecs=None):
    states = [layout.to_dict() for layout in layouts]
    return run_closed_loop(policy, PickPlaceEnv(settings), states, ["go"] * len(states), SLOTS, execute_horizon,
                           img_history, video_camera, codecs)


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
    rollouts = roll(oracle, layouts, video_camera="cam_high")
    outcomes = rollouts.outcomes
    assert all(o["success"] and o["held_at_end"] and o["level"] == 2 and o["stage"] == "placed" for o in outcomes)
    assert oracle.calls == int(np.ceil(max(o["steps"] for o in outcomes) / 4))
    # One frame per observation: the reset's and one per step taken, none after the episode ended.
    assert [len(frames) for frames in rollouts.recordings] == [o["steps"] + 1 for o in outcomes]
    assert rollouts.sim_steps == sum(o["steps"] for o in outcomes) and rollouts.stages == ("grasped", "placed")


def test_a_policy_that_never_moves_fails_and_runs_to_the_step_limit():
    outcomes = roll(Frozen(), resets(5), img_history=1).outcomes
    assert not any(o["success"] or o["held_at_end"] for o in outcomes)
    assert all(o["steps"] == SETTINGS.max_steps and o["level"] == 0 and o["stage"] is None for o in outcomes)
    assert roll(Frozen(), resets(2)).recordings == [[], []]  # nothing filmed unless asked


def test_the_level_reached_is_kept_when_the_object_is_dropped_again():
    """A grasp followed by a release away from the goal reached stage 1 (grasped) but not success."""

    class GraspThenDrop:
        name = "grasp-then-drop"

        def __call__(self, observations):
            gripper = observations.qpos[:, :2]
            closed = np.concatenate([gripper, np.zeros((len(gripper), 1))], axis=1)
            opened = np.concatenate([gripper, np.ones((len(gripper), 1))], axis=1)
            return np.stack([closed, opened], axis=1)

    layout = ResetState(gripper=(0.5, 0.5), object=(0.5, 0.52), goal=(0.1, 0.1))
    outcome = roll(GraspThenDrop(), [layout], execute_horizon=2).outcomes[0]
    assert outcome == {"success": False, "held_at_end": False, "level": 1, "stage": "grasped",
                       "steps": SETTINGS.max_steps, "relation": "on", "released_at": "elsewhere"}


def test_success_is_the_last_stage_reached_at_any_step_and_held_at_end_only_if_kept():
    stages = ("moved", "placed")
    assert episode_outcome(2, 0, 30, stages) == {"success": True, "held_at_end": False, "level": 2,
                                                 "stage": "placed", "steps": 30}
    assert episode_outcome(2, 2, 30, stages)["held_at_end"]
    assert not episode_outcome(1, 1, 30, stages)["success"]


class SlidingBlock:
    """A block on a line, for the outcome's rare branch: the built-in task ends an episode at
    success, so there nothing is ever placed and then lost. Each action is the position to
    push the block to; it is "moved" beyond 0.2 and "placed" within 0.1 of 1.0."""

    stages = ("moved", "placed")
    max_steps = 12
    instruction = "slide the block to 1"

    def reset(self, states):
        self.position = np.array([state["x"] for state in states], dtype=np.float32)
        self.steps = 0
        return self._observe()

    def step(self, actions):
        self.position = actions[:, 0].astype(np.float32)
        self.steps += 1
        return self._observe()

    def _observe(self):
        level = np.where(np.abs(self.position - 1.0) <= 0.1, 2, np.where(self.position > 0.2, 1, 0))
        return SimObservation(frames={"cam_high": np.zeros((len(self.position), 4, 4, 3), np.uint8)},
                              qpos=self.position[:, None], level=level,
                              done=np.full(len(self.position), self.steps >= self.max_steps))


class PlaceThenCarryAway:
    """Pushes the block onto the goal for one chunk, then carries it past."""

    name = "place-then-carry-away"

    def __init__(self):
        self.calls = 0

    def __call__(self, observations):
        self.calls += 1
        target = 1.0 if self.calls == 1 else 2.0
        return np.full((len(observations.qpos), 4, 1), target)


def test_an_episode_placed_then_carried_away_is_a_success_not_held_at_the_end():
    rollouts = run_closed_loop(PlaceThenCarryAway(), SlidingBlock(), [{"x": 0.0}, {"x": 0.5}], ["go"] * 2,
                               SLOTS, execute_horizon=4, img_history=1)
    assert [(o["success"], o["held_at_end"], o["stage"]) for o in rollouts.outcomes] == [(True, False, "placed")] * 2
    summary = closed_loop_summary(rollouts)
    assert (summary["success_rate"], summary["held_at_end_rate"]) == (1.0, 0.0)
    assert summary["stage_rates"]["placed"]["rate"] == 1.0

def test_the_summaries_count_where_blocks_were_released_per_instruction():
    def episode(instruction, success, released_at):
        return {"task": "demos", "instruction": instruction, "success": success, "open_loop_mse": 0.5,
                "released_at": released_at}

    episodes = [episode("below", True, "below"), episode("below", False, None), episode("on", False, "below")]
    summary = summary_by(episodes, "instruction", closed_loop=True)
    assert summary["below"]["released_at"] == {"below": 1, "never": 1} and summary["below"]["n_episodes"] == 2
    assert summary["on"]["released_at"] == {"below": 1} and summary["on"]["success"]["rate"] == 0.0
    without_details = [{key: value for key, value in e.items() if key != "released_at"} for e in episodes]
    assert "released_at" not in summary_by(without_details, "task", closed_loop=True)["demos"]

def test_observations_carry_history_slots_with_validity():
    recorder = Recorder()
    roll(recorder, resets(2), TaskSettings(max_steps=8))
    first, second = recorder.seen[0], recorder.seen[1]
    assert first.frames.shape == (2, 2, 64, 64, 3)
    assert first.frames_valid.tolist() == [[False, True]] * 2
    assert second.frames_valid.all() and second.steps.tolist() == [4, 4]


class Recorder(Frozen):
    """Keeps every observation the policy is given."""

    def __init__(self):
        self.seen: list[Observations] = []

    def __call__(self, observations):
        self.seen.append(observations)
        return super().__call__(observations)


def test_with_a_codec_the_policy_sees_each_rendered_frame_through_it():
    layouts = resets(2)
    codec = JpegCodec.of(encode_jpeg(np.zeros((8, 8, 3), np.uint8), quality=20))  # coarse: artefacts are large
    raw, coded = Recorder(), Recorder()
    roll(raw, layouts, TaskSettings(max_steps=8))
    roll(coded, layouts, TaskSettings(max_steps=8), codecs={"cam_high": codec})
    for plain, seen in zip(raw.seen, coded.seen):
        current = plain.frames[:, -1]  # the newest slot of each episode
        expected = np.stack([codec.round_trip(frame) for frame in current])
        np.testing.assert_array_equal(seen.frames[:, -1], expected)
        assert not np.array_equal(seen.frames[:, -1], current)


def test_recorded_codecs_are_the_held_out_episodes_own(prepared_data):
    config, episodes = _prepared_run(prepared_data)
    episode = episodes.iloc[0]
    with episode_cameras(Path(episode["path"]), config["data"], episode["group"]) as cameras:
        stored = cameras["cam_high"].jpeg(0)
    assert recorded_codecs(config["data"], episode) == {"cam_high": JpegCodec.of(stored)}


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
    settings = TaskSettings(**config["sim"]["options"])
    states = reset_states([read_attributes(Path(path)) for path in episodes["path"]], list(episodes["path"]),
                          "builtin-pick-place")
    recorded = [ResetState.from_dict(state) for state in states]
    rollouts = closed_loop_rollouts(config, ExpertChunks(recorded, settings), episodes)
    assert len(recorded) == 2 and all(o["success"] for o in rollouts.outcomes)
    others = resets(2)  # the oracle fails where it plans for other layouts than the simulated ones
    assert not any(o["success"] for o in closed_loop_rollouts(config, ExpertChunks(others, settings), episodes).outcomes)


def test_the_baseline_is_fitted_on_the_training_episodes_only(prepared_data, tmp_path, monkeypatch):
    config, _ = _prepared_run(prepared_data)
    data = prepared_data / "equivalence" / "data"
    fitted_on = []
    fit = MeanTrajectoryPolicy.fit.__func__

    def recording_fit(cls, trajectories, horizon):
        fitted_on.extend(trajectories)
        return fit(cls, trajectories, horizon)

    monkeypatch.setattr(MeanTrajectoryPolicy, "fit", classmethod(recording_fit))
    evaluate_baseline(config, data / "index.parquet", data / "stats.json", tmp_path / "baseline.json", tmp_path / "videos")
    index = pd.read_parquet(data / "index.parquet")
    training = [read_trajectory(Path(path), config["data"])[0] for path in index.loc[index["split"] == "train", "path"]]
    assert len(fitted_on) == len(training) == 4
    assert all(np.array_equal(a, b) for a, b in zip(fitted_on, training, strict=True))
