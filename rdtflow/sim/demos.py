"""Write scripted-expert demonstrations of the built-in task as agilex-layout HDF5 episodes.

The embedded default has one instruction, in instruction.json beside the episodes, as agilex
keeps one per task folder. Demos of the relation family (sim.options.relations) each record
their own as the root attribute INSTRUCTION_ATTRIBUTE, which data.instruction must then read
(rdtflow.sim.builtin.check_instruction_source)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from rdtflow.data.episode import write_episode
from rdtflow.progress import progress
from rdtflow.sim.builtin import CAMERA, INSTRUCTION_ATTRIBUTE, NAME, PickPlaceEnv, make_env
from rdtflow.sim.env import ENV_ATTRIBUTE, RESET_ATTRIBUTE
from rdtflow.sim.expert import expert_actions, sample_aim_offsets
from rdtflow.sim.pick_place import PickPlaceBatch, ResetState


def write_demos(out_dir: Path, n_episodes: int, seed: int, cameras: list[str], options: dict[str, Any],
                workers: int) -> dict:
    """Roll the expert out from `n_episodes` random layouts and write each to its own file.

    Failed expert rollouts are still written (the validator and the split decide what to do
    with them, as with real teleoperation). The scenes are vectorised, so `workers` is unused.
    Returns the expert's rates (docs/formats.md, demos/expert.json).
    """
    started = time.perf_counter()
    env: PickPlaceEnv = make_env(cameras, options)
    rng = np.random.default_rng(seed)
    resets = [ResetState.from_dict(env.sample_reset(rng)) for _ in range(n_episodes)]
    family = env.settings.family
    scenes = PickPlaceBatch.from_resets(env.settings, resets)
    aim_offsets = sample_aim_offsets(n_episodes, env.settings.expert_noise, rng)

    images, qpos, actions, grasped = [], [], [], np.zeros(n_episodes, dtype=bool)
    while not scenes.done.all():
        images.append(scenes.render())
        qpos.append(scenes.qpos())
        action = expert_actions(scenes, aim_offsets, rng).astype(np.float32)
        actions.append(action)
        scenes.step(action)
        grasped |= scenes.holding | scenes.success

    out_dir.mkdir(parents=True, exist_ok=True)
    if not family:
        (out_dir / "instruction.json").write_text(json.dumps({"instruction": env.instruction}, indent=1))
    for index in progress(range(n_episodes), desc="writing demos", unit="episode"):
        length = int(scenes.steps[index])
        write_episode(
            out_dir / f"episode_{index:05d}.hdf5",
            action=np.stack([a[index] for a in actions[:length]]),
            qpos=np.stack([q[index] for q in qpos[:length]]),
            frames={CAMERA: [frame[index] for frame in images[:length]]},
            attrs=_episode_attributes(resets[index], bool(scenes.success[index]), family),
        )
    summary = {
        "env": NAME,
        "n_episodes": n_episodes,
        # An episode ends when the object is placed, so success and held-at-end coincide here.
        "expert_success_rate": float(scenes.success.mean()),
        "expert_held_at_end_rate": float(scenes.success.mean()),
        "stage_rates": {"grasped": float(grasped.mean()), "placed": float(scenes.success.mean())},
        "seconds": round(time.perf_counter() - started, 1),
    }
    if family:
        relations = np.array([reset.relation for reset in resets])
        summary["by_relation"] = {
            relation: {"n_episodes": int((relations == relation).sum()),
                       "expert_success_rate": float(scenes.success[relations == relation].mean())}
            for relation in env.settings.drawn_relations if (relations == relation).any()}
    (out_dir / "expert.json").write_text(json.dumps(summary, indent=1))
    return summary


def _episode_attributes(reset: ResetState, success: bool, family: bool) -> dict[str, str]:
    attributes = {RESET_ATTRIBUTE: json.dumps(reset.to_dict()), ENV_ATTRIBUTE: NAME, "expert_success": str(success)}
    return {**attributes, INSTRUCTION_ATTRIBUTE: reset.instruction} if family else attributes
