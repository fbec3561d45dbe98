"""The built-in pick-and-place task behind the simulator interface (sim.env: builtin-pick-place):
the embedded default ("on" the square), or with sim.options.relations the relation family,
where each episode's state and instruction say where the block goes."""

from __future__ import annotations

from typing import Any

import numpy as np

from rdtflow.errors import ConfigError
from rdtflow.sim.env import SimObservation
from rdtflow.sim.options import settings_from_options
from rdtflow.sim.pick_place import (
    INSTRUCTION,
    PickPlaceBatch,
    ResetState,
    TaskSettings,
    released_relation,
    sample_layout,
)

NAME = "builtin-pick-place"
CAMERA = "cam_high"  # the task's one camera, looking down on the unit square
INSTRUCTION_ATTRIBUTE = "instruction"  # a relation family episode's own instruction (root attribute)


class PickPlaceEnv:
    """A batch of pick-and-place scenes: level 1 while the object is held, 2 once it is placed."""

    stages = ("grasped", "placed")
    instruction = INSTRUCTION  # the default's; an episode of the relation family says its own

    def __init__(self, settings: TaskSettings) -> None:
        self.settings = settings
        self.max_steps = settings.max_steps
        self.scenes: PickPlaceBatch | None = None
        self.relations: list[str] = []

    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        return sample_layout(rng, self.settings).to_dict()

    def episode_instruction(self, state: dict[str, Any]) -> str:
        """The instruction of the episode that starts from `state`: its relation to the square."""
        return ResetState.from_dict(state).instruction

    def outcome_details(self) -> list[dict[str, Any]]:
        """Per episode of the last rollout: its relation, and where the block was last released
        (a relation's target, "elsewhere", or None when it never was)."""
        scenes = self.scenes
        released = released_relation(scenes.released_at, scenes.goal, self.settings.goal_tolerance)
        return [{"relation": relation, "released_at": where} for relation, where in zip(self.relations, released)]

    def reset(self, states: list[dict[str, Any]]) -> SimObservation:
        resets = [ResetState.from_dict(state) for state in states]
        self.relations = [reset.relation for reset in resets]
        self.scenes = PickPlaceBatch.from_resets(self.settings, resets)
        return self._observe()

    def step(self, actions: np.ndarray) -> SimObservation:
        self.scenes.step(actions)
        return self._observe()

    def close(self) -> None:
        self.scenes = None

    def _observe(self) -> SimObservation:
        scenes = self.scenes
        level = np.where(scenes.success, 2, np.where(scenes.holding, 1, 0))
        return SimObservation(frames={CAMERA: scenes.render()}, qpos=scenes.qpos(), level=level, done=scenes.done.copy())


def make_env(cameras: list[str], options: dict[str, Any]) -> PickPlaceEnv:
    """The factory sim.env names: the task renders only its top camera."""
    if list(cameras) != [CAMERA]:
        raise ConfigError(
            f"{NAME} renders only '{CAMERA}' into one image slot; data.cameras records {list(cameras)}: "
            f"set data.cameras to [{CAMERA}]"
        )
    return PickPlaceEnv(settings_from_options(TaskSettings, options, NAME))


def check_instruction_source(sim_cfg: dict, data_cfg: dict) -> None:
    """Demos of the relation family record each episode's instruction as an attribute, so the
    data config must read it there (the default's one instruction.json would not exist)."""
    if not settings_from_options(TaskSettings, sim_cfg["options"], NAME).family:
        return
    source = data_cfg["instruction"]
    if source["source"] != "attribute" or source["key"] != INSTRUCTION_ATTRIBUTE:
        raise ConfigError(
            f"sim.options.relations draws {NAME} demos of several relations, and each records its own "
            f"instruction as the attribute '{INSTRUCTION_ATTRIBUTE}': set data.instruction to "
            f"{{source: attribute, key: {INSTRUCTION_ATTRIBUTE}}}"
        )
