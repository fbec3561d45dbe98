"""The two ALOHA tasks: their scenes, random initial object poses and progress levels.

The levels are gym-aloha's rewards, computed from the same geom contacts, so success here
means what it means in the ALOHA/ACT papers: a cube held by the left gripper off the table,
or a peg touching the socket's pin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

EPISODE_STEPS = 400  # 8 s at 50 Hz, as in gym-aloha and ACT
OBJECT_HEIGHT = 0.05  # every object starts at this height, upright and at rest
LEFT_FINGER = "vx300s_left/10_left_gripper_finger"  # gym-aloha's rewards look at this finger of each arm
RIGHT_FINGER = "vx300s_right/10_left_gripper_finger"
SOCKET_WALLS = ("socket-1", "socket-2", "socket-3", "socket-4")

Touching = Callable[[str, str | tuple[str, ...]], bool]  # touching(geom, geom or any of several geoms)


@dataclass(frozen=True)
class ObjectRange:
    """Where one object may start: a free joint placed uniformly in an x, y rectangle."""

    joint: str
    x: tuple[float, float]
    y: tuple[float, float]


@dataclass(frozen=True)
class AlohaTask:
    """What differs between the ALOHA tasks; the environment and the expert do the rest."""

    name: str  # the sim.env name, also stored in each episode (ENV_ATTRIBUTE)
    joint_xml: str  # the joint-position-controlled scene: the environment and the recorded demos
    mocap_xml: str  # the same scene with mocap-driven grippers: where the expert plans
    instruction: str
    stages: tuple[str, ...]
    objects: dict[str, ObjectRange]  # reset-state key -> its start range
    level: Callable[[Touching], int]

    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """Each object's start position [x, y, z], as JSON stores it."""
        return {key: [float(rng.uniform(*spot.x)), float(rng.uniform(*spot.y)), OBJECT_HEIGHT]
                for key, spot in self.objects.items()}

    def object_positions(self, state: dict[str, Any]) -> dict[str, list[float]]:
        """The free joint and position of each object of a reset state; a state of another task is an error."""
        if sorted(state) != sorted(self.objects):
            raise ValueError(f"{self.name} reset state needs the keys {sorted(self.objects)}, got {sorted(state)}")
        return {self.objects[key].joint: [float(value) for value in state[key]] for key in self.objects}


def transfer_cube_level(touching: Touching) -> int:
    """1 right gripper on the cube, 2 and the cube off the table, 3 left gripper on it, 4 and off the table."""
    on_table = touching("red_box", "table")
    if touching("red_box", LEFT_FINGER):
        return 3 if on_table else 4
    if touching("red_box", RIGHT_FINGER):
        return 1 if on_table else 2
    return 0


def insertion_level(touching: Touching) -> int:
    """1 both grippers on their part, 2 both parts lifted, 3 peg meets socket in the air, 4 peg touches the pin."""
    if touching("red_peg", "pin"):
        return 4
    lifted = not touching("red_peg", "table") and not touching("table", SOCKET_WALLS)
    if lifted and touching("red_peg", SOCKET_WALLS):
        return 3
    if touching("red_peg", RIGHT_FINGER) and touching(LEFT_FINGER, SOCKET_WALLS):
        return 2 if lifted else 1
    return 0


TRANSFER_CUBE = AlohaTask(
    name="aloha-transfer-cube",
    joint_xml="bimanual_viperx_transfer_cube.xml",
    mocap_xml="bimanual_viperx_end_effector_transfer_cube.xml",
    instruction="pick up the red cube with the right arm and hand it over to the left arm",
    stages=("touched", "lifted", "handover begun", "handed over"),
    objects={"cube": ObjectRange("red_box_joint", x=(0.0, 0.2), y=(0.4, 0.6))},
    level=transfer_cube_level,
)

INSERTION = AlohaTask(
    name="aloha-insertion",
    joint_xml="bimanual_viperx_insertion.xml",
    mocap_xml="bimanual_viperx_end_effector_insertion.xml",
    instruction="pick up the red peg with the right arm and the blue socket with the left arm, and insert the peg into "
                "the socket",
    stages=("touched", "lifted", "peg meets socket", "inserted"),
    objects={
        "peg": ObjectRange("red_peg_joint", x=(0.1, 0.2), y=(0.4, 0.6)),
        "socket": ObjectRange("blue_socket_joint", x=(-0.2, -0.1), y=(0.4, 0.6)),
    },
    level=insertion_level,
)

TASKS = {task.name: task for task in (TRANSFER_CUBE, INSERTION)}
