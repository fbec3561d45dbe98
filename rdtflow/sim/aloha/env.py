"""The ALOHA tasks behind the simulator interface (sim.env: aloha-transfer-cube, aloha-insertion).

A batch holds one joint-controlled MuJoCo simulation per episode, all on one shared model,
stepped one after another (the worker processes of rdtflow.sim.workers split a large batch).
Actions and qpos are the demonstrations' 14 columns: per arm six joint targets, then the
gripper, normalised 0 closed .. 1 open, exactly as gym-aloha's joint scene takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from dm_control.mujoco import Physics
from dm_control.mujoco.wrapper import MjModel

from rdtflow.errors import ConfigError
from rdtflow.sim.aloha import scene
from rdtflow.sim.aloha.tasks import EPISODE_STEPS, INSERTION, TRANSFER_CUBE, AlohaTask
from rdtflow.sim.env import SimObservation
from rdtflow.sim.options import settings_from_options

ACTION_SIZE = 14
MIN_IMAGE_SIZE = 16


@dataclass(frozen=True)
class AlohaSettings:
    """The ALOHA environments' options (config key sim.options): the size every camera renders at."""

    image_height: int = 120
    image_width: int = 160

    def __post_init__(self) -> None:
        for name in ("image_height", "image_width"):
            if getattr(self, name) < MIN_IMAGE_SIZE:
                raise ValueError(f"{name} must be at least {MIN_IMAGE_SIZE} pixels, not {getattr(self, name)}")


class AlohaEnv:
    """A batch of episodes of one ALOHA task (rdtflow.sim.env.SimEnv).

    Simulations are made on the first reset and reused by later ones, so evaluating many
    checkpoints does not recompile the scene; an episode's observation is recomputed only
    when it steps, so finished episodes cost nothing while the others run on.
    """

    max_steps = EPISODE_STEPS

    def __init__(self, task: AlohaTask, cameras: list[str], settings: AlohaSettings) -> None:
        self.task, self.cameras, self.settings = task, list(cameras), settings
        self.stages, self.instruction = task.stages, task.instruction
        self._model: MjModel | None = None
        self._renderer: scene.SceneRenderer | None = None
        self._simulations: list[Physics] = []
        self._steps = np.zeros(0, dtype=int)
        self._frames: list[dict[str, np.ndarray]] = []
        self._qpos: list[np.ndarray] = []
        self._level: list[int] = []

    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        return self.task.sample_reset(rng)

    def reset(self, states: list[dict[str, Any]]) -> SimObservation:
        layouts = [self.task.object_positions(state) for state in states]
        if self._model is None:
            self._model = scene.load_model(self.task.joint_xml)
            self._renderer = scene.SceneRenderer(self._model, self.cameras, self.settings.image_height,
                                                 self.settings.image_width)
        while len(self._simulations) < len(states):
            self._simulations.append(scene.new_physics(self._model))
        self._steps = np.zeros(len(states), dtype=int)
        self._frames, self._qpos, self._level = [], [], []
        for physics, objects in zip(self._simulations, layouts):
            scene.reset_scene(physics, objects)
            frames, qpos, level = self._read(physics)
            self._frames.append(frames)
            self._qpos.append(qpos)
            self._level.append(level)
        return self._observation()

    def step(self, actions: np.ndarray) -> SimObservation:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (len(self._steps), ACTION_SIZE) or not np.isfinite(actions).all():
            raise ValueError(f"actions must be finite, of shape ({len(self._steps)}, {ACTION_SIZE}); got {actions.shape}")
        for index in np.flatnonzero(self._steps < self.max_steps):
            physics = self._simulations[index]
            physics.data.ctrl[:] = scene.joint_controls(actions[index])
            physics.step(scene.STEPS_PER_CONTROL)
            self._steps[index] += 1
            self._frames[index], self._qpos[index], self._level[index] = self._read(physics)
        return self._observation()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._model, self._renderer, self._simulations = None, None, []

    def _read(self, physics: Physics) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
        """One episode's frames, qpos and level now."""
        return self._renderer.render(physics), scene.arm_qpos(physics), self.task.level(scene.contacts_now(physics))

    def _observation(self) -> SimObservation:
        batch = len(self._steps)
        height, width = self.settings.image_height, self.settings.image_width
        frames = {camera: np.stack([frames[camera] for frames in self._frames]) if batch
                  else np.zeros((0, height, width, 3), dtype=np.uint8) for camera in self.cameras}
        return SimObservation(
            frames=frames,
            qpos=np.array(self._qpos, dtype=np.float32).reshape(batch, ACTION_SIZE),
            level=np.array(self._level, dtype=int),
            done=self._steps >= self.max_steps,
        )


def make_env(task: AlohaTask, cameras: list[str], options: dict[str, Any]) -> AlohaEnv:
    """An environment of `task` rendering `cameras`, with the user's sim.options checked (ConfigError)."""
    unknown = [camera for camera in cameras if camera not in scene.CAMERAS]
    if unknown:
        raise ConfigError(
            f"{task.name} has no camera {', '.join(map(repr, unknown))} (data.cameras); its cameras are "
            f"{', '.join(scene.CAMERAS)}"
        )
    return AlohaEnv(task, cameras, settings_from_options(AlohaSettings, options, task.name))


def make_transfer_cube(cameras: list[str], options: dict[str, Any]) -> AlohaEnv:
    """The factory sim.env aloha-transfer-cube names: the right arm picks the cube and hands it to the left."""
    return make_env(TRANSFER_CUBE, cameras, options)


def make_insertion(cameras: list[str], options: dict[str, Any]) -> AlohaEnv:
    """The factory sim.env aloha-insertion names: each arm lifts one part and the peg goes into the socket."""
    return make_env(INSERTION, cameras, options)
