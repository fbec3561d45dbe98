"""Each episode layout rdtflow reads in place trains and evaluates through the whole workflow.

The episodes are the built-in task's scripted demos, rewritten in the layout under test in a
folder of the user's own (demos.generate: false): validate, split, manifest, training (frames
read in the loop), evaluation and the report's thumbnails all read that storage. ACT's files
keep the built-in task's camera, so their held-out episodes evaluate closed-loop with videos;
robomimic's and RoboTwin's name their cameras as those recorders do, which the built-in
simulator does not render, so they evaluate open-loop, as a researcher's own recordings do.
A single-arm robot's synthetic episodes (seven columns in RDT's right-arm slots, a wrist
camera in the right-wrist slot) complete the set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from rdtflow.sim.demos import write_demos
from tests.helpers.browser import ARTIFACTS, view_page
from tests.helpers.episodes import write_instruction_json, write_synthetic_episode
from tests.helpers.layouts import act_layout, robomimic_layout, robotwin_layout, task_folders
from tests.helpers.workflow import snakemake, write_config

N_EPISODES = 10
BUILTIN_STATES = ["right_eef_pos_x", "right_eef_pos_y", "right_gripper_open"]
TASKS = {"pick_place": "pick up the cube and place it on the goal", "fetch": "bring the cube to the marked spot"}
SINGLE_ARM_STATES = [*(f"right_arm_joint_{joint}_pos" for joint in range(6)), "right_gripper_open"]


class Layout:
    """How to store the demos, the data config that reads them, and what the run must show."""

    def __init__(self, store: Callable[[Path], Path], data: dict, held_out: object = 4, closed_loop: bool = False) -> None:
        self.store, self.data, self.held_out, self.closed_loop = store, data, held_out, closed_loop


LAYOUTS = {
    # ACT's raw frames, and two tasks in their own folders with their own instructions.
    "act_raw_frames_two_tasks": Layout(lambda folder: task_folders(act_layout(folder), TASKS), {}, closed_loop=True),
    "robomimic_multi_demo": Layout(
        lambda folder: robomimic_layout(folder, valid=3),
        {"preset": "robomimic", "qpos_key": ["obs/robot0_eef_pos", "obs/robot0_gripper_qpos"],
         "state_names": BUILTIN_STATES, "cameras": {"exterior": "agentview_image", "wrist": None}},
        held_out={"mask": "valid"},
    ),
    "robotwin": Layout(
        robotwin_layout,
        {"preset": "robotwin", "state_names": BUILTIN_STATES, "min_episode_steps": 10,
         "cameras": {"exterior": "head_camera/rgb", "right_wrist": None, "left_wrist": None}},
    ),
}


def run_workflow(tmp_path: Path, demo_dir: Path, data: dict, held_out: object, closed_loop: bool) -> Path:
    """The reduced workflow on a folder of the user's episodes; returns the run folder."""
    config = write_config(
        tmp_path / "config.yaml", tmp_path / "results", demos={"generate": False, "dir": str(demo_dir)},
        sim={"env": "builtin-pick-place" if closed_loop else None}, data=data, split={"held_out": held_out},
        model={"precompute_image_features": False}, train={"max_steps": 2, "checkpointing_period": 2},
    )
    snakemake(config)
    return tmp_path / "results" / "e2e"


def check_evaluated(run: Path, n_valid: int, held_out: int, closed_loop: bool) -> dict:
    """Validation, split, the checkpoint's evaluation and the report, as every layout must leave them."""
    assert json.loads((run / "data" / "validation.json").read_text())["n_valid"] == n_valid
    assert (pd.read_parquet(run / "data" / "index.parquet")["split"] == "held_out").sum() == held_out
    evaluation = json.loads((run / "eval" / "checkpoint-2.json").read_text())
    assert evaluation["n_episodes"] == held_out and evaluation["open_loop_mse"] > 0
    if closed_loop:
        assert 0.0 <= evaluation["success_rate"] <= 1.0
        assert len(evaluation["videos"]) == 3 and all(video["bytes"] > 0 for video in evaluation["videos"])
    html = (run / "report" / "index.html").read_text()
    assert "Frames of " in html and html.count("data:image/jpeg;base64,") >= 3
    return evaluation


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_a_layout_trains_and_evaluates_through_the_workflow(tmp_path: Path, name: str) -> None:
    layout = LAYOUTS[name]
    recorded = tmp_path / "recorded"
    write_demos(recorded, N_EPISODES, seed=0, cameras=["cam_high"], options={"image_size": 32}, workers=1)
    demo_dir = layout.store(recorded)

    run = run_workflow(tmp_path, demo_dir, layout.data, layout.held_out, layout.closed_loop)

    held_out = 3 if isinstance(layout.held_out, dict) else layout.held_out
    evaluation = check_evaluated(run, N_EPISODES, held_out, layout.closed_loop)
    if name == "robomimic_multi_demo":  # robomimic's /mask/valid is the held-out set; ids name the demo
        assert [e["episode_id"] for e in evaluation["episodes"]] == [f"demos/demo_{n}" for n in (7, 8, 9)]
    if name == "robotwin":  # each episode's own instructions/episodeN.json, its "seen" list
        instructions = pd.read_parquet(run / "data" / "index.parquet")["instruction"]
        assert instructions.nunique() == 1 and not instructions.str.endswith("please").any()
    if name == "act_raw_frames_two_tasks":
        index = pd.read_parquet(run / "data" / "index.parquet")
        assert dict(index.groupby("task")["instruction"].first()) == {task: text for task, text in TASKS.items()}
        assert sorted(evaluation["by_task"]) == sorted(TASKS)
        assert sum(task["n_episodes"] for task in evaluation["by_task"].values()) == held_out
        for task in evaluation["by_task"].values():
            assert task["success"]["n"] == task["n_episodes"] and task["open_loop_mse"] > 0
        html = (run / "report" / "index.html").read_text()
        assert '<section id="tasks">' in html and all(f"<tr><td>{task}</td>" in html for task in TASKS)
        view = view_page(run / "report" / "index.html", 390, ARTIFACTS / "report-two-tasks-390px.png", ("#tasks",))
        assert view.console_errors == [] and view.failed_requests == [] and view.scroll_width <= view.inner_width
        assert all(task in view.texts["#tasks"] for task in TASKS)  # the per-task table, on a phone


def test_a_single_arm_robot_trains_and_evaluates_through_the_workflow(tmp_path: Path) -> None:
    demo_dir = tmp_path / "single_arm"
    for index in range(N_EPISODES):
        write_synthetic_episode(demo_dir / f"episode_{index}.hdf5", n_steps=30, n_cols=7, cameras=("front", "wrist"),
                                seed=index)
    write_instruction_json(demo_dir)
    data = {"state_names": SINGLE_ARM_STATES, "cameras": {"exterior": "front", "wrist": "wrist"}, "control_frequency": 15}

    run = run_workflow(tmp_path, demo_dir, data, held_out=3, closed_loop=False)

    evaluation = check_evaluated(run, N_EPISODES, 3, closed_loop=False)
    assert list(evaluation["open_loop_mse_by_group"]) == ["arm joints", "grippers"]  # the right arm's slots, read as such
    stats = json.loads((run / "data" / "stats.json").read_text())
    assert stats["state_names"] == SINGLE_ARM_STATES and len(stats["action"]["mean"]) == 7
