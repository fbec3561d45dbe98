"""The one interface every simulator implements, for closed-loop evaluation and demo generation.

Why one small protocol: evaluation, the blind baseline and the rollout videos must treat the
built-in task, the ALOHA scenes and a user's own simulator alike, and a user should be able
to plug theirs in with a factory function (config key `sim.env: "package.module:factory"`,
contract in docs/simulators.md) without touching rdtflow.

An environment is a *batch* of independent episodes stepped together, so one policy call
serves every held-out episode. Everything is in the data's units: actions and qpos are the
columns the demonstrations record, frames are uint8 RGB of the size the demonstrations
store. Tasks report progress as a *level* per step: 0 is nothing achieved, level k means
stage `stages[k-1]` is reached now, and the last level is success.

A simulator of one task has one `instruction`. A family of tasks (the built-in relations)
says each episode's own from its reset state (`episode_instruction`), and may say per episode
what happened beyond the levels (`outcome_details`), e.g. where the block was released.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

RESET_ATTRIBUTE = "sim_reset"  # episode root attribute: JSON of the state `SimEnv.reset` takes
ENV_ATTRIBUTE = "sim_env"  # episode root attribute: the sim.env that recorded the episode


@dataclass
class SimObservation:
    """What a batch of episodes shows after a reset or a step."""

    frames: dict[str, np.ndarray]  # camera name -> (B, H, W, 3) uint8, every configured camera
    qpos: np.ndarray  # (B, D) float32: the data's qpos columns
    level: np.ndarray  # (B,) int in 0..len(stages): the stage level the episode is at now
    done: np.ndarray  # (B,) bool: the episode has ended; later actions for it are ignored


class SimEnv(Protocol):
    """A batch of episodes of one task. Built by a factory `factory(cameras, options)`."""

    stages: tuple[str, ...]  # names of levels 1..K; reaching level K at any step is success
    max_steps: int  # every episode is done after this many steps
    instruction: str  # the task's language instruction, as the demonstrations record it
    # Optional, for a family of tasks:
    #   episode_instruction(state: dict) -> str: the instruction of the episode starting from `state`
    #   outcome_details() -> list[dict]: per episode of the last rollout, JSON values the
    #       evaluation adds to its outcome (not forwarded from eval.threads worker processes)

    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """A random initial state, JSON-serialisable: what RESET_ATTRIBUTE stores."""
        ...

    def reset(self, states: list[dict[str, Any]]) -> SimObservation:
        """Start one episode from each state; the batch size is len(states)."""
        ...

    def step(self, actions: np.ndarray) -> SimObservation:
        """Apply actions (B, A), in the data's action columns, to every episode not done."""
        ...

    def close(self) -> None:
        """Release renderers and worker processes."""
        ...


def episode_instruction(env: SimEnv, state: dict[str, Any]) -> str:
    """The instruction an episode starting from `state` records: its own where the simulator
    is a family of tasks, else the simulator's one."""
    own = getattr(env, "episode_instruction", None)
    return own(state) if own is not None else env.instruction


def check_observation(observation: SimObservation, cameras: list[str], batch: int, stages: int) -> list[str]:
    """Why an observation breaks the contract (empty when it keeps it), for the config check."""
    problems = []
    if not isinstance(observation, SimObservation):
        return [f"returned {type(observation).__name__}, not rdtflow.sim.env.SimObservation"]
    if sorted(observation.frames) != sorted(cameras):
        problems.append(f"frames has cameras {sorted(observation.frames)}; data.cameras needs exactly {sorted(cameras)}")
    for camera, frames in observation.frames.items():
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != batch or frames.shape[-1] != 3:
            problems.append(f"frames['{camera}'] is {frames.dtype} {frames.shape}; needs uint8 ({batch}, H, W, 3)")
    if observation.qpos.ndim != 2 or observation.qpos.shape[0] != batch:
        problems.append(f"qpos has shape {observation.qpos.shape}; needs ({batch}, D)")
    for name in ("level", "done"):
        value = np.asarray(getattr(observation, name))
        if value.shape != (batch,):
            problems.append(f"{name} has shape {value.shape}; needs ({batch},)")
    level = np.asarray(observation.level)
    if level.size and (level.min() < 0 or level.max() > stages):
        problems.append(f"level ranges {level.min()}..{level.max()}; needs 0..{stages} (one per stage)")
    return problems
