"""The whole ALOHA path in CI, at tiny size: scripted-expert demos of the transfer cube ->
train a few steps -> closed-loop evaluation of 2 held-out initial states in 2 simulator
worker processes (the policy sees renders through the demos' JPEG codec, as the benchmarks
evaluate), with their videos -> the report that shows them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.helpers.sizes import TINY_ENCODERS, TINY_MODEL
from tests.helpers.workflow import snakemake

SMOKE = {
    "run": "aloha-smoke",
    "sim": {"env": "aloha-transfer-cube", "options": {"image_height": 48, "image_width": 64}},
    "demos": {"generate": True, "n_episodes": 5, "workers": 2},
    "split": {"held_out": 2},
    "data": {"preset": "agilex", "cameras": ["cam_high"], "control_frequency": 50,
             "instruction": {"source": "json", "file": "instruction.json", "key": "instruction"},
             "normalization": {"mode": "min_max", "qpos_divisors": None, "action_divisors": None}},
    "encoders": TINY_ENCODERS,
    "model": {**TINY_MODEL, "pred_horizon": 8, "precompute_image_features": True},
    "hardware": {"device": "cpu", "per_device_batch": 8},
    "train": {"max_steps": 2, "checkpointing_period": 2, "effective_batch": 8, "lr_warmup_steps": 1},
    "eval": {"execute_horizon": 8, "videos": 2, "threads": 2, "open_loop_stride": 50, "frame_codec": "recorded"},
}
TRANSFER_STAGES = ["touched", "lifted", "handover begun", "handed over"]


def test_aloha_transfer_cube_runs_end_to_end(tmp_path: Path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({**SMOKE, "results_dir": str(tmp_path / "results")}))
    snakemake(config_file)
    run = tmp_path / "results" / "aloha-smoke"

    expert = json.loads((run / "demos" / "expert.json").read_text())
    assert expert["env"] == "aloha-transfer-cube" and expert["n_episodes"] == 5
    assert expert["expert_success_rate"] == 1.0 and expert["expert_held_at_end_rate"] == 1.0

    for evaluation_file in (run / "eval" / "checkpoint-2.json", run / "eval" / "baseline.json"):
        evaluation = json.loads(evaluation_file.read_text())
        assert evaluation["simulator"] == "aloha-transfer-cube" and evaluation["n_episodes"] == 2
        assert evaluation["frame_codec"] == "recorded"  # as the benchmarks evaluate
        assert list(evaluation["stage_rates"]) == TRANSFER_STAGES
        assert all(episode["steps"] == 400 for episode in evaluation["episodes"])  # ALOHA runs the full 8 s
        assert evaluation["sim_steps_per_s"] > 0 and evaluation["wall_seconds"] >= evaluation["closed_loop_seconds"]
    videos = run / "eval" / "videos" / "checkpoint-2"
    filmed = json.loads((run / "eval" / "checkpoint-2.json").read_text())["videos"]
    assert sorted(path.name for path in videos.glob("*.mp4")) == sorted(video["file"] for video in filmed)
    assert len(filmed) == 2 and all((videos / video["file"]).stat().st_size == video["bytes"] for video in filmed)
    assert (run / "report" / "index.html").read_text().count("data:video/mp4;base64,") == 2
