"""Stepping a batch of episodes in worker processes (config key eval.threads).

A physics simulator steps one episode at a time on one core, so a batch of held-out episodes
is split into contiguous shards, one per worker process, each holding its own environment
built from the same factory path. The shards step concurrently while the policy waits; the
batch the caller sees is the same as one environment's, in the same order.
"""

from __future__ import annotations

import multiprocessing
import traceback
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from rdtflow.errors import RdtflowError
from rdtflow.sim.env import SimObservation
from rdtflow.sim.factories import import_object


def _serve(connection: Connection, factory: str, cameras: list[str], options: dict[str, Any]) -> None:
    """A worker's loop: build the environment, then answer (command, argument) messages."""
    try:
        env = import_object(factory, "sim.env")(cameras, options)
        connection.send(("ok", (tuple(env.stages), env.max_steps, env.instruction)))
        while True:
            command, argument = connection.recv()
            if command == "close":
                env.close()
                return
            if command == "sample_reset":  # the generator comes back too: its state has advanced
                connection.send(("ok", (env.sample_reset(argument), argument)))
            else:
                connection.send(("ok", getattr(env, command)(argument)))
    except Exception:  # the parent re-raises it with the worker's traceback
        connection.send(("error", traceback.format_exc()))


class ParallelEnv:
    """A SimEnv whose batch is split over `workers` processes (no more than there are episodes)."""

    def __init__(self, factory: str, cameras: list[str], options: dict[str, Any], workers: int) -> None:
        self.factory, self.cameras, self.options, self.workers = factory, list(cameras), dict(options), workers
        self.connections: list[Connection] = []
        self.processes: list[multiprocessing.Process] = []
        self.shards: list[slice] = []
        self._start(1)  # one worker tells the task's stages and step limit
        self.stages, self.max_steps, self.instruction = self._info

    def _start(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a parent holding torch threads or GL contexts
        while len(self.connections) < count:
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, self.factory, self.cameras, self.options), daemon=True)
            process.start()
            self.connections.append(parent)
            self.processes.append(process)
            self._info = self._receive(parent)

    def _receive(self, connection: Connection) -> Any:
        status, value = connection.recv()
        if status == "error":
            self.close()
            raise RdtflowError(f"a simulator worker ({self.factory}) failed:\n{value}")
        return value

    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        self.connections[0].send(("sample_reset", rng))
        state, advanced = self._receive(self.connections[0])
        rng.bit_generator.state = advanced.bit_generator.state
        return state

    def reset(self, states: list[dict[str, Any]]) -> SimObservation:
        count = min(self.workers, len(states))
        self._start(count)
        bounds = np.linspace(0, len(states), count + 1).round().astype(int)
        self.shards = [slice(start, end) for start, end in zip(bounds[:-1], bounds[1:])]
        for connection, shard in zip(self.connections, self.shards):
            connection.send(("reset", states[shard]))
        return self._gather()

    def step(self, actions: np.ndarray) -> SimObservation:
        for connection, shard in zip(self.connections, self.shards):
            connection.send(("step", actions[shard]))
        return self._gather()

    def _gather(self) -> SimObservation:
        parts = [self._receive(connection) for connection in self.connections[: len(self.shards)]]
        return SimObservation(
            frames={camera: np.concatenate([part.frames[camera] for part in parts]) for camera in parts[0].frames},
            qpos=np.concatenate([part.qpos for part in parts]),
            level=np.concatenate([part.level for part in parts]),
            done=np.concatenate([part.done for part in parts]),
        )

    def close(self) -> None:
        for connection in self.connections:
            try:
                connection.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        self.connections, self.processes = [], []
