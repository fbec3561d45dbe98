"""A two-stage 2D pick-and-place task, vectorised over a batch of scenes.

Why it exists: the embedded default must show a policy *learning* on a laptop CPU, judged
on initial states it never saw. The object and goal positions are random and appear only in
the camera image (the robot state is the gripper's own position and opening), so a policy
that ignores vision cannot succeed; the mean-trajectory baseline stays near 0%.

Coordinates live in the unit square. The robot is a gripper point; its action is the next
commanded position plus a gripper opening (1 open, 0 closed), like ALOHA's joint-position
actions. Closing near the object grasps it; opening while holding releases it, and a release
within `goal_tolerance` of the target is a success that ends the episode.

The target is the square itself ("on", the embedded default) or a point beside it that the
instruction names (RELATION_OFFSETS): a family of tasks that only vision and language
together can solve, so that a policy pretrained on some relations can be fine-tuned on one it
never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
INSTRUCTION_TEMPLATE = "pick up the red block and place it {relation} the green square"
DEFAULT_RELATION = "on"
INSTRUCTION = INSTRUCTION_TEMPLATE.format(relation=DEFAULT_RELATION)
RELATION_DISTANCE = 0.17  # from the square's centre to a relation's target
# "above" is toward the top of the camera image, where y is smallest (render: rows follow y).
RELATION_OFFSETS: dict[str, tuple[float, float]] = {
    "on": (0.0, 0.0),
    "left of": (-RELATION_DISTANCE, 0.0),
    "right of": (RELATION_DISTANCE, 0.0),
    "above": (0.0, -RELATION_DISTANCE),
    "below": (0.0, RELATION_DISTANCE),
}
FAMILY_SQUARE_RANGE = (0.25, 0.75)  # square centres of the relation family: every target inside the arena


def relation_instruction(relation: str) -> str:
    """The instruction of an episode whose target is `relation` the square."""
    return INSTRUCTION_TEMPLATE.format(relation=relation)


@dataclass(frozen=True)
class TaskSettings:
    """The task's physical constants (config key sim.options of builtin-pick-place)."""

    image_size: int = 64
    max_speed: float = 0.06
    grasp_radius: float = 0.06
    goal_tolerance: float = 0.07
    max_steps: int = 70
    expert_noise: float = 0.01
    relations: tuple[str, ...] = (DEFAULT_RELATION,)  # what demos draw from (RELATION_OFFSETS)
    exclude_relations: tuple[str, ...] = ()  # what demos must never draw, e.g. a fine-tune's new task

    def __post_init__(self) -> None:
        require_positive(self, "max_speed", "grasp_radius", "goal_tolerance", "max_steps")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, not {self.image_size}")
        if self.expert_noise < 0:
            raise ValueError(f"expert_noise must not be negative, not {self.expert_noise}")
        unknown = [name for name in (*self.relations, *self.exclude_relations) if name not in RELATION_OFFSETS]
        if unknown:
            raise ValueError(f"unknown relation {unknown[0]!r}: the relations are {', '.join(RELATION_OFFSETS)}")
        if not self.drawn_relations:
            raise ValueError(f"relations {list(self.relations)} leave nothing once exclude_relations "
                             f"{list(self.exclude_relations)} are taken out")

    @property
    def drawn_relations(self) -> tuple[str, ...]:
        """The relations a demo's layout is drawn from, in the order given."""
        return tuple(name for name in dict.fromkeys(self.relations) if name not in self.exclude_relations)

    @property
    def family(self) -> bool:
        """Demos draw other relations than the default's "on": each records its own instruction."""
        return self.drawn_relations != (DEFAULT_RELATION,)


@dataclass(frozen=True)
class ResetState:
    """Everything needed to re-simulate an episode from its first step. `goal` is the square's
    centre; the block belongs at `relation` the square."""

    gripper: tuple[float, float]
    object: tuple[float, float]
    goal: tuple[float, float]
    relation: str = DEFAULT_RELATION

    def to_dict(self) -> dict:
        """The JSON form (lists, as JSON gives them back). "on" is left out: episodes recorded
        before relations existed read back as "on", and the default's files stay as they were."""
        values = {key: list(getattr(self, key)) for key in ("gripper", "object", "goal")}
        return values if self.relation == DEFAULT_RELATION else {**values, "relation": self.relation}

    @classmethod
    def from_dict(cls, values: dict) -> "ResetState":
        relation = values.get("relation", DEFAULT_RELATION)
        if relation not in RELATION_OFFSETS:
            raise ValueError(f"unknown relation {relation!r} in a reset state: the relations are "
                             f"{', '.join(RELATION_OFFSETS)}")
        return cls(**{key: tuple(values[key]) for key in ("gripper", "object", "goal")}, relation=relation)

    @property
    def instruction(self) -> str:
        return relation_instruction(self.relation)

    def target(self) -> tuple[float, float]:
        """Where the block must be released: the square's centre moved by the relation's offset."""
        dx, dy = RELATION_OFFSETS[self.relation]
        return (self.goal[0] + dx, self.goal[1] + dy)


def sample_reset(rng: np.random.Generator) -> ResetState:
    """Random layout with the object, goal and gripper apart enough to need two stages."""
    while True:
        gripper, obj, goal = rng.uniform(0.12, 0.88, size=(3, 2))
        if np.linalg.norm(obj - goal) > 0.3 and np.linalg.norm(obj - gripper) > 0.15:
            return ResetState(tuple(gripper.tolist()), tuple(obj.tolist()), tuple(goal.tolist()))


def sample_relation_reset(rng: np.random.Generator, relations: tuple[str, ...]) -> ResetState:
    """A layout of the relation family: the square's centre in FAMILY_SQUARE_RANGE, so every
    relation's target lies inside the arena, and the block away from both square and target."""
    relation = relations[int(rng.integers(len(relations)))]
    while True:
        goal = rng.uniform(*FAMILY_SQUARE_RANGE, size=2)
        gripper, obj = rng.uniform(0.12, 0.88, size=(2, 2))
        target = goal + np.array(RELATION_OFFSETS[relation])
        if (np.linalg.norm(obj - target) > 0.3 and np.linalg.norm(obj - goal) > 2 * GOAL_HALF_SIZE
                and np.linalg.norm(obj - gripper) > 0.15):
            return ResetState(tuple(gripper.tolist()), tuple(obj.tolist()), tuple(goal.tolist()), relation)


def sample_layout(rng: np.random.Generator, settings: TaskSettings) -> ResetState:
    """The embedded default's layout when only "on" is drawn (its demos stay as they were),
    else the relation family's."""
    if not settings.family:
        return sample_reset(rng)
    return sample_relation_reset(rng, settings.drawn_relations)


@dataclass
class PickPlaceBatch:
    """A batch of independent scenes stepped together (closed-loop evaluation runs all
    held-out episodes at once)."""

    settings: TaskSettings
    gripper: np.ndarray  # (B, 2)
    opening: np.ndarray  # (B,) 1 open, 0 closed
    obj: np.ndarray  # (B, 2)
    goal: np.ndarray  # (B, 2) the square's centre
    target: np.ndarray  # (B, 2) where the block must be released (the goal for "on")
    holding: np.ndarray = field(init=False)  # (B,) bool
    success: np.ndarray = field(init=False)  # (B,) bool
    steps: np.ndarray = field(init=False)  # (B,) steps taken until done
    released_at: np.ndarray = field(init=False)  # (B, 2) where the block was last released; NaN if never

    def __post_init__(self) -> None:
        batch = len(self.gripper)
        self.holding = np.zeros(batch, dtype=bool)
        self.success = np.zeros(batch, dtype=bool)
        self.steps = np.zeros(batch, dtype=int)
        self.released_at = np.full((batch, 2), np.nan)

    @classmethod
    def from_resets(cls, settings: TaskSettings, resets: list[ResetState]) -> "PickPlaceBatch":
        return cls(
            settings=settings,
            gripper=np.array([r.gripper for r in resets], dtype=np.float64),
            opening=np.ones(len(resets)),
            obj=np.array([r.object for r in resets], dtype=np.float64),
            goal=np.array([r.goal for r in resets], dtype=np.float64),
            target=np.array([r.target() for r in resets], dtype=np.float64),
        )

    @property
    def done(self) -> np.ndarray:
        return self.success | (self.steps >= self.settings.max_steps)

    def qpos(self) -> np.ndarray:
        """Proprioceptive state (B, 3): gripper x, y and opening; no object or goal."""
        return np.concatenate([self.gripper, self.opening[:, None]], axis=1).astype(np.float32)

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
        self.released_at[release] = self.obj[release]
        at_goal = np.linalg.norm(self.obj - self.target, axis=1) < self.settings.goal_tolerance
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


def released_relation(released_at: np.ndarray, goal: np.ndarray, tolerance: float) -> list[str | None]:
    """Per scene, the relation whose target the block was last released within `tolerance` of,
    "elsewhere" when none, None when it was never released: a fine-tune that forgets its
    pretraining's relations puts the block where its new one goes."""
    names = list(RELATION_OFFSETS)
    targets = goal[:, None, :] + np.array([RELATION_OFFSETS[name] for name in names])[None]  # (B, R, 2)
    distances = np.linalg.norm(released_at[:, None, :] - targets, axis=2)  # (B, R); NaN if never released
    nearest = np.argmin(np.nan_to_num(distances, nan=np.inf), axis=1)
    return [None if np.isnan(released_at[index, 0]) else names[nearest[index]]
            if distances[index, nearest[index]] < tolerance else "elsewhere" for index in range(len(goal))]
