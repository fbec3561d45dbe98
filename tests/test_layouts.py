"""Each episode layout rdtflow reads in place trains and evaluates through the whole workflow.

The episodes are the built-in task's scripted demos, stored in the layout under test in a
folder of the user's own (demos.generate: false), so the held-out ones keep their initial
states and evaluate closed-loop: validate, split, manifest, training (frames read in the
loop), evaluation with expert videos, and the report's thumbnails all read that storage.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pandas as pd
import pytest

from rdtflow.sim.demos import write_demos
from tests.helpers.episodes import store_frames_raw
from tests.helpers.workflow import snakemake, write_config

N_EPISODES = 10
LAYOUTS = {"act_raw_frames": store_frames_raw}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_layout_trains_and_evaluates_through_the_workflow(tmp_path: Path, layout: str) -> None:
    demo_dir = tmp_path / "recorded"
    write_demos(demo_dir, N_EPISODES, seed=0, cameras=["cam_high"], options={"image_size": 32}, workers=1)
    for path in sorted(demo_dir.glob("*.hdf5")):
        LAYOUTS[layout](path)
    config = write_config(tmp_path / "config.yaml", tmp_path / "results", demos={"generate": False, "dir": str(demo_dir)},
                          model={"precompute_image_features": False}, train={"max_steps": 2, "checkpointing_period": 2})

    snakemake(config)

    run = tmp_path / "results" / "e2e"
    with h5py.File(next(demo_dir.glob("*.hdf5"))) as h5:
        assert h5["/observations/images/cam_high"].ndim == 4  # raw pixels: the files were read as stored
    assert json.loads((run / "data" / "validation.json").read_text())["n_valid"] == N_EPISODES
    assert (pd.read_parquet(run / "data" / "index.parquet")["split"] == "held_out").sum() == 4
    evaluation = json.loads((run / "eval" / "checkpoint-2.json").read_text())
    assert evaluation["n_episodes"] == 4 and 0.0 <= evaluation["success_rate"] <= 1.0
    assert len(evaluation["videos"]) == 3 and all(video["bytes"] > 0 for video in evaluation["videos"])
    html = (run / "report" / "index.html").read_text()
    assert "Frames of " in html and html.count("data:image/jpeg;base64,") >= 3
