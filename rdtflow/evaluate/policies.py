"""Chunk policies: observation batch in, action chunk (B, H, D) in the robot's units out.

The trained diffusion policy and the blind baseline share this interface, so the closed-loop
runner and the open-loop error treat them identically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from rdtflow.model.inputs import PolicyInputs
from rdtflow.model.policy import RDTPolicy


@dataclass
class Observations:
    qpos: np.ndarray  # (B, D)
    frames: torch.Tensor  # (B, S, H, W, 3) uint8 image slots
    frames_valid: torch.Tensor  # (B, S) bool
    instructions: list[str]
    steps: np.ndarray  # (B,) time step within the episode


def slot_frames(history: Sequence[Mapping[str, np.ndarray]], slots: list[str | None],
                img_history: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The image slots of a batch as training laid them out: uint8 (B, img_history * len(slots),
    H, W, 3), frame-major then camera, and their validity (B, S).

    `history` holds the last 1..img_history observations, oldest first, each camera -> (B, H, W, 3).
    Slots before the first observation repeat it and are masked, as at the start of a training
    episode; slots without a camera are masked too.
    """
    missing = img_history - len(history)
    observations = [history[0]] * missing + list(history)
    cameras = [camera for camera in slots if camera is not None]
    placeholder = np.zeros_like(history[0][cameras[0]])  # masked out by the policy's inputs
    frames = [observation[camera] if camera is not None else placeholder
              for observation in observations for camera in slots]
    valid = [index >= missing and camera is not None for index in range(img_history) for camera in slots]
    return torch.from_numpy(np.stack(frames, axis=1)), torch.tensor([valid] * len(placeholder))


class ChunkPolicy(Protocol):
    name: str

    def __call__(self, observations: Observations) -> np.ndarray: ...


@dataclass
class DiffusionPolicy:
    """A trained RDT checkpoint sampled with DPM-Solver, on the device its weights are on.

    `bf16_autocast` runs it as the trainer's bf16 mixed precision did (on a GPU).
    """

    policy: RDTPolicy
    inputs: PolicyInputs
    generator: torch.Generator  # on the policy's device
    name: str
    bf16_autocast: bool = False

    def __call__(self, observations: Observations) -> np.ndarray:
        device = self.generator.device
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16_autocast):
            img_tokens = self.inputs.image_tokens(observations.frames, observations.frames_valid)
            conditions = self.inputs.conditions(observations.qpos, img_tokens, observations.instructions)
            batch = {name: tensor.to(device) for name, tensor in conditions.items()}
            unified = self.policy.predict_action(batch, generator=self.generator)
        return self.inputs.raw_action(unified.float().cpu().numpy())


@dataclass
class MeanTrajectoryPolicy:
    """Blind baseline: replays the mean training action at each time step, ignoring images.

    It shows how much of the task can be done without looking; a policy that does not beat
    it has not learned to use vision.
    """

    mean_actions: np.ndarray  # (T_max, D)
    horizon: int
    name: str = "mean-trajectory baseline"

    @classmethod
    def fit(cls, trajectories: list[np.ndarray], horizon: int) -> "MeanTrajectoryPolicy":
        """Average time-aligned training actions; shorter episodes hold their last action."""
        longest = max(len(actions) for actions in trajectories)
        padded = np.stack([np.concatenate([a, np.repeat(a[-1:], longest - len(a), axis=0)]) for a in trajectories])
        return cls(mean_actions=padded.mean(axis=0), horizon=horizon)

    def __call__(self, observations: Observations) -> np.ndarray:
        last = len(self.mean_actions) - 1
        steps = np.minimum(observations.steps[:, None] + np.arange(self.horizon)[None], last)
        return self.mean_actions[steps]
