"""What `sim.env` names: a built-in environment, or a factory of the user's own, and how to build it.

Each entry is a factory path ("module:function") rather than an imported class, so that the
physics simulators (and their heavy imports) load only where they run, and so that worker
processes can build their own copy from the same text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rdtflow.errors import ConfigError, RdtflowError
from rdtflow.sim.env import ENV_ATTRIBUTE, RESET_ATTRIBUTE, SimEnv, check_observation
from rdtflow.sim.factories import DOCS, import_object


@dataclass(frozen=True)
class EnvEntry:
    factory: str  # "module:function" called as function(cameras, options) -> SimEnv
    demos: str | None  # "module:function" writing scripted-expert demos, or None (no expert)
    parallel: bool  # worth stepping in worker processes (a physics engine; the built-in task is vectorised)


BUILTIN_ENVS: dict[str, EnvEntry] = {
    "builtin-pick-place": EnvEntry("rdtflow.sim.builtin:make_env", "rdtflow.sim.demos:write_demos", parallel=False),
    "aloha-transfer-cube": EnvEntry("rdtflow.sim.aloha.env:make_transfer_cube",
                                    "rdtflow.sim.aloha.demos:write_transfer_cube_demos", parallel=True),
    "aloha-insertion": EnvEntry("rdtflow.sim.aloha.env:make_insertion",
                                "rdtflow.sim.aloha.demos:write_insertion_demos", parallel=True),
}


def env_entry(name: str) -> EnvEntry:
    """The entry sim.env names; a user's "package.module:factory" has no scripted expert."""
    if name in BUILTIN_ENVS:
        return BUILTIN_ENVS[name]
    if ":" not in name:
        raise ConfigError(
            f"sim.env '{name}' is not a known simulator: use one of {', '.join(BUILTIN_ENVS)}, "
            f"\"package.module:factory\" for your own ({DOCS}), or null for none"
        )
    return EnvEntry(name, None, parallel=True)


def build_env(sim_cfg: dict, cameras: list[str], workers: int = 1) -> SimEnv:
    """The environment of sim.env for these cameras, stepped in `workers` processes where that pays."""
    entry = env_entry(sim_cfg["env"])
    if workers > 1 and entry.parallel:
        from rdtflow.sim.workers import ParallelEnv

        return ParallelEnv(entry.factory, cameras, sim_cfg["options"], workers)
    return import_object(entry.factory, "sim.env")(list(cameras), dict(sim_cfg["options"]))


def demo_writer(sim_cfg: dict) -> Callable:
    """The scripted-expert demo writer of sim.env, or a ConfigError when it has none."""
    name = sim_cfg["env"]
    entry = env_entry(name) if name is not None else None
    if entry is None or entry.demos is None:
        raise ConfigError(
            f"demos.generate: true needs a simulator with a scripted expert, and sim.env is {json.dumps(name)}: "
            f"set sim.env to one of {', '.join(BUILTIN_ENVS)}, or record demos and set demos.generate: false "
            "with demos.dir"
        )
    return import_object(entry.demos, "sim.env")


def probe_env(sim_cfg: dict, cameras: list[str]) -> None:
    """Build the environment and reset one episode: a factory that does not keep the contract
    (docs/simulators.md) stops the run here, before any job, with what it got wrong."""
    name = sim_cfg["env"]
    env = build_env(sim_cfg, cameras)
    try:
        missing = [attribute for attribute in ("stages", "max_steps", "instruction", "sample_reset", "reset", "step",
                                               "close") if not hasattr(env, attribute)]
        if missing:
            raise ConfigError(f"sim.env '{name}': its environment has no {', '.join(missing)} ({DOCS})")
        state = env.sample_reset(np.random.default_rng(0))
        try:
            json.dumps(state)
        except TypeError as error:
            raise ConfigError(f"sim.env '{name}': sample_reset() returned a state JSON cannot store ({error})") from None
        problems = check_observation(env.reset([state]), cameras, 1, len(env.stages))
        if problems:
            raise ConfigError(f"sim.env '{name}': reset() broke the observation contract ({DOCS}): {'; '.join(problems)}")
    finally:
        env.close()


def reset_states(attributes: list[dict[str, Any]], names: list[str], sim_env: str) -> list[dict[str, Any]]:
    """Each episode's stored initial state (RESET_ATTRIBUTE), or an error naming the file and the fix."""
    states = []
    for attrs, name in zip(attributes, names):
        if RESET_ATTRIBUTE not in attrs:
            raise RdtflowError(
                f"{name} has no '{RESET_ATTRIBUTE}' attribute: closed-loop evaluation re-simulates each held-out "
                f"episode from the initial state it stores ({DOCS}); store it, or set sim.env: null to measure "
                "open-loop action error only"
            )
        recorded_by = attrs.get(ENV_ATTRIBUTE)
        if recorded_by is not None and recorded_by != sim_env:
            raise RdtflowError(f"{name} was recorded in sim.env '{recorded_by}', but this run evaluates in '{sim_env}'")
        states.append(json.loads(attrs[RESET_ATTRIBUTE]))
    return states
