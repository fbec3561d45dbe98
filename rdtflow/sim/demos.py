"""Write scripted-expert demonstrations of the built-in task as agilex-layout HDF5 episodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rdtflow.data.episode import write_episode
from rdtflow.sim.expert import expert_actions, sample_aim_offsets
from rdtflow.sim.pick_place import INSTRUCTION, PickPlaceBatch, ResetState, TaskSettings, sample_reset

CAMERA = "cam_high"


def generate_demos(out_dir: Path, n_episodes: int, seed: int, settings: TaskSettings) -> int:
    """Roll the expert out from `n_episodes` random layouts and write each to its own file.

    Returns how many episodes the expert completed; failed expert rollouts are still written
    (the validator and the split decide what to do with them, as with real teleoperation).
    """
    rng = np.random.default_rng(seed)
    resets = [sample_reset(rng) for _ in range(n_episodes)]
    scenes = PickPlaceBatch.from_resets(settings, resets)
    aim_offsets = sample_aim_offsets(n_episodes, settings.expert_noise, rng)

    images, qpos, actions = [], [], []
    while not scenes.done.all():
        images.append(scenes.render())
        qpos.append(scenes.qpos())
        action = expert_actions(scenes, aim_offsets, rng).astype(np.float32)
        actions.append(action)
        scenes.step(action)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "instruction.json").write_text(json.dumps({"instruction": INSTRUCTION}, indent=1))
    for index in tqdm(range(n_episodes), desc="writing demos", unit="episode"):
        length = int(scenes.steps[index])
        write_episode(
            out_dir / f"episode_{index:05d}.hdf5",
            action=np.stack([a[index] for a in actions[:length]]),
            qpos=np.stack([q[index] for q in qpos[:length]]),
            frames={CAMERA: [frame[index] for frame in images[:length]]},
            attrs={"sim_reset": resets[index].to_json(), "expert_success": str(bool(scenes.success[index]))},
        )
    return int(scenes.success.sum())


def load_reset(attrs: dict) -> ResetState:
    """The initial state stored in an episode's root attributes, or a clear error."""
    if "sim_reset" not in attrs:
        raise KeyError(
            "episode has no 'sim_reset' attribute: closed-loop evaluation needs episodes generated "
            "by the built-in simulator (demos.generate: true)"
        )
    return ResetState.from_json(attrs["sim_reset"])
