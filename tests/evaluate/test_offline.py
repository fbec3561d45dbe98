"""Data without a simulator (the agilex preset): validate -> manifest -> train -> offline evaluation.

Three cameras of non-square JPEG frames, 14-d joints in RDT's unified vector in raw units
with the grippers rescaled, a still start that is trimmed, two frames of history, the
rdt-1b token layout at tiny width, and an evaluation that reports open-loop action error
per episode and per dimension group, with no success rate, never an invented one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rdtflow.cli import main as rdtflow
from rdtflow.config import validate_config
from rdtflow.data.cameras import recorded_cameras
from rdtflow.data.episode import write_episode
from tests.helpers.sizes import TINY_ENCODERS, TINY_MODEL

AGILEX_DATA = validate_config({"run": "x", "data": {"preset": "agilex"}})["data"]
STILL_STEPS = 3


def write_agilex_episodes(folder: Path, count: int, steps: int = 14, scale: float = 1.0) -> None:
    """`count` episodes of random joint motion; `scale` changes their units (e.g. 10: radians -> 0.1 rad)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    (folder / AGILEX_DATA["instruction"]["file"]).write_text(json.dumps({"instruction": ["fold the towel", "fold it"]}))
    for index in range(count):
        qpos = (scale * np.cumsum(rng.normal(0, 0.05, (steps, 14)), axis=0)).astype(np.float32)
        qpos[:STILL_STEPS] = qpos[0]  # the robot idles before the demonstration starts
        frames = {camera: [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(steps)]
                  for camera in recorded_cameras(AGILEX_DATA["cameras"])}
        write_episode(folder / f"episode_{index}.hdf5", action=np.roll(qpos, -1, axis=0), qpos=qpos, frames=frames)


def test_agilex_episodes_train_and_evaluate_offline(tmp_path):
    write_agilex_episodes(tmp_path / "demos", 6)
    config = {
        "run": "agilex",
        "results_dir": str(tmp_path / "results"),
        "hardware": {"device": "cpu", "per_device_batch": 4},
        "demos": {"generate": False, "dir": str(tmp_path / "demos")},
        "data": {"preset": "agilex", "min_episode_steps": 5},
        "split": {"held_out": 2},
        "encoders": TINY_ENCODERS,
        "model": {**TINY_MODEL, "pred_horizon": 4, "img_history_size": 2},
        "train": {"max_steps": 2, "checkpointing_period": 2, "effective_batch": 4, "lr_warmup_steps": 1,
                  "loss": "upstream",  # the published recipe, as the paper config runs it
                  "augment": {"recipe": "upstream", "image": True, "state_noise_snr_db": 40, "cond_mask_prob": 0.1,
                              "external_camera_mask_prob": 0.1}},
        "eval": {"open_loop_stride": 3},
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    run = tmp_path / "results" / "agilex"
    for stage in ("encoders", "validate", "split", "manifest", "encode-lang", "plan"):
        assert rdtflow([stage, "--config", str(config_file)]) == 0
    assert rdtflow(["train", "--config", str(config_file), "--until-step", "2"]) == 0
    manifest = pd.read_parquet(run / "data" / "manifest.parquet")
    assert manifest.groupby("episode_id")["step"].min().eq(STILL_STEPS).all()
    stats = json.loads((run / "data" / "stats.json").read_text())
    assert stats["normalization"]["mode"] == "raw" and stats["normalization"]["action_divisors"][6] == 11.8997
    checkpoint = run / "train" / "checkpoint-2"
    rdt_config = json.loads((checkpoint / "config.json").read_text())
    # 2 frames x 3 cameras x (32 px / patch 8)^2 = 16 patches
    assert rdt_config["img_cond_len"] == 2 * 3 * 16 and rdt_config["img_pos_embed_config"] == [["image", [2, 3, -16]]]
    started = time.perf_counter()
    assert rdtflow(["eval", "--config", str(config_file), "--step", "2"]) == 0  # checkpoint-2 -> eval/checkpoint-2.json
    evaluation_seconds = time.perf_counter() - started
    assert rdtflow(["baseline", "--config", str(config_file)]) == 0  # -> eval/baseline.json

    result = json.loads((run / "eval" / "checkpoint-2.json").read_text())
    assert result["simulator"] is None and result["frame_codec"] is None
    assert result["success_rate"] is None and "success_interval" not in result
    assert set(result["open_loop_mse_by_group"]) == {"arm joints", "grippers"}
    assert len(result["episodes"]) == 2 and all(e["open_loop_mse"] > 0 for e in result["episodes"])
    assert "success" not in result["episodes"][0]
    assert 0 < result["wall_seconds"] <= evaluation_seconds

    assert rdtflow(["report", "--config", str(config_file)]) == 0
    page = (run / "report" / "index.html").read_text()
    assert "no simulator: success rate not measured" in page and "MSE grippers" in page


def test_open_loop_error_is_in_min_max_units_whatever_the_units_of_the_data(tmp_path):
    """The same episodes in units 10x smaller: raw training units change 10x, the reported error
    (of the blind baseline, which does not learn) stays the same."""
    errors = {}
    for scale in (1.0, 10.0):
        folder = tmp_path / f"scale-{scale:g}"
        write_agilex_episodes(folder / "demos", 6, scale=scale)
        config = {"run": "agilex", "results_dir": str(folder / "results"), "split": {"held_out": 2},
                  "demos": {"generate": False, "dir": str(folder / "demos")},
                  "data": {"preset": "agilex", "min_episode_steps": 5}, "model": {"pred_horizon": 4}}
        config_file = folder / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        for stage in ("validate", "split", "manifest", "baseline"):
            assert rdtflow([stage, "--config", str(config_file)]) == 0
        errors[scale] = json.loads((folder / "results" / "agilex" / "eval" / "baseline.json").read_text())["open_loop_mse"]
    assert errors[10.0] == pytest.approx(errors[1.0], rel=1e-4) and errors[1.0] > 0
