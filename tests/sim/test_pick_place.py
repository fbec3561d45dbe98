"""The built-in task: physics, rendering, expert and the demos it writes."""

from __future__ import annotations

import numpy as np
import pytest

from rdtflow.data.episode import episode_cameras, read_episode
from rdtflow.errors import RdtflowError
from rdtflow.sim.demos import write_demos
from rdtflow.sim.expert import expert_actions, sample_aim_offsets
from rdtflow.sim.pick_place import PickPlaceBatch, ResetState, TaskSettings, sample_reset
from rdtflow.sim.registry import reset_states

SETTINGS = TaskSettings()
DATA_CFG = {"action_key": "/action", "qpos_key": "/observations/qpos", "image_group": "/observations/images",
            "cameras": ["cam_high"]}


def scene(gripper=(0.2, 0.2), obj=(0.5, 0.5), goal=(0.8, 0.8)) -> PickPlaceBatch:
    return PickPlaceBatch.from_resets(SETTINGS, [ResetState(gripper, obj, goal)])


def test_release_at_goal_is_success_and_ends_the_episode():
    scenes = scene()
    scenes.step(np.array([[0.5, 0.5, 1.0]]))  # move (speed-limited) towards the object
    for _ in range(10):
        scenes.step(np.array([[0.5, 0.5, 1.0]]))
    scenes.step(np.array([[0.5, 0.5, 0.0]]))  # close on it
    assert scenes.holding[0]
    for _ in range(20):
        scenes.step(np.array([[0.8, 0.8, 0.0]]))
    np.testing.assert_allclose(scenes.obj[0], [0.8, 0.8], atol=1e-9)
    assert not scenes.success[0]
    scenes.step(np.array([[0.8, 0.8, 1.0]]))
    assert scenes.success[0] and scenes.done[0]


def test_release_away_from_goal_is_not_success():
    scenes = scene(gripper=(0.5, 0.5))
    scenes.step(np.array([[0.5, 0.5, 0.0]]))
    scenes.step(np.array([[0.5, 0.6, 0.0]]))
    scenes.step(np.array([[0.5, 0.6, 1.0]]))
    assert not scenes.holding[0] and not scenes.success[0]
    np.testing.assert_allclose(scenes.obj[0], [0.5, 0.6], atol=1e-9)  # moved, then released


def test_closing_far_from_the_object_grasps_nothing():
    scenes = scene()
    scenes.step(np.array([[0.2, 0.2, 0.0]]))
    assert not scenes.holding[0]


def test_motion_is_speed_limited():
    scenes = scene()
    scenes.step(np.array([[0.9, 0.2, 1.0]]))
    assert scenes.gripper[0, 0] == pytest.approx(0.2 + SETTINGS.max_speed)


def test_only_the_image_reveals_object_and_goal():
    first, second = scene(obj=(0.3, 0.7), goal=(0.7, 0.3)), scene(obj=(0.7, 0.3), goal=(0.3, 0.7))
    np.testing.assert_array_equal(first.qpos(), second.qpos())
    assert (first.render() != second.render()).any()


def test_render_draws_object_red_and_goal_green():
    image = scene(obj=(0.25, 0.25), goal=(0.75, 0.75)).render()[0]
    size = SETTINGS.image_size
    red = image[size // 4, size // 4]
    green = image[3 * size // 4, 3 * size // 4]
    assert red[0] > 150 and red[1] < 100 and red[2] < 100  # row = y, column = x
    assert green[1] > 120 and green[0] < 100


def test_expert_solves_random_layouts():
    rng = np.random.default_rng(3)
    resets = [sample_reset(rng) for _ in range(100)]
    scenes = PickPlaceBatch.from_resets(SETTINGS, resets)
    offsets = sample_aim_offsets(100, SETTINGS.expert_noise, rng)
    while not scenes.done.all():
        scenes.step(expert_actions(scenes, offsets, rng))
    assert scenes.success.mean() >= 0.95


def test_generated_demos_are_deterministic_and_replayable(tmp_path):
    summary = write_demos(tmp_path / "a", 3, 5, ["cam_high"], {}, workers=1)
    write_demos(tmp_path / "b", 3, 5, ["cam_high"], {}, workers=1)
    assert summary["expert_success_rate"] == 1.0 and summary["stage_rates"] == {"grasped": 1.0, "placed": 1.0}
    first = read_episode(tmp_path / "a" / "episode_00001.hdf5", DATA_CFG)
    again = read_episode(tmp_path / "b" / "episode_00001.hdf5", DATA_CFG)
    np.testing.assert_array_equal(first.action, again.action)
    with (episode_cameras(first.path, DATA_CFG) as first_frames, episode_cameras(again.path, DATA_CFG) as again_frames):
        assert list(first_frames["cam_high"].stored()) == list(again_frames["cam_high"].stored())
    # Replaying the recorded actions from the stored reset reproduces the recorded states.
    [state] = reset_states([first.attrs], ["episode_00001.hdf5"], "builtin-pick-place")
    scenes = PickPlaceBatch.from_resets(SETTINGS, [ResetState.from_dict(state)])
    for step, action in enumerate(first.action):
        np.testing.assert_allclose(scenes.qpos()[0], first.qpos[step], atol=1e-6)
        scenes.step(action[None].astype(np.float64))
    assert scenes.success[0]
    assert (tmp_path / "a" / "instruction.json").is_file()


def test_missing_reset_attribute_is_explained():
    with pytest.raises(RdtflowError, match="recorded.hdf5 has no 'sim_reset' attribute: .*sim.env: null"):
        reset_states([{}], ["recorded.hdf5"], "builtin-pick-place")


def test_an_episode_of_another_simulator_is_refused():
    attrs = {"sim_reset": "{}", "sim_env": "aloha-insertion"}
    with pytest.raises(RdtflowError, match="recorded in sim.env 'aloha-insertion', but this run evaluates in 'builtin"):
        reset_states([attrs], ["e.hdf5"], "builtin-pick-place")
