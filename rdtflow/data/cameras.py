"""Which camera fills which of the model's image slots (config key data.cameras).

RDT was pre-trained with three image slots per frame, in this order: the exterior view, the
right wrist, the left wrist (upstream's train/dataset.py, its inference scripts and its
README: "[ext_{t-1}, right_wrist_{t-1}, left_wrist_{t-1}, ext_t, ...]"). A robot with a single
wrist camera fills the right-wrist slot, and a slot without a camera shows the background
image (the processor's mean colour) in every sample, as upstream feeds a missing camera.
Feeding the published weights each wrist in the other's slot would start the fine-tune from
a model that sees the scene mirrored.

`data.cameras` is written either
- as a mapping of those roles to camera names (`wrist` for a robot's only wrist camera): the
  slots are then RDT's three in RDT's order, whatever order the mapping is written in; or
- as a list of camera names, one slot each in the order given: a layout of the user's own,
  for a model trained from scratch.
"""

from __future__ import annotations

RDT_SLOTS = ("exterior", "right_wrist", "left_wrist")
SINGLE_WRIST = "wrist"  # a robot's only wrist camera, which RDT puts in the right-wrist slot
CameraConfig = list[str] | dict[str, str | None]


def camera_slots(cameras: CameraConfig) -> list[str | None]:
    """The camera of each image slot of one frame; None where a slot has no camera."""
    if isinstance(cameras, list):
        return list(cameras)
    roles = {role: name for role, name in cameras.items() if name is not None}
    if SINGLE_WRIST in roles:
        roles["right_wrist"] = roles.pop(SINGLE_WRIST)
    return [roles.get(role) for role in RDT_SLOTS]


def recorded_cameras(cameras: CameraConfig) -> list[str]:
    """The cameras every episode must record: those of the slots, each once."""
    return list(dict.fromkeys(name for name in camera_slots(cameras) if name is not None))


def slot_roles(cameras: CameraConfig) -> list[str]:
    """What each slot is, for people: RDT's role names, or the position in a list."""
    return list(RDT_SLOTS) if isinstance(cameras, dict) else [f"slot {index + 1}" for index in range(len(cameras))]


def role_conflicts(cameras: CameraConfig) -> list[str]:
    """Why a role mapping cannot be placed in RDT's slots (empty when it can)."""
    if isinstance(cameras, list):
        return []
    named = {role: name for role, name in cameras.items() if name is not None}
    problems = []
    if not named:
        problems.append("names no camera: give at least one of " + ", ".join((*RDT_SLOTS, SINGLE_WRIST)))
    if SINGLE_WRIST in named and ({"right_wrist", "left_wrist"} & set(named)):
        problems.append(
            f"'{SINGLE_WRIST}' is for a robot's only wrist camera (it goes in the right-wrist slot, as in RDT); with two "
            "wrist cameras name them right_wrist and left_wrist"
        )
    shared = sorted({name for name in named.values() if list(named.values()).count(name) > 1})
    if shared:
        problems.append(f"camera(s) {', '.join(shared)} fill more than one slot")
    return problems
