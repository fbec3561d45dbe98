"""The relation family of the built-in task: the instruction says where the block goes relative
to the square, the expert does every relation, and demos draw only the relations asked for."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from rdtflow.config import validate_config
from rdtflow.data.episode import read_instruction
from rdtflow.errors import ConfigError
from rdtflow.sim.builtin import PickPlaceEnv, check_instruction_source, make_env
from rdtflow.sim.demos import write_demos
from rdtflow.sim.env import episode_instruction
from rdtflow.sim.expert import expert_actions, sample_aim_offsets
from rdtflow.sim.options import settings_from_options
from rdtflow.sim.pick_place import (
    INSTRUCTION,
    RELATION_OFFSETS,
    PickPlaceBatch,
    ResetState,
    TaskSettings,
    sample_relation_reset,
)

RELATIONS = tuple(RELATION_OFFSETS)
FAMILY = {"relations": list(RELATIONS)}
ATTRIBUTE_INSTRUCTIONS = {"source": "attribute", "key": "instruction"}


def expert_rollout(resets: list[ResetState], seed: int = 0) -> PickPlaceBatch:
    rng = np.random.default_rng(seed)
    scenes = PickPlaceBatch.from_resets(TaskSettings(), resets)
    offsets = sample_aim_offsets(len(resets), TaskSettings().expert_noise, rng)
    while not scenes.done.all():
        scenes.step(expert_actions(scenes, offsets, rng))
    return scenes


@pytest.mark.parametrize("relation", RELATIONS)
def test_the_expert_succeeds_for_every_relation_and_every_target_is_inside_the_arena(relation):
    rng = np.random.default_rng(1)
    resets = [sample_relation_reset(rng, (relation,)) for _ in range(60)]
    assert all(reset.relation == relation for reset in resets)
    assert all(0.0 < coordinate < 1.0 for reset in resets for coordinate in reset.target())
    scenes = expert_rollout(resets)
    assert scenes.success.all()
    np.testing.assert_allclose(scenes.released_at, scenes.target, atol=TaskSettings().goal_tolerance)


def test_the_instruction_decides_the_target_of_the_same_layout():
    layout = {"gripper": (0.2, 0.2), "object": (0.8, 0.2), "goal": (0.5, 0.6)}
    below, left = (expert_rollout([ResetState(**layout, relation=relation)]) for relation in ("below", "left of"))
    assert below.success[0] and left.success[0]
    np.testing.assert_allclose(below.obj[0], [0.5, 0.77], atol=0.07)
    np.testing.assert_allclose(left.obj[0], [0.33, 0.6], atol=0.07)
    # the first image of both is the same: only the instruction tells them apart
    first = [PickPlaceBatch.from_resets(TaskSettings(), [ResetState(**layout, relation=relation)]).render()
             for relation in ("below", "left of")]
    np.testing.assert_array_equal(*first)


def test_above_is_toward_the_top_of_the_camera_image():
    scenes = expert_rollout([ResetState((0.2, 0.8), (0.8, 0.8), (0.5, 0.5), relation="above")])
    image = scenes.render()[0]
    rows_of_red = np.flatnonzero((image[..., 0] > 150) & (image[..., 1] < 100)).astype(int) // image.shape[1]
    rows_of_green = np.flatnonzero((image[..., 1] > 120) & (image[..., 0] < 100)).astype(int) // image.shape[1]
    assert rows_of_red.mean() < rows_of_green.mean()


def test_following_a_random_relation_of_the_same_scene_succeeds_about_one_time_in_four():
    """What a policy that ignores the instruction can reach: the expert, told a relation drawn
    at random from the four pretraining ones, succeeds where the draw matches (1/4)."""
    rng = np.random.default_rng(2)
    four = RELATIONS[:4]
    resets = [sample_relation_reset(rng, four) for _ in range(400)]
    guesses = [ResetState(r.gripper, r.object, r.goal, four[int(rng.integers(4))]) for r in resets]
    guessed = expert_rollout(guesses)
    placed_for_the_guess = guessed.obj  # where the block ends; success is judged at the true target
    true_targets = np.array([reset.target() for reset in resets])
    success = np.linalg.norm(placed_for_the_guess - true_targets, axis=1) < TaskSettings().goal_tolerance
    assert success.mean() == pytest.approx(0.25, abs=0.06)
    assert success.mean() == pytest.approx(np.mean([g.relation == r.relation for g, r in zip(guesses, resets)]),
                                           abs=0.02)


def test_reset_states_carry_their_relation_and_the_default_reads_as_before():
    state = ResetState((0.1, 0.2), (0.3, 0.4), (0.5, 0.6), relation="right of")
    assert ResetState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    default = ResetState((0.1, 0.2), (0.3, 0.4), (0.5, 0.6))
    assert default.to_dict() == {"gripper": [0.1, 0.2], "object": [0.3, 0.4], "goal": [0.5, 0.6]}
    assert default.instruction == INSTRUCTION and state.instruction == (
        "pick up the red block and place it right of the green square")
    with pytest.raises(ValueError, match="unknown relation 'under'"):
        ResetState.from_dict({**state.to_dict(), "relation": "under"})


def test_each_episode_says_its_own_instruction():
    env = make_env(["cam_high"], FAMILY)
    rng = np.random.default_rng(0)
    states = [env.sample_reset(rng) for _ in range(30)]
    instructions = {episode_instruction(env, state) for state in states}
    assert instructions == {f"pick up the red block and place it {relation} the green square" for relation in RELATIONS}
    single = make_env(["cam_high"], {})
    assert episode_instruction(single, single.sample_reset(rng)) == INSTRUCTION


@pytest.mark.parametrize("options, message", [
    ({"relations": "below"}, "sim.options.relations of builtin-pick-place is 'below'; it must be a list of strings"),
    ({"relations": ["below", 3]}, "it must be a list of strings"),
    ({"relations": [True, "below"]}, 'it must be a list of strings; quote "on", "off", "yes" and "no": YAML reads them'),
    ({"relations": ["under"]}, "unknown relation 'under': the relations are on, left of, right of, above, below"),
    ({"relations": ["below"], "exclude_relations": ["below"]}, "leave nothing once exclude_relations"),
])
def test_relation_options_are_checked_naming_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_options(TaskSettings, options, "builtin-pick-place")


def test_demos_draw_only_the_relations_asked_for_and_store_each_instruction(tmp_path):
    options = {**FAMILY, "exclude_relations": ["below"], "image_size": 24}
    summary = write_demos(tmp_path, 40, 3, ["cam_high"], options, workers=1)
    assert not (tmp_path / "instruction.json").exists()
    assert set(summary["by_relation"]) == {"on", "left of", "right of", "above"}
    assert all(rates["expert_success_rate"] == 1.0 for rates in summary["by_relation"].values())
    assert sum(rates["n_episodes"] for rates in summary["by_relation"].values()) == 40
    data_cfg = {"instruction": ATTRIBUTE_INSTRUCTIONS}
    instructions = []
    for path in sorted(tmp_path.glob("*.hdf5")):
        with h5py.File(path, "r") as file:
            attrs = dict(file.attrs)
        instructions.append(read_instruction(path, data_cfg, attrs))
        assert instructions[-1] == ResetState.from_dict(json.loads(attrs["sim_reset"])).instruction
    assert not any("below" in instruction for instruction in instructions)
    assert len(set(instructions)) == 4


def test_the_default_draws_on_only_and_keeps_its_instruction_file(tmp_path):
    summary = write_demos(tmp_path, 3, 5, ["cam_high"], {"image_size": 24}, workers=1)
    assert "by_relation" not in summary
    assert json.loads((tmp_path / "instruction.json").read_text()) == {"instruction": INSTRUCTION}


def test_a_family_with_the_instruction_file_source_is_a_config_error():
    def data(**values):
        return validate_config({"run": "r", "data": values}, partial=True)["data"]

    family, default = ({"env": "builtin-pick-place", "options": options} for options in (FAMILY, {}))
    with pytest.raises(ConfigError, match=r"set data.instruction to \{source: attribute, key: instruction\}"):
        check_instruction_source(family, data())
    check_instruction_source(family, data(instruction=ATTRIBUTE_INSTRUCTIONS))
    check_instruction_source(default, data())


def test_the_evaluation_learns_where_each_block_was_released():
    env = PickPlaceEnv(TaskSettings(max_steps=40))
    layout = {"gripper": (0.2, 0.2), "object": (0.8, 0.2), "goal": (0.5, 0.6)}
    states = [ResetState(**layout, relation=relation).to_dict() for relation in ("on", "below")]
    env.reset(states)
    # an expert that always places below: right for the second episode, wrong for the first
    below = PickPlaceBatch.from_resets(env.settings, [ResetState(**layout, relation="below")] * 2)
    rng = np.random.default_rng(0)
    while not env.scenes.done.all():
        action = expert_actions(below, np.zeros((2, 2)), rng)
        below.step(action)
        env.step(action)
    assert env.outcome_details() == [{"relation": "on", "released_at": "below"},
                                     {"relation": "below", "released_at": "below"}]
