"""Closed-loop success rate: re-simulate each held-out episode from its recorded initial state.

All held-out episodes run as one batch, so a checkpoint's evaluation costs one policy call
per executed chunk rather than one per episode.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from rdtflow.evaluate.policies import ChunkPolicy, Observations
from rdtflow.progress import progress
from rdtflow.sim.pick_place import PickPlaceBatch, ResetState, TaskSettings


def run_closed_loop(
    policy: ChunkPolicy,
    resets: list[ResetState],
    instructions: list[str],
    settings: TaskSettings,
    execute_horizon: int,
    img_history: int,
) -> list[dict]:
    """Per-episode outcome (success, steps, final distance) of `policy` from each reset."""
    scenes = PickPlaceBatch.from_resets(settings, resets)
    history: deque[np.ndarray] = deque([scenes.render()], maxlen=img_history)  # one frame per step
    pending: deque[np.ndarray] = deque()  # actions (B, D) of the current chunk not executed yet
    # Every scene is done after max_steps steps, so the step range bounds the loop and the progress.
    for step in progress(range(settings.max_steps), desc="closed loop", unit="step"):
        if scenes.done.all():
            break
        if not pending:
            missing = img_history - len(history)
            slots = [history[0]] * missing + list(history)  # placeholders are masked out below
            observations = Observations(
                qpos=scenes.qpos(),
                frames=torch.from_numpy(np.stack(slots, axis=1)),
                frames_valid=torch.tensor([[index >= missing for index in range(img_history)]] * len(resets)),
                instructions=instructions,
                steps=np.full(len(resets), step),
            )
            chunk = policy(observations)  # (B, H, D)
            pending.extend(chunk[:, :execute_horizon].transpose(1, 0, 2))
        scenes.step(pending.popleft())
        history.append(scenes.render())
    distances = scenes.final_distance()
    return [
        {"success": bool(scenes.success[i]), "steps": int(scenes.steps[i]), "final_distance": float(distances[i])}
        for i in range(len(resets))
    ]
