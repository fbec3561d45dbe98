"""Simulator factories that break the contract of docs/simulators.md, one way each."""

from __future__ import annotations

from rdtflow.sim.builtin import PickPlaceEnv
from rdtflow.sim.env import SimObservation
from rdtflow.sim.pick_place import TaskSettings


class RenamedCamera(PickPlaceEnv):
    """Names its camera 'top' (the simulator's own name) instead of the data's 'cam_high'."""

    def _observe(self) -> SimObservation:
        observation = super()._observe()
        return SimObservation({"top": observation.frames["cam_high"]}, observation.qpos, observation.level,
                              observation.done)


def renamed_camera(cameras: list[str], options: dict) -> RenamedCamera:
    return RenamedCamera(TaskSettings(**options))


not_a_function = "a factory must be callable"
