"""gym-aloha's bimanual ViperX scenes, loaded straight from its XML files, with our own control and reading.

Why not gym-aloha's gym wrapper: its observation renders three 480x640 cameras every step
(~180 ms), while a policy needs only the configured cameras at the data's small size. Here
the physics come from the XML alone; control, reading and rendering are ours, in the units
the demonstrations record (gym-aloha's joint layout, grippers normalised 0 closed .. 1 open).
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np
from dm_control.mujoco import Physics
from dm_control.mujoco.wrapper import MjModel
from gym_aloha.constants import (
    ASSETS_DIR,
    DT,
    START_ARM_POSE,
    normalize_puppet_gripper_position,
    unnormalize_puppet_gripper_position,
)

ROBOT_QPOS = 16  # per arm: 6 arm joints, then the two finger slides (the second mirrors the first)
ARM_JOINTS = 6
LEFT_GRIPPER, RIGHT_GRIPPER = 6, 13  # gripper columns of the 14-d qpos / action
STEPS_PER_CONTROL = 10  # physics substeps per 50 Hz control step (DT / the XML's 2 ms timestep)
WELD_SOLIMP = 0.95  # MuJoCo 3 makes the mocap welds too soft for a grasp to hold at the XML's 0.25

START_GRIPPER = normalize_puppet_gripper_position(START_ARM_POSE[ARM_JOINTS])  # the start pose's opening
GRIPPER_BODIES = ("vx300s_left/gripper_link", "vx300s_right/gripper_link")

# The data's camera names (agilex layout) and the scene cameras they stand for.
CAMERAS = {"cam_high": "top", "cam_low": "angle", "cam_left_wrist": "left_wrist", "cam_right_wrist": "right_wrist"}


def load_model(xml_name: str) -> MjModel:
    """The compiled scene, set up for fast small renders (no multisampling).

    One model serves a whole batch: every episode's Physics shares it and only the data differ.
    """
    model = Physics.from_xml_path(str(ASSETS_DIR / xml_name)).model
    model.vis.quality.offsamples = 0
    assert round(DT / model.opt.timestep) == STEPS_PER_CONTROL, "the scene's timestep is not 2 ms"
    return model


def prepare_planning_scene(model: MjModel) -> None:
    """Make an end-effector scene's welds steer its arms precisely: firm enough to carry a grasp (see
    WELD_SOLIMP), and unopposed by the arm joints' dry friction, which would otherwise hold a wrist
    several degrees off the commanded orientation while the arm moves. The scene only plans the joint
    trajectory; the joint scene, with its friction, is what gets simulated and recorded."""
    model.eq_solimp[:, :2] = WELD_SOLIMP
    for arm in range(2):
        model.dof_frictionloss[arm * 8:arm * 8 + ARM_JOINTS] = 0.0


def new_physics(model: MjModel) -> Physics:
    """A fresh episode's simulation on a shared model."""
    return Physics.from_model(model)


def arm_qpos(physics: Physics) -> np.ndarray:
    """The 14-d qpos in gym-aloha's layout: per arm 6 joint angles, then the normalised gripper opening."""
    raw = physics.data.qpos
    left, right = raw[:ARM_JOINTS + 1].copy(), raw[8:8 + ARM_JOINTS + 1].copy()
    left[-1] = normalize_puppet_gripper_position(left[-1])
    right[-1] = normalize_puppet_gripper_position(right[-1])
    return np.concatenate([left, right])


def finger_targets(gripper: float) -> tuple[float, float]:
    """The two finger slides' position targets for a normalised gripper command (they move mirrored)."""
    position = unnormalize_puppet_gripper_position(gripper)
    return position, -position


def joint_controls(action: np.ndarray) -> np.ndarray:
    """The joint scene's 16 actuator targets for a 14-d action in the data's units."""
    left, right = action[:ARM_JOINTS + 1], action[ARM_JOINTS + 1:]
    return np.concatenate([left[:ARM_JOINTS], finger_targets(left[-1]), right[:ARM_JOINTS], finger_targets(right[-1])])


def reset_scene(physics: Physics, objects: dict[str, list[float]]) -> None:
    """Both arms at gym-aloha's start pose and at rest, each object (free joint -> position) upright.

    The actuators start at that pose too, so nothing moves before the first action; in an
    end-effector scene the mocap bodies start where the welds already hold, for the same reason.
    """
    with physics.reset_context():
        physics.data.qpos[:ROBOT_QPOS] = START_ARM_POSE
        for joint, position in objects.items():
            address = physics.model.jnt_qposadr[physics.model.name2id(joint, "joint")]
            physics.data.qpos[address:address + 7] = [*position, 1.0, 0.0, 0.0, 0.0]
        if physics.model.nmocap:
            mujoco.mj_kinematics(physics.model.ptr, physics.data.ptr)
            for arm in range(2):
                physics.data.mocap_pos[arm], physics.data.mocap_quat[arm] = mocap_pose_holding(physics, arm)
            physics.data.ctrl[:] = [*finger_targets(START_GRIPPER), *finger_targets(START_GRIPPER)]
        else:
            physics.data.ctrl[:] = START_ARM_POSE


def gripper_pose(physics: Physics, arm: int) -> tuple[np.ndarray, np.ndarray]:
    """World position and quaternion of an arm's gripper_link (0 left, 1 right)."""
    body = GRIPPER_BODIES[arm]
    return physics.named.data.xpos[body].copy(), physics.named.data.xquat[body].copy()


def mocap_pose_holding(physics: Physics, arm: int) -> tuple[np.ndarray, np.ndarray]:
    """The mocap pose at which arm `arm`'s weld holds its gripper where it is now.

    The weld keeps the gripper_link at a fixed pose relative to the mocap body, so the mocap
    pose is the gripper's composed with the inverse of that relative pose.
    """
    relative = physics.model.eq_data[arm]
    inverse_position, inverse_quaternion = np.zeros(3), np.zeros(4)
    mujoco.mju_negPose(inverse_position, inverse_quaternion, relative[3:6], relative[6:10])
    position, quaternion = gripper_pose(physics, arm)
    mocap_position, mocap_quaternion = np.zeros(3), np.zeros(4)
    mujoco.mju_mulPose(mocap_position, mocap_quaternion, position, quaternion, inverse_position, inverse_quaternion)
    return mocap_position, mocap_quaternion


def mocap_quaternion(physics: Physics, arm: int, gripper_quaternion: np.ndarray) -> np.ndarray:
    """The mocap orientation that turns arm `arm`'s gripper_link to `gripper_quaternion` (w, x, y, z).

    The welds' relative pose puts each mocap body between its gripper's fingertips, so the
    mocap position is the fingertip point itself; only the orientation needs converting.
    """
    inverse = np.zeros(4)
    mujoco.mju_negQuat(inverse, physics.model.eq_data[arm, 6:10])
    result = np.zeros(4)
    mujoco.mju_mulQuat(result, gripper_quaternion, inverse)
    return result


def contacts_now(physics: Physics) -> Callable[[str, str | tuple[str, ...]], bool]:
    """`touching(geom, other)`: whether geom `geom` touches `other` (a geom name, or any of several) now.

    Pairs are unordered: MuJoCo orders a contact's geoms by its collision routine, not by meaning.
    """
    model = physics.model
    pairs = {frozenset(pair) for pair in physics.data.ptr.contact.geom.tolist()}

    def touching(geom: str, other: str | tuple[str, ...]) -> bool:
        first = model.name2id(geom, "geom")
        others = (other,) if isinstance(other, str) else other
        return any(frozenset((first, model.name2id(name, "geom"))) in pairs for name in others)

    return touching


class SceneRenderer:
    """Renders the configured cameras of any episode of one model, at the data's frame size.

    Shadows, reflections and multisampling are off: at 120x160 they only cost time (with them
    a frame takes ~50 ms, without ~7 ms). One renderer (one GL context) serves the whole batch,
    since every episode shares the model and only the data differ.
    """

    def __init__(self, model: MjModel, cameras: list[str], height: int, width: int) -> None:
        self.cameras = {name: CAMERAS[name] for name in cameras}
        self.renderer = None  # no GL context for an environment without cameras (the expert's own replays)
        if cameras:
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)  # the offscreen buffer must fit
            model.vis.global_.offheight = max(model.vis.global_.offheight, height)
            self.renderer = mujoco.Renderer(model.ptr, height=height, width=width)
            self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False

    def render(self, physics: Physics) -> dict[str, np.ndarray]:
        """One (H, W, 3) uint8 frame per configured camera."""
        frames = {}
        for name, scene_camera in self.cameras.items():
            self.renderer.update_scene(physics.data.ptr, camera=scene_camera)
            frames[name] = self.renderer.render()
        return frames

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
