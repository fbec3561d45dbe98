"""A two-stage 2D pick-and-place task, vectorised over a batch of scenes.

Why it exists: the embedded default must show a policy *learning* on a laptop CPU, judged
on initial states it never saw. The object and goal positions are random and appear only in
the camera image (the robot state is the gripper's own position and opening), so a policy
that ignores vision cannot succeed; the mean-trajectory baseline stays near 0%.

Coordinates live in the unit square. The robot is a gripper point; its action is the next
commanded position plus a gripper opening (1 open, 0 closed), like ALOHA's joint-position
actions. Closing near the object grasps it; opening while holding releases it, and a release
within `goal_tolerance` of the goal is a success that ends the episode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from rdtflow.sim.options import require_positive

OBJECT_RADIUS = 0.045
GOAL_HALF_SIZE = 0.06
GRIPPER_RADIUS = 0.035
BACKGROUND_RGB = (235, 235, 225)
OBJECT_RGB = (210, 40, 40)
GOAL_RGB = (60, 170, 70)
GRIPPER_OPEN_RGB = (60, 90, 220)
GRIPPER_CLOSED_RGB = (20, 20, 90)
INSTRUCTION = "pick up the red block and place it on the green square"


@dataclass(frozen=True)
class TaskSettings:
    """The task's physical constants (config key sim.options of builtin-pick-place)."""

    image_size: int = 64
    max_speed: float = 0.06
    grasp_radius: float = 0.06
    goal_tolerance: float = 0.07
    max_steps: int = 70
    expert_noise: float = 0.01

    def __post_init__(self) -> None:
        require_positive(self, "max_speed", "grasp_radius", "goal_tolerance", "max_steps")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, not {self.image_size}")
        if self.expert_noise < 0:
            raise ValueError(f"expert_noise must not be negative, not {self.expert_noise}")


@dataclass(frozen=True)
class ResetState:
    """Everything needed to re-simulate an episode from its first step."""

    gripper: tuple[float, float]
    object: tuple[float, float]
    goal: tuple[float, float]

    def to_dict(self) -> dict:
        """The JSON form (lists, as JSON gives them back)."""
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "ResetState":
        return cls(**{key: tuple(values[key]) for key in ("gripper", "object", "goal")})


def sample_reset(rng: np.random.Generator) -> ResetState:
    """Random layout with the object, goal and gripper apart enough to need two stages."""
    while True:
        gripper, obj, goal = rng.uniform(0.12, 0.88, size=(3, 2))
        if np.linalg.norm(obj - goal) > 0.3 and np.linalg.norm(obj - gripper) > 0.15:
            return ResetState(tuple(gripper.tolist()), tuple(obj.tolist()), tuple(goal.tolist()))


@dataclass
class PickPlaceBatch:
    """A batch of independent scenes stepped together (closed-loop evaluation runs all
    held-out episodes at once)."""

    settings: TaskSettings
    gripper: np.ndarray  # (B, 2)
    opening: np.ndarray  # (B,) 1 open, 0 closed
    obj: np.ndarray  # (B, 2)
    goal: np.ndarray  # (B, 2)
    holding: np.ndarray = field(init=False)  # (B,) bool
    success: np.ndarray = field(init=False)  # (B,) bool
    steps: np.ndarray = field(init=False)  # (B,) steps taken until done

    def __post_init__(self) -> None:
        batch = len(self.gripper)
        self.holding = np.zeros(batch, dtype=bool)
        self.success = np.zeros(batch, dtype=bool)
        self.steps = np.zeros(batch, dtype=int)

    @classmethod
    def from_resets(cls, settings: TaskSettings, resets: list[ResetState]) -> "PickPlaceBatch":
        return cls(
            settings=settings,
            gripper=np.array([r.gripper for r in resets], dtype=np.float64),
            opening=np.ones(len(resets)),
            obj=np.array([r.object for r in resets], dtype=np.float64),
            goal=np.array([r.goal for r in resets], dtype=np.float64),
        )

    @property
    def done(self) -> np.ndarray:
        return self.success | (self.steps >= self.settings.max_steps)

    def qpos(self) -> np.ndarray:
        """Proprioceptive state (B, 3): gripper x, y and opening; no object or goal."""
        return np.concatenate([self.gripper, self.opening[:, None]], axis=1).astype(np.float32)

    def final_distance(self) -> np.ndarray:
        return np.linalg.norm(self.obj - self.goal, axis=1)

    def step(self, action: np.ndarray) -> None:
        """Apply actions (B, 3) to the scenes that are not done yet."""
        active = ~self.done
        motion = action[:, :2] - self.gripper
        length = np.linalg.norm(motion, axis=1, keepdims=True)
        motion *= np.minimum(1.0, self.settings.max_speed / np.maximum(length, 1e-9))
        new_gripper = np.clip(self.gripper + motion, 0.0, 1.0)
        new_opening = (action[:, 2] > 0.5).astype(np.float64)

        closing = (self.opening > 0.5) & (new_opening < 0.5)
        near = np.linalg.norm(new_gripper - self.obj, axis=1) < self.settings.grasp_radius
        grasp = active & closing & near
        release = active & self.holding & (new_opening > 0.5)

        self.gripper[active] = new_gripper[active]
        self.opening[active] = new_opening[active]
        self.holding |= grasp
        self.obj[self.holding & active] = self.gripper[self.holding & active]
        self.holding &= ~release
        at_goal = np.linalg.norm(self.obj - self.goal, axis=1) < self.settings.goal_tolerance
        self.success |= release & at_goal
        self.steps[active] += 1

    def render(self) -> np.ndarray:
        """RGB images (B, S, S, 3) uint8 of the top camera."""
        size = self.settings.image_size
        centres = (np.arange(size) + 0.5) / size
        px = centres[None, None, :]
        py = centres[None, :, None]
        image = np.empty((len(self.gripper), size, size, 3), dtype=np.uint8)
        image[:] = BACKGROUND_RGB
        goal_mask = (np.abs(px - self.goal[:, 0, None, None]) < GOAL_HALF_SIZE) & (
            np.abs(py - self.goal[:, 1, None, None]) < GOAL_HALF_SIZE
        )
        image[goal_mask] = GOAL_RGB
        image[_disc(px, py, self.obj, OBJECT_RADIUS)] = OBJECT_RGB
        gripper_disc = _disc(px, py, self.gripper, GRIPPER_RADIUS)
        ring = gripper_disc & ~_disc(px, py, self.gripper, GRIPPER_RADIUS * 0.5)
        closed = (self.opening < 0.5)[:, None, None]
        image[ring & ~closed] = GRIPPER_OPEN_RGB
        image[gripper_disc & closed] = GRIPPER_CLOSED_RGB
        return image


def _disc(px: np.ndarray, py: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    return (px - centre[:, 0, None, None]) ** 2 + (py - centre[:, 1, None, None]) ** 2 < radius**2
