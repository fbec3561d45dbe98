"""Closed-loop success: re-simulate each held-out episode from its recorded initial state.

All held-out episodes run as one batch of the simulator (rdtflow.sim.env), so a checkpoint's
evaluation costs one policy call per executed chunk rather than one per episode, and a
physics simulator steps the batch in worker processes while the policy waits.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rdtflow.data.frames import JpegCodec, encode_jpeg
from rdtflow.evaluate.policies import ChunkPolicy, Observations, slot_frames
from rdtflow.progress import progress
from rdtflow.sim.env import SimEnv, SimObservation


@dataclass
class Rollouts:
    """What a closed-loop evaluation measured."""

    outcomes: list[dict]  # per episode: success, held_at_end, level, stage, steps, and the simulator's details
    recordings: list[list[bytes]]  # per episode: JPEG frames of the video camera, one per observation
    seconds: float  # from the reset to the last step
    sim_steps: int  # episode steps simulated, summed over the batch
    stepping_seconds: float  # the steps alone, policy calls included
    stages: tuple[str, ...]  # the simulator's stage names: level k reached means stages[k-1]


def run_closed_loop(
    policy: ChunkPolicy,
    env: SimEnv,
    states: list[dict[str, Any]],
    instructions: list[str],
    slots: list[str | None],
    execute_horizon: int,
    img_history: int,
    video_camera: str | None = None,
    codecs: Mapping[str, JpegCodec] | None = None,
) -> Rollouts:
    """Run `policy` from each initial state until every episode is done or max_steps pass.

    `codecs` (camera -> the recorder's JPEG settings) makes every frame the policy sees, and the
    video records, look as the demonstrations' frames do (eval.frame_codec: recorded).
    """
    started = time.perf_counter()
    batch = len(states)
    observation = through_codecs(env.reset(states), codecs)
    history: deque[SimObservation] = deque([observation], maxlen=img_history)
    pending: deque[np.ndarray] = deque()  # actions (B, A) of the current chunk not executed yet
    best_level = np.asarray(observation.level).copy()
    steps = np.zeros(batch, dtype=int)
    recordings: list[list[bytes]] = [[] for _ in range(batch)]
    _record(recordings, observation, video_camera, np.ones(batch, dtype=bool))
    sim_steps, stepping_started = 0, time.perf_counter()  # the rate leaves out building workers and resetting
    bar = progress(range(env.max_steps), desc="closed loop", unit="step")
    for step in bar:
        if observation.done.all():
            break
        if not pending:
            frames, valid = slot_frames([past.frames for past in history], slots, img_history)
            chunk = policy(Observations(qpos=observation.qpos, frames=frames, frames_valid=valid,
                                        instructions=instructions, steps=np.full(batch, step)))  # (B, H, A)
            pending.extend(chunk[:, :execute_horizon].transpose(1, 0, 2))
        active = ~observation.done
        observation = through_codecs(env.step(pending.popleft()), codecs)
        steps += active
        sim_steps += int(active.sum())
        best_level = np.maximum(best_level, observation.level)
        history.append(observation)
        _record(recordings, observation, video_camera, active)
        rate = sim_steps / max(time.perf_counter() - stepping_started, 1e-9)
        bar.set_postfix(**{"sim steps/s": f"{rate:.0f}", "episodes/s": f"{rate / env.max_steps:.2f}"})
    details = env.outcome_details() if hasattr(env, "outcome_details") else [{}] * batch
    outcomes = [episode_outcome(int(best_level[i]), int(observation.level[i]), int(steps[i]), env.stages) | details[i]
                for i in range(batch)]
    return Rollouts(outcomes, recordings, time.perf_counter() - started, sim_steps, time.perf_counter() - stepping_started,
                    tuple(env.stages))


def through_codecs(observation: SimObservation, codecs: Mapping[str, JpegCodec] | None) -> SimObservation:
    """`observation` with each camera that has a codec re-encoded through it (the others as rendered)."""
    if not codecs:
        return observation
    frames = {camera: np.stack([codecs[camera].round_trip(frame) for frame in batch]) if camera in codecs else batch
              for camera, batch in observation.frames.items()}
    return dataclasses.replace(observation, frames=frames)


def episode_outcome(best_level: int, final_level: int, steps: int, stages: tuple[str, ...]) -> dict:
    """Success is reaching the last level at any step (ACT's criterion); held_at_end is being there at the end."""
    top = len(stages)
    return {"success": best_level == top, "held_at_end": final_level == top, "level": best_level,
            "stage": stages[best_level - 1] if best_level else None, "steps": steps}


def _record(recordings: list[list[bytes]], observation: SimObservation, camera: str | None, active: np.ndarray) -> None:
    """Keep the video camera's frame of each episode still running, JPEG-compressed (tens of
    episodes x hundreds of steps of raw frames would not fit in memory)."""
    if camera is None:
        return
    for index in np.flatnonzero(active):
        recordings[index].append(encode_jpeg(observation.frames[camera][index], quality=90))
