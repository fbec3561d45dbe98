"""The scripted expert that demonstrates the pick-and-place task.

It sees the true object position and where the block belongs (the learner only sees images
and the instruction), moves at full speed with Gaussian motion noise and a per-episode aiming
offset, so demonstrations differ the way human teleoperation does while staying deterministic
for a given seed.
"""

from __future__ import annotations

import numpy as np

from rdtflow.sim.pick_place import PickPlaceBatch


def expert_actions(scenes: PickPlaceBatch, aim_offset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Actions (B, 3) for every scene: approach, close, carry, open over the target."""
    settings = scenes.settings
    carrying = scenes.holding
    target = np.where(carrying[:, None], scenes.target, scenes.obj) + aim_offset
    arrived_radius = np.where(carrying, settings.goal_tolerance, settings.grasp_radius) * 0.5
    arrived = np.linalg.norm(scenes.gripper - target, axis=1) < arrived_radius

    motion = target - scenes.gripper
    length = np.linalg.norm(motion, axis=1, keepdims=True)
    motion *= np.minimum(1.0, settings.max_speed / np.maximum(length, 1e-9))
    motion += rng.normal(0.0, settings.expert_noise, size=motion.shape)
    position = np.where(arrived[:, None], scenes.gripper, scenes.gripper + motion)

    # Close on arrival at the object; open on arrival at the goal, or to retry a missed grasp.
    missed_grasp = (scenes.opening < 0.5) & ~carrying
    opening = np.where(carrying, np.where(arrived, 1.0, 0.0), np.where(arrived & ~missed_grasp, 0.0, 1.0))
    return np.concatenate([np.clip(position, 0.0, 1.0), opening[:, None]], axis=1)


def sample_aim_offsets(count: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """A per-episode bias of where the expert aims, small against the grasp radius."""
    return rng.normal(0.0, noise, size=(count, 2))
