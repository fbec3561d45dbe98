"""Gripper waypoints and the smooth path between them, for the scripted expert.

A waypoint names the point between a gripper's fingertips (where the end-effector scenes'
welds put the mocap bodies), the orientation of its gripper_link, and the gripper command,
at one control step. Between waypoints the pose eases in and out (minimum jerk), so each
segment starts and ends at rest and no jolt shakes a grasp loose.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class Waypoint:
    """Where one gripper is at `step`: fingertip point, gripper_link orientation (w, x, y, z), gripper command."""

    step: int
    position: np.ndarray
    quaternion: np.ndarray
    gripper: float


def gripper_quaternion(pointing: tuple[float, float, float], fingers: tuple[float, float, float]) -> np.ndarray:
    """The gripper_link orientation that points along `pointing` with the fingers closing along `fingers`.

    gripper_link's x axis runs along the fingers and its y axis is the one they slide on, so the
    rotation's columns are `pointing`, `fingers` (made orthogonal to it) and their cross product.
    """
    x_axis = np.asarray(pointing, dtype=float) / np.linalg.norm(pointing)
    y_axis = np.asarray(fingers, dtype=float) - np.dot(fingers, x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    rotation = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)], axis=1)
    quaternion = np.zeros(4)
    mujoco.mju_mat2Quat(quaternion, rotation.flatten())
    return quaternion


def pointing_down(heading_x: float, degrees: float) -> tuple[float, float, float]:
    """A direction `degrees` below horizontal, heading along +x (heading_x > 0) or -x."""
    angle = np.radians(degrees)
    return (float(np.sign(heading_x)) * np.cos(angle), 0.0, -float(np.sin(angle)))


def rotation_between(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The smallest rotation (a quaternion) that turns direction `start` onto direction `end`."""
    start, end = start / np.linalg.norm(start), end / np.linalg.norm(end)
    axis = np.cross(start, end)
    quaternion = np.array([1.0, 0.0, 0.0, 0.0])
    if np.linalg.norm(axis) > 1e-9:
        mujoco.mju_axisAngle2Quat(quaternion, axis / np.linalg.norm(axis), np.arctan2(np.linalg.norm(axis), start @ end))
    return quaternion


def multiply(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The rotation `second` followed by `first`, as quaternions."""
    result = np.zeros(4)
    mujoco.mju_mulQuat(result, first, second)
    return result


def _smooth(fraction: float) -> float:
    """Minimum-jerk easing from 0 to 1, with zero velocity and acceleration at both ends."""
    return fraction**3 * (10 - 15 * fraction + 6 * fraction**2)


def _slerp(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions, along the shorter arc."""
    if np.dot(start, end) < 0:
        end = -end
    inverse, velocity = np.zeros(4), np.zeros(3)
    mujoco.mju_negQuat(inverse, start)
    mujoco.mju_quat2Vel(velocity, multiply(inverse, end), 1.0)
    result = start.copy()
    mujoco.mju_quatIntegrate(result, velocity, fraction)
    return result


def pose_at(waypoints: list[Waypoint], step: int) -> Waypoint:
    """The pose and gripper command at `step`, eased between the waypoints around it (held after the last)."""
    after = next((index for index, point in enumerate(waypoints) if point.step >= step), len(waypoints) - 1)
    end = waypoints[after]
    if after == 0 or step >= end.step:
        return Waypoint(step, end.position, end.quaternion, end.gripper)
    start = waypoints[after - 1]
    fraction = _smooth((step - start.step) / (end.step - start.step))
    return Waypoint(step, start.position + fraction * (end.position - start.position),
                    _slerp(start.quaternion, end.quaternion, fraction), start.gripper + fraction * (end.gripper - start.gripper))
