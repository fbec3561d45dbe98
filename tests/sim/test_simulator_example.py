"""The worked example of docs/simulators.md, run as the page prints it: a user's own simulator
named by "package.module:factory" passes the start-up check, records demos, and evaluates the
blind baseline closed-loop through the workflow in worker processes, with a video."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from rdtflow.config import validate_config
from rdtflow.data.episode import write_episode
from rdtflow.sim.env import RESET_ATTRIBUTE, check_observation
from tests.helpers.workflow import ENV, REPO, SNAKEMAKE

DOC = REPO / "docs" / "simulators.md"
FACTORY = "reach_example:make_env"


def documented_example() -> str:
    """The python block of docs/simulators.md that starts with '# reach_example.py'."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    [example] = [block for block in blocks if block.startswith("# reach_example.py")]
    return example


def documented_config() -> dict:
    """The YAML block after the example: the config keys the page tells a user to write."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return yaml.safe_load(blocks[-1])


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The example module on sys.path and on PYTHONPATH (for Snakemake and the worker processes)."""
    folder = tmp_path / "user_sims"
    folder.mkdir()
    (folder / "reach_example.py").write_text(documented_example())
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
    yield importlib.import_module("reach_example")
    del __import__("sys").modules["reach_example"]


def record_demos(module, folder: Path, count: int) -> None:
    """Episodes a user would record: a straight-line controller, its initial state stored."""
    env = module.make_env(["cam_high"], {})
    rng = np.random.default_rng(0)
    states = [env.sample_reset(rng) for _ in range(count)]
    observation = env.reset(states)
    frames, qpos, actions = [], [], []
    while not observation.done.all():
        target = np.array([state["target"] for state in states])
        action = (observation.qpos + np.clip(target - observation.qpos, -0.1, 0.1)).astype(np.float32)
        frames.append(observation.frames["cam_high"])
        qpos.append(observation.qpos)
        actions.append(action)
        observation = env.step(action)
    steps = env.steps
    folder.mkdir(parents=True)
    (folder / "instruction.json").write_text(json.dumps({"instruction": env.instruction}))
    for index, state in enumerate(states):
        length = int(steps[index])
        write_episode(folder / f"reach_{index:02d}.hdf5", action=np.stack([a[index] for a in actions[:length]]),
                      qpos=np.stack([q[index] for q in qpos[:length]]),
                      frames={"cam_high": [f[index] for f in frames[:length]]},
                      attrs={RESET_ATTRIBUTE: json.dumps(state)})


def run_config(tmp_path: Path) -> dict:
    documented = documented_config()
    return {
        "run": "reach", "results_dir": str(tmp_path / "results"),
        **documented,
        "demos": {**documented["demos"], "dir": str(tmp_path / "demos")},
        "data": {**documented["data"], "min_episode_steps": 3},
        "split": {"held_out": 4},
        "eval": {"threads": 2, "videos": 2},
    }


def test_the_example_keeps_the_contract(example, tmp_path: Path):
    env = example.make_env(["cam_high"], {"image_size": 24})
    state = env.sample_reset(np.random.default_rng(1))
    assert check_observation(env.reset([state, state]), ["cam_high"], 2, len(env.stages)) == []
    assert check_observation(env.step(np.zeros((2, 2))), ["cam_high"], 2, len(env.stages)) == []
    record_demos(example, tmp_path / "demos", 6)
    validate_config(run_config(tmp_path), check_files=True)  # the start-up check builds and resets it


def test_the_workflow_evaluates_the_baseline_in_the_example_in_worker_processes(example, tmp_path: Path):
    record_demos(example, tmp_path / "demos", 12)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(run_config(tmp_path)))
    target = tmp_path / "results" / "reach" / "eval" / "baseline.json"
    result = subprocess.run([*SNAKEMAKE, str(target), "--configfile", str(config_file)], cwd=REPO,
                            capture_output=True, text=True, env={**ENV, "PYTHONPATH": os.environ["PYTHONPATH"]})
    assert result.returncode == 0, result.stdout + result.stderr

    baseline = json.loads(target.read_text())
    assert baseline["simulator"] == FACTORY and baseline["n_episodes"] == 4
    assert list(baseline["stage_rates"]) == ["reached"]
    low, high = baseline["success_interval"]
    assert 0 <= low <= baseline["success_rate"] <= high <= 1
    assert {episode["stage"] for episode in baseline["episodes"]} <= {None, "reached"}
    videos = target.parent / "videos" / "baseline"
    assert sorted(video["file"] for video in baseline["videos"]) == sorted(path.name for path in videos.glob("*.mp4"))
    assert len(baseline["videos"]) == 2 and all((videos / v["file"]).read_bytes()[4:8] == b"ftyp" for v in baseline["videos"])
