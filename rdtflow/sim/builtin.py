"""The built-in pick-and-place task behind the simulator interface (sim.env: builtin-pick-place)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rdtflow.errors import ConfigError
from rdtflow.sim.env import SimObservation
from rdtflow.sim.options import settings_from_options
from rdtflow.sim.pick_place import INSTRUCTION, PickPlaceBatch, ResetState, TaskSettings, sample_reset

NAME = "builtin-pick-place"
CAMERA = "cam_high"  # the task's one camera, looking down on the unit square


class PickPlaceEnv:
    """A batch of pick-and-place scenes: level 1 while the object is held, 2 once it is placed."""

    stages = ("grasped", "placed")
    instruction = INSTRUCTION

    def __init__(self, settings: TaskSettings) -> None:
        self.settings = settings
        self.max_steps = settings.max_steps
        self.scenes: PickPlaceBatch | None = None

    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        return sample_reset(rng).to_dict()

    def reset(self, states: list[dict[str, Any]]) -> SimObservation:
        self.scenes = PickPlaceBatch.from_resets(self.settings, [ResetState.from_dict(state) for state in states])
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
