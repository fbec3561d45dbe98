"""The scripted expert: gripper waypoints in the end-effector scene, replayed as joint targets.

As ACT's scripted demonstrations are made, the expert plans where it is easy: each gripper
is welded to a mocap body that goes straight to Cartesian waypoints, and the arm joint
angles the welds produce, with the gripper commands, are the actions a joint-controlled
robot replays. The joint scene's replay is what a demonstration records, and its success is
the demonstration's.

Why the expert runs the joint scene alongside: a replay drifts from the plan wherever
contacts decide. A pinched peg pivots about the fingers' axis and arrives tilted by several
degrees, and the socket tolerates 8 mm; planned once and replayed, no insertion out of 30
succeeded. So a script is a few phases (grasp, then carry and hand over or line up and push),
and at the start of each the end-effector scene is set to the joint scene's state and the
phase is planned from where the objects really are. Within a phase the replay is open-loop,
as in ACT. Replanning costs no extra simulation: both scenes step once per control step.

Waypoints get small random jitter, so demonstrations differ beyond their initial poses,
deterministically for a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mujoco
import numpy as np
from dm_control.mujoco import Physics
from dm_control.mujoco.wrapper import MjModel

from rdtflow.sim.aloha import scene
from rdtflow.sim.aloha.tasks import EPISODE_STEPS, INSERTION, TRANSFER_CUBE, AlohaTask
from rdtflow.sim.aloha.waypoints import Waypoint, gripper_quaternion, multiply, pointing_down, pose_at, rotation_between

OPEN, CLOSED = 1.0, 0.0  # normalised gripper commands
LEFT, RIGHT = 0, 1  # arm indices, the order of the mocap bodies and their welds
CUBE_HALF = 0.02
PEG_HALF_HEIGHT, SOCKET_HALF_HEIGHT = 0.01, 0.022
PEG_HALF_LENGTH = 0.06
SOCKET_MOUTH, PIN_FACE = 0.06, 0.04  # along the socket's axis from its centre: its opening, the pin's end
PIN_PRESS = 0.005  # the peg's tip is pushed this far past the pin's end, so the two stay in contact

# A picking gripper points almost straight down: at a shallower angle the right arm cannot reach
# a cube near its base. Each arm's fingers keep the axis they start with.
PICK_PITCH = 85.0
RIGHT_PICK = gripper_quaternion(pointing_down(-1, PICK_PITCH), (0, -1, 0))
LEFT_PICK = gripper_quaternion(pointing_down(1, PICK_PITCH), (0, 1, 0))
LEFT_TAKE = gripper_quaternion((1, 0, 0), (0, 0, 1))  # level, fingers closing vertically: the cube rests on one

Plan = tuple[list[Waypoint], list[Waypoint]]  # the left arm's waypoints, the right arm's
Planner = Callable[[Physics, dict[str, Any], np.random.Generator], Plan]


def _jitter(rng: np.random.Generator, scale: float, axes: tuple[float, float, float] = (1, 1, 1)) -> np.ndarray:
    """A small random offset (m) along `axes`, bounded so a jittered waypoint still does its job."""
    return np.clip(rng.normal(0.0, scale, size=3), -2 * scale, 2 * scale) * axes


def held_offset(physics: Physics, arm: int, point: np.ndarray, gripper_quaternion: np.ndarray) -> np.ndarray:
    """Where a point of a held object will be from the fingertip point once the gripper turns to `gripper_quaternion`."""
    fingertips, mocap_quaternion = scene.mocap_pose_holding(physics, arm)
    inverse, local, offset = np.zeros(4), np.zeros(3), np.zeros(3)
    mujoco.mju_negQuat(inverse, mocap_quaternion)
    mujoco.mju_rotVecQuat(local, point - fingertips, inverse)
    mujoco.mju_rotVecQuat(offset, local, scene.mocap_quaternion(physics, arm, gripper_quaternion))
    return offset


def long_axis(physics: Physics, joint: str) -> tuple[np.ndarray, np.ndarray]:
    """An object's centre and the direction of its body x axis (the peg's and the socket's length)."""
    pose = physics.named.data.qpos[joint]
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, pose[3:7])
    return pose[:3].copy(), rotation.reshape(3, 3)[:, 0]


def transfer_cube_pick(physics: Physics, state: dict[str, Any], rng: np.random.Generator) -> Plan:
    """Right arm: pick the cube from above, carry it to the meeting point, hold it there until the left
    has it, then open and back out along its fingers. Left arm: wait, level and open, beside that point."""
    cube = np.array([state["cube"][0], state["cube"][1], CUBE_HALF])
    grasp = cube + _jitter(rng, 0.003, (1, 1, 0))
    meet = np.array([0.0, 0.5, 0.25]) + _jitter(rng, 0.01)
    back_out = -0.1 * np.array(pointing_down(-1, PICK_PITCH))
    right = [
        Waypoint(90, grasp + [0, 0, 0.1], RIGHT_PICK, OPEN),
        Waypoint(130, grasp, RIGHT_PICK, OPEN),
        Waypoint(165, grasp, RIGHT_PICK, CLOSED),
        Waypoint(225, meet, RIGHT_PICK, CLOSED),
        Waypoint(305, meet, RIGHT_PICK, CLOSED),
        Waypoint(325, meet, RIGHT_PICK, OPEN),
        Waypoint(365, meet + back_out, RIGHT_PICK, OPEN),
    ]
    left = [Waypoint(120, meet + [-0.12, 0, 0], LEFT_TAKE, OPEN)]
    return left, right


def transfer_cube_take(physics: Physics, state: dict[str, Any], rng: np.random.Generator) -> Plan:
    """Left arm: slide the open fingers over and under the cube where the right gripper really holds it,
    close before the right lets go, and keep squeezing, still, to the end (a cube resting on the lower
    finger cannot fall while the arm does not move)."""
    cube = physics.named.data.qpos["red_box_joint"][:3].copy()
    take = cube + [-0.006, 0, 0] + _jitter(rng, 0.002, (1, 0, 0))
    return [
        Waypoint(240, cube + [-0.12, 0, 0], LEFT_TAKE, OPEN),
        Waypoint(280, take, LEFT_TAKE, OPEN),
        Waypoint(300, take, LEFT_TAKE, CLOSED),
    ], []


def insertion_pick(physics: Physics, state: dict[str, Any], rng: np.random.Generator) -> Plan:
    """Each arm picks its part from above at its middle (where gravity cannot turn it in the fingers) and lifts it."""
    peg = np.array([state["peg"][0], state["peg"][1], PEG_HALF_HEIGHT])
    socket = np.array([state["socket"][0], state["socket"][1], SOCKET_HALF_HEIGHT])
    grasps = {
        RIGHT: (peg + _jitter(rng, 0.003, (1, 1, 0)) + [0, 0, 0.008], RIGHT_PICK),  # fingertips clear of the table
        LEFT: (socket + _jitter(rng, 0.003, (1, 1, 0)), LEFT_PICK),
    }
    plans = {}
    for arm, (grasp, quaternion) in grasps.items():
        plans[arm] = [
            Waypoint(90, grasp + [0, 0, 0.08], quaternion, OPEN),
            Waypoint(130, grasp, quaternion, OPEN),
            Waypoint(160, grasp, quaternion, CLOSED),
            Waypoint(200, grasp + [0, 0, 0.12], quaternion, CLOSED),
        ]
    return plans[LEFT], plans[RIGHT]


def _peg_waypoint(physics: Physics, step: int, socket: tuple[np.ndarray, np.ndarray], tip_depth: float,
                  turn: bool) -> Waypoint:
    """The right gripper's waypoint that puts the peg's tip on the socket's axis, `tip_depth` from the
    socket's centre along it; with `turn`, the gripper also turns the peg's tilt against that axis away."""
    socket_centre, socket_axis = socket
    peg_centre, peg_axis = long_axis(physics, "red_peg_joint")
    quaternion = scene.gripper_pose(physics, RIGHT)[1]
    if turn:
        quaternion = multiply(rotation_between(peg_axis, socket_axis), quaternion)
    tip = peg_centre - PEG_HALF_LENGTH * peg_axis
    fingertips = socket_centre + tip_depth * socket_axis - held_offset(physics, RIGHT, tip, quaternion)
    return Waypoint(step, fingertips, quaternion, CLOSED)


def insertion_meet(physics: Physics, state: dict[str, Any], rng: np.random.Generator) -> Plan:
    """Bring the socket to the meeting point, and the peg in line with it, its tip 2 cm short of the opening."""
    socket_meet = np.array([-0.05, 0.5, 0.2]) + _jitter(rng, 0.01)  # where the socket's centre goes
    socket_centre, socket_axis = long_axis(physics, "blue_socket_joint")
    left = [Waypoint(270, socket_meet - held_offset(physics, LEFT, socket_centre, LEFT_PICK), LEFT_PICK, CLOSED)]
    return left, [_peg_waypoint(physics, 270, (socket_meet, socket_axis), SOCKET_MOUTH + 0.02, turn=True)]


def insertion_line_up(physics: Physics, state: dict[str, Any], rng: np.random.Generator) -> Plan:
    """Where the parts have come to rest, turn the peg in line again and bring its tip 1 cm from the opening."""
    socket = long_axis(physics, "blue_socket_joint")
    return [], [_peg_waypoint(physics, 300, socket, SOCKET_MOUTH + 0.01, turn=True)]


def insertion_push(physics: Physics, state: dict[str, Any], rng: np.random.Generator) -> Plan:
    """Put the tip on the socket's axis as the peg now lies, then slide the peg along that axis until it
    presses the pin. No more turning: a small correction of the wrist's roll sticks in the joint scene's
    joint friction, so a turned peg would miss the opening by as much as the turn fell short."""
    socket = long_axis(physics, "blue_socket_joint")
    return [], [
        _peg_waypoint(physics, 320, socket, SOCKET_MOUTH + 0.005, turn=False),
        _peg_waypoint(physics, 370, socket, PIN_FACE - PIN_PRESS, turn=False),
    ]


# Per task, the phases: the step each starts at and its planner. An arm a phase plans for drops the rest
# of its earlier plan; an arm it leaves alone keeps it.
SCRIPTS: dict[str, list[tuple[int, Planner]]] = {
    TRANSFER_CUBE.name: [(0, transfer_cube_pick), (230, transfer_cube_take)],
    INSERTION.name: [(0, insertion_pick), (210, insertion_meet), (280, insertion_line_up), (310, insertion_push)],
}


@lru_cache(maxsize=None)
def _models(mocap_xml: str, joint_xml: str) -> tuple[MjModel, MjModel]:
    """A task's end-effector scene (welds firm enough to carry a grasp) and joint scene, compiled once per process."""
    mocap = scene.load_model(mocap_xml)
    scene.prepare_planning_scene(mocap)
    return mocap, scene.load_model(joint_xml)


@dataclass
class ExpertRollout:
    """The expert's actions and how far the joint scene got with them."""

    actions: np.ndarray  # (EPISODE_STEPS, 14) float32: joint targets and gripper commands, the data's action columns
    levels: np.ndarray  # (EPISODE_STEPS,) the task level in the joint scene after each step


def _sync(mocap: Physics, joint: Physics) -> None:
    """Set the end-effector scene to the joint scene's state (the two share their joints), with the
    mocap bodies where the welds already hold, so that planning starts from where things really are."""
    mocap.data.qpos[:] = joint.data.qpos
    mocap.data.qvel[:] = joint.data.qvel
    mocap.forward()  # the gripper poses the mocap bodies must match
    for arm in (LEFT, RIGHT):
        mocap.data.mocap_pos[arm], mocap.data.mocap_quat[arm] = scene.mocap_pose_holding(mocap, arm)
    mocap.forward()  # the welds' constraints, which the next step uses, from the new mocap poses


def expert_rollout(task: AlohaTask, state: dict[str, Any], rng: np.random.Generator) -> ExpertRollout:
    """Plan and replay each phase of the task's script from `state`; the actions are what the recorded
    demonstration replays, step for step, so its levels are these."""
    mocap_model, joint_model = _models(task.mocap_xml, task.joint_xml)
    mocap, joint = scene.new_physics(mocap_model), scene.new_physics(joint_model)
    for physics in (mocap, joint):
        scene.reset_scene(physics, task.object_positions(state))
    plan = [[Waypoint(0, mocap.data.mocap_pos[arm].copy(), scene.gripper_pose(mocap, arm)[1], scene.START_GRIPPER)]
            for arm in (LEFT, RIGHT)]
    phases = dict(SCRIPTS[task.name])
    actions, levels = np.zeros((EPISODE_STEPS, 14), dtype=np.float32), np.zeros(EPISODE_STEPS, dtype=int)
    for step in range(EPISODE_STEPS):
        if step in phases:
            _sync(mocap, joint)
            for waypoints, more in zip(plan, phases[step](mocap, state, rng)):
                if more:  # a phase replaces the arm's plan from now on, starting where the plan is now
                    waypoints[:] = [point for point in waypoints if point.step < step] + [pose_at(waypoints, step), *more]
        targets = [pose_at(waypoints, step + 1) for waypoints in plan]
        for arm, target in enumerate(targets):
            mocap.data.mocap_pos[arm] = target.position
            mocap.data.mocap_quat[arm] = scene.mocap_quaternion(mocap, arm, target.quaternion)
        mocap.data.ctrl[:] = [*scene.finger_targets(targets[LEFT].gripper), *scene.finger_targets(targets[RIGHT].gripper)]
        mocap.step(scene.STEPS_PER_CONTROL)
        actions[step] = scene.arm_qpos(mocap)  # the pose the welds reached: the joint target of this step
        actions[step, [scene.LEFT_GRIPPER, scene.RIGHT_GRIPPER]] = [targets[LEFT].gripper, targets[RIGHT].gripper]
        joint.data.ctrl[:] = scene.joint_controls(actions[step].astype(np.float64))
        joint.step(scene.STEPS_PER_CONTROL)
        levels[step] = task.level(scene.contacts_now(joint))
    return ExpertRollout(actions, levels)
