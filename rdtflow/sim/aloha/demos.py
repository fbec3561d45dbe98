"""Write scripted-expert demonstrations of the ALOHA tasks as agilex-layout HDF5 episodes.

Each episode is recorded by replaying the expert's actions in the very environment that
evaluation uses (rdtflow.sim.aloha.env), so a recorded episode re-simulated from its stored
initial state reaches the same levels. Episode i's initial state and jitter come from the
generator seeded [seed, i], so the files do not depend on how many worker processes wrote them.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rdtflow.data.episode import write_episode
from rdtflow.progress import progress
from rdtflow.sim.aloha.env import AlohaEnv, make_env
from rdtflow.sim.aloha.expert import expert_rollout
from rdtflow.sim.aloha.tasks import INSERTION, TASKS, TRANSFER_CUBE, AlohaTask
from rdtflow.sim.env import ENV_ATTRIBUTE, RESET_ATTRIBUTE


@dataclass(frozen=True)
class EpisodeOutcome:
    """How far one recorded episode got."""

    max_level: int
    final_level: int


class EpisodeRecorder:
    """Records episodes of one task into one folder, with one environment reused for all of them."""

    def __init__(self, task: AlohaTask, out_dir: Path, seed: int, cameras: list[str], options: dict[str, Any]) -> None:
        self.task, self.out_dir, self.seed, self.cameras = task, Path(out_dir), seed, list(cameras)
        self.env: AlohaEnv = make_env(task, cameras, options)

    def record(self, index: int) -> EpisodeOutcome:
        """Plan episode `index`, replay it in the environment, and write what the cameras saw."""
        rng = np.random.default_rng([self.seed, index])
        state = self.env.sample_reset(rng)
        actions = expert_rollout(self.task, state, rng).actions
        observation = self.env.reset([state])
        frames: dict[str, list[np.ndarray]] = {camera: [] for camera in self.cameras}
        qpos, levels = [], []
        for action in actions:  # each step records what was seen before its action
            for camera in self.cameras:
                frames[camera].append(observation.frames[camera][0])
            qpos.append(observation.qpos[0])
            observation = self.env.step(action[None])
            levels.append(int(observation.level[0]))
        outcome = EpisodeOutcome(max(levels), levels[-1])
        success, held = outcome.max_level == len(self.task.stages), outcome.final_level == len(self.task.stages)
        write_episode(
            self.out_dir / f"episode_{index:05d}.hdf5",
            action=actions,
            qpos=np.stack(qpos),
            frames=frames,
            attrs={RESET_ATTRIBUTE: json.dumps(state), ENV_ATTRIBUTE: self.task.name, "expert_success": str(success),
                   "expert_held_at_end": str(held)},
        )
        return outcome


_worker_recorder: EpisodeRecorder | None = None  # a worker process's recorder, built once by _start_worker


def _start_worker(task_name: str, out_dir: str, seed: int, cameras: list[str], options: dict[str, Any]) -> None:
    global _worker_recorder
    _worker_recorder = EpisodeRecorder(TASKS[task_name], Path(out_dir), seed, cameras, options)


def _record_in_worker(index: int) -> EpisodeOutcome:
    return _worker_recorder.record(index)


def _outcomes(task: AlohaTask, out_dir: Path, n_episodes: int, seed: int, cameras: list[str], options: dict[str, Any],
              workers: int) -> Iterator[EpisodeOutcome]:
    """Record the episodes in order, here (workers 1) or in a pool of worker processes."""
    if workers <= 1:
        recorder = EpisodeRecorder(task, out_dir, seed, cameras, options)
        try:
            yield from (recorder.record(index) for index in range(n_episodes))
        finally:
            recorder.env.close()
        return
    make_env(task, cameras, options).close()  # a bad camera or option is one ConfigError here, not one per worker
    context = multiprocessing.get_context("spawn")  # no fork of a parent holding GL contexts or torch threads
    arguments = (task.name, str(out_dir), seed, list(cameras), dict(options))
    with context.Pool(min(workers, n_episodes), _start_worker, arguments) as pool:
        yield from pool.imap(_record_in_worker, range(n_episodes))


def write_demos(task: AlohaTask, out_dir: Path, n_episodes: int, seed: int, cameras: list[str], options: dict[str, Any],
                workers: int) -> dict[str, Any]:
    """Record `n_episodes` expert episodes of `task` into `out_dir`, in `workers` processes.

    Failed expert episodes are written too, marked expert_success "False" (the validator and
    the split decide what to do with them, as with real teleoperation). Returns the expert's
    rates, also written to out_dir/expert.json (docs/formats.md).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    episodes = _outcomes(task, out_dir, n_episodes, seed, cameras, options, workers)
    outcomes = list(progress(episodes, total=n_episodes, desc=f"{task.name} demos", unit="episode"))
    (out_dir / "instruction.json").write_text(json.dumps({"instruction": task.instruction}, indent=1))
    summary = _summary(task, outcomes, time.perf_counter() - started)
    (out_dir / "expert.json").write_text(json.dumps(summary, indent=1))
    return summary


def _summary(task: AlohaTask, outcomes: list[EpisodeOutcome], seconds: float) -> dict[str, Any]:
    """Success: the task's last level reached at some step. Held at end: at it after the last step
    (for the cube: the left gripper still holds it off the table)."""
    top = len(task.stages)
    max_levels = np.array([outcome.max_level for outcome in outcomes], dtype=int)
    final_levels = np.array([outcome.final_level for outcome in outcomes], dtype=int)

    def rate(reached: np.ndarray) -> float:
        return float(reached.mean()) if reached.size else 0.0

    return {
        "env": task.name,
        "n_episodes": len(outcomes),
        "expert_success_rate": rate(max_levels == top),
        "expert_held_at_end_rate": rate(final_levels == top),
        "stage_rates": {stage: rate(max_levels >= level) for level, stage in enumerate(task.stages, start=1)},
        "seconds": round(seconds, 1),
    }


def write_transfer_cube_demos(out_dir: Path, n_episodes: int, seed: int, cameras: list[str], options: dict[str, Any],
                              workers: int) -> dict[str, Any]:
    """The demo writer of sim.env aloha-transfer-cube (see write_demos)."""
    return write_demos(TRANSFER_CUBE, out_dir, n_episodes, seed, cameras, options, workers)


def write_insertion_demos(out_dir: Path, n_episodes: int, seed: int, cameras: list[str], options: dict[str, Any],
                          workers: int) -> dict[str, Any]:
    """The demo writer of sim.env aloha-insertion (see write_demos)."""
    return write_demos(INSERTION, out_dir, n_episodes, seed, cameras, options, workers)
