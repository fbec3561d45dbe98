"""The ALOHA simulators: factory checks, the observation contract, determinism, the expert and its demos."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from rdtflow.errors import ConfigError
from rdtflow.sim.aloha.demos import write_insertion_demos, write_transfer_cube_demos
from rdtflow.sim.aloha.env import make_insertion, make_transfer_cube
from rdtflow.sim.aloha.expert import expert_rollout
from rdtflow.sim.aloha.tasks import INSERTION, TRANSFER_CUBE, insertion_level, transfer_cube_level
from rdtflow.sim.env import ENV_ATTRIBUTE, RESET_ATTRIBUTE, check_observation
from rdtflow.sim.registry import demo_writer, probe_env, reset_states

SMALL = {"image_height": 48, "image_width": 64}  # renders as the default size does, in less time
START = np.array([0, -0.96, 1.16, 0, -0.3, 0, 0.1] * 2, dtype=np.float32)  # both arms at their start pose


def touching_only(*pairs: tuple[str, str]):
    """A `touching` function for the level rules, true exactly for these geom pairs."""
    contacts = {frozenset(pair) for pair in pairs}

    def touching(geom: str, other: str | tuple[str, ...]) -> bool:
        return any(frozenset((geom, name)) in contacts for name in ((other,) if isinstance(other, str) else other))

    return touching


def replay(env, state: dict, actions: np.ndarray) -> np.ndarray:
    """The levels an environment reaches replaying `actions` from `state`, one per step."""
    env.reset([state])
    return np.array([env.step(action[None]).level[0] for action in actions])


@pytest.mark.parametrize("factory", [make_transfer_cube, make_insertion])
def test_an_unknown_option_names_its_key_and_the_valid_ones(factory):
    with pytest.raises(ConfigError, match=r"sim\.options\.image_size .*image_height, image_width"):
        factory(["cam_high"], {"image_size": 64})


@pytest.mark.parametrize("name", ["aloha-transfer-cube", "aloha-insertion"])
def test_the_registry_builds_and_probes_each_task(name):
    sim_cfg = {"env": name, "options": SMALL}
    probe_env(sim_cfg, ["cam_high", "cam_right_wrist"])  # raises when the contract is broken
    assert demo_writer(sim_cfg).__name__ == f"write_{name.removeprefix('aloha-').replace('-', '_')}_demos"


def test_an_unknown_camera_names_the_valid_ones():
    with pytest.raises(ConfigError, match="'cam_front'.*cam_high, cam_low, cam_left_wrist, cam_right_wrist"):
        make_transfer_cube(["cam_high", "cam_front"], {})


def test_a_too_small_image_is_a_config_error():
    with pytest.raises(ConfigError, match="image_width must be at least 16"):
        make_insertion(["cam_high"], {"image_width": 8})


def test_levels_follow_gym_aloha_rewards():
    right, left = "vx300s_right/10_left_gripper_finger", "vx300s_left/10_left_gripper_finger"
    assert transfer_cube_level(touching_only(("red_box", right), ("red_box", "table"))) == 1
    assert transfer_cube_level(touching_only(("red_box", right))) == 2
    assert transfer_cube_level(touching_only(("red_box", left), ("red_box", "table"))) == 3
    assert transfer_cube_level(touching_only(("red_box", left), ("red_box", right))) == 4
    assert insertion_level(touching_only(("red_peg", right), ("socket-3", left), ("table", "socket-1"))) == 1
    assert insertion_level(touching_only(("red_peg", right), ("socket-3", left))) == 2
    assert insertion_level(touching_only(("red_peg", "socket-2"))) == 3
    assert insertion_level(touching_only(("red_peg", "socket-2"), ("red_peg", "table"))) == 0
    assert insertion_level(touching_only(("red_peg", "pin"), ("red_peg", "table"))) == 4


def test_sample_reset_stays_in_the_task_ranges_and_is_json():
    rng = np.random.default_rng(0)
    for _ in range(20):
        state = json.loads(json.dumps(INSERTION.sample_reset(rng)))
        assert 0.1 <= state["peg"][0] <= 0.2 and -0.2 <= state["socket"][0] <= -0.1
        assert all(0.4 <= state[key][1] <= 0.6 and state[key][2] == 0.05 for key in ("peg", "socket"))
    cube = TRANSFER_CUBE.sample_reset(rng)["cube"]
    assert 0.0 <= cube[0] <= 0.2 and 0.4 <= cube[1] <= 0.6


def test_observations_keep_the_contract_and_repeat_exactly():
    cameras = ["cam_high", "cam_left_wrist"]
    rng = np.random.default_rng(1)
    first, second = make_insertion(cameras, SMALL), make_insertion(cameras, SMALL)
    try:
        states = [first.sample_reset(rng) for _ in range(2)]
        with pytest.raises(ValueError, match="needs the keys"):
            first.reset([{"cube": [0.1, 0.5, 0.05]}])
        runs = []
        for env in (first, second, first):  # the third run reuses the first environment's simulations
            observations = [env.reset(states)]
            assert check_observation(observations[0], cameras, 2, len(env.stages)) == []
            for offset in np.linspace(0, 0.3, 5):
                action = START.copy()
                action[[0, 7]] = offset  # swing both waists
                observations.append(env.step(np.stack([action, action])))
                assert check_observation(observations[-1], cameras, 2, len(env.stages)) == []
            runs.append(observations)
        assert observations[-1].frames["cam_high"].shape == (2, 48, 64, 3)
        assert not np.array_equal(runs[0][0].frames["cam_high"], runs[0][-1].frames["cam_high"])
        for other in runs[1:]:
            for expected, observed in zip(runs[0], other):
                np.testing.assert_array_equal(expected.qpos, observed.qpos)
                for camera in cameras:
                    np.testing.assert_array_equal(expected.frames[camera], observed.frames[camera])
    finally:
        first.close()
        second.close()


def test_episodes_end_after_400_steps_and_then_ignore_actions():
    env = make_transfer_cube([], {})
    try:
        state = env.sample_reset(np.random.default_rng(2))
        observation = env.reset([state])
        assert observation.qpos.dtype == np.float32 and observation.qpos.shape == (1, 14) and not observation.done[0]
        for _ in range(env.max_steps):
            observation = env.step(START[None])
        assert observation.done[0]
        after = env.step(np.zeros((1, 14)))
        np.testing.assert_array_equal(after.qpos, observation.qpos)
        with pytest.raises(ValueError, match="finite"):
            env.step(np.full((1, 14), np.nan))
    finally:
        env.close()


def test_insertion_expert_inserts_and_its_actions_replay_to_the_same_levels():
    state = INSERTION.sample_reset(np.random.default_rng([0, 0]))
    rollout = expert_rollout(INSERTION, state, np.random.default_rng([0, 0]))
    assert rollout.actions.shape == (400, 14) and rollout.actions.dtype == np.float32
    assert rollout.levels.max() == 4
    env = make_insertion([], {})
    try:
        np.testing.assert_array_equal(replay(env, state, rollout.actions), rollout.levels)
    finally:
        env.close()


def test_a_written_demo_holds_the_cube_and_replays_from_its_stored_state(tmp_path):
    summary = write_transfer_cube_demos(tmp_path, 1, 7, ["cam_high"], SMALL, workers=1)
    assert summary["n_episodes"] == 1 and summary["expert_success_rate"] == 1.0
    assert summary["expert_held_at_end_rate"] == 1.0
    assert summary["stage_rates"] == {stage: 1.0 for stage in TRANSFER_CUBE.stages}
    assert json.loads((tmp_path / "expert.json").read_text()) == summary
    assert json.loads((tmp_path / "instruction.json").read_text()) == {"instruction": TRANSFER_CUBE.instruction}
    with h5py.File(tmp_path / "episode_00000.hdf5", "r") as h5:
        actions, qpos = h5["action"][()], h5["observations/qpos"][()]
        assert actions.shape == qpos.shape == (400, 14) and h5["observations/images/cam_high"].shape == (400,)
        attrs = {name: value.decode() if isinstance(value, bytes) else value for name, value in h5.attrs.items()}
    assert attrs[ENV_ATTRIBUTE] == "aloha-transfer-cube"
    assert attrs["expert_success"] == attrs["expert_held_at_end"] == "True"
    state = reset_states([attrs], ["episode_00000.hdf5"], "aloha-transfer-cube")[0]
    assert state == json.loads(attrs[RESET_ATTRIBUTE])
    env = make_transfer_cube([], {})
    try:
        levels = replay(env, state, actions)
        assert levels.max() == 4 and levels[-1] == 4
        replayed = [env.reset([state]).qpos[0]] + [env.step(action[None]).qpos[0] for action in actions[:-1]]
        np.testing.assert_array_equal(np.stack(replayed), qpos)
    finally:
        env.close()


def test_a_worker_process_writes_the_same_episode(tmp_path):
    """Episode i depends on (seed, i) alone; a pool of one worker keeps the heavy work in one process."""
    for workers in (1, 2):
        write_insertion_demos(tmp_path / str(workers), 1, 3, ["cam_high"], SMALL, workers=workers)
    name = "episode_00000.hdf5"
    with h5py.File(tmp_path / "1" / name, "r") as here, h5py.File(tmp_path / "2" / name, "r") as pool:
        for key in ("action", "observations/qpos", "observations/images/cam_high"):
            np.testing.assert_array_equal(here[key][()], pool[key][()])
        assert dict(here.attrs) == dict(pool.attrs)
