"""Running the workflow in tests: a reduced config on two cores, dry runs, the outputs it must leave."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from tests.helpers.sizes import TINY_ENCODERS, TINY_MODEL

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]

# Rules call the `rdtflow` and `accelerate` commands installed beside this Python. Hugging
# Face libraries offline: a stage that tried to download anything would fail its test.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}

# Small enough to run in about a minute on two cores; same code path as the default.
REDUCED = {
    "run": "e2e",
    "sim": {"env": "builtin-pick-place", "options": {"image_size": 32}},
    "demos": {"generate": True, "n_episodes": 14},
    "split": {"held_out": 4},
    "encoders": TINY_ENCODERS,
    "model": {**TINY_MODEL, "pred_horizon": 8, "precompute_image_features": True},
    "hardware": {"device": "cpu", "per_device_batch": 4},  # accumulation 2, derived
    "train": {"max_steps": 6, "checkpointing_period": 2, "effective_batch": 8, "lr_warmup_steps": 1,
              "checkpoints_total_limit": 2, "ema_decay": 0.9},
    "eval": {"execute_horizon": 4, "open_loop_stride": 8},
}


def snakemake(config_file: Path, *args: str) -> str:
    result = subprocess.run(
        [*SNAKEMAKE, "--configfile", str(config_file), *args], cwd=REPO, capture_output=True, text=True, env=ENV
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def planned_rules(config_file: Path) -> set[str]:
    """Rules a dry run would execute (empty when there is nothing to be done)."""
    output = snakemake(config_file, "--dry-run")
    if "Nothing to be done" in output:
        return set()
    table = output.split("Job stats:")[1].split("total")[0]
    return {match.group(1) for match in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.MULTILINE)} - {"job"}


def write_config(path: Path, results: Path, **changes: dict) -> Path:
    config = json.loads(json.dumps(REDUCED))
    config["results_dir"] = str(results)
    for section, values in changes.items():
        config[section] = {**config.get(section, {}), **values}
    path.write_text(yaml.safe_dump(config))
    return path


def check_reduced_outputs(run: Path) -> None:
    """Every output of a finished REDUCED run exists and is well formed."""
    validation = json.loads((run / "data" / "validation.json").read_text())
    assert validation["n_valid"] == 14 and validation["n_rejected"] == 0
    index = pd.read_parquet(run / "data" / "index.parquet")
    assert (index["split"] == "held_out").sum() == 4 and (index["split"] == "train").sum() == 10
    manifest = pd.read_parquet(run / "data" / "manifest.parquet")
    train_steps = index.loc[index["split"] == "train"]
    assert len(manifest) == int((train_steps["n_steps"] - train_steps["first_moving_step"]).sum())
    assert (run / "lang" / "embeddings.safetensors").is_file()
    plan = json.loads((run / "plan.json").read_text())
    assert plan["layout"] == {"micro_batch": 4, "accumulation": 2, "processes": 1, "nodes": 1}
    assert plan["epochs"] == 6 * 8 / len(manifest) and f"epochs             {plan['epochs']:.2f} over" in (
        run / "plan.txt").read_text()
    assert plan["norm"].startswith("rms")  # model.norm auto, from scratch
    for step in (2, 4, 6):
        checkpoint = run / "train" / f"checkpoint-{step}"
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        assert json.loads((checkpoint / "config.json").read_text())["rdt"]["norm"] == "rms"
        assert state["step"] == step and state["effective_batch"] == 8
        assert state["samples_seen"] == step * 8 and state["epoch"] == step * 8 / len(manifest)
        log = pd.read_csv(checkpoint / "train_log.csv")
        assert list(log["step"]) == [step - 1, step] and (log["samples_per_s"] > 0).all()  # 2 steps, 4 micro-batches
        assert (log["grad_norm"] > 0).all() and state["machine"]["cores"] >= 1
        assert list(log["epoch"]) == [s * 8 / len(manifest) for s in log["step"]]
        evaluation = json.loads((run / "eval" / f"checkpoint-{step}.json").read_text())
        assert evaluation["step"] == step and evaluation["n_episodes"] == 4
        assert 0.0 <= evaluation["success_rate"] <= 1.0 and evaluation["open_loop_mse"] > 0
        low, high = evaluation["success_interval"]
        assert low <= evaluation["success_rate"] <= high and list(evaluation["stage_rates"]) == ["grasped", "placed"]
        assert len(evaluation["episodes"]) == 4 and {"success", "held_at_end", "stage", "steps"} <= set(evaluation["episodes"][0])
        videos = run / "eval" / "videos" / f"checkpoint-{step}"
        assert sorted(v["file"] for v in evaluation["videos"]) == sorted(p.name for p in videos.glob("*.mp4"))
        assert len(evaluation["videos"]) == 3  # eval.videos' default, of 4 held-out episodes
    with_weights = [step for step in (2, 4, 6) if (run / "train" / f"checkpoint-{step}" / "model.safetensors").is_file()]
    assert all((run / "train" / f"checkpoint-{step}" / "ema" / "model.safetensors").is_file() for step in with_weights)
    assert len(with_weights) == 2 and 6 in with_weights  # checkpoints_total_limit 2 keeps best and latest
    pruned = ({2, 4} - set(with_weights)).pop()
    assert (run / "train" / f"checkpoint-{pruned}" / "pruned.json").is_file()
    baseline = json.loads((run / "eval" / "baseline.json").read_text())
    assert baseline["policy"] == "mean-trajectory baseline" and baseline["n_episodes"] == 4
    html = (run / "report" / "index.html").read_text()
    assert "data:image/png;base64," in html and "checkpoint" in html.lower()
    assert html.count("data:video/mp4;base64,") == 3  # the best checkpoint's rollouts
    provenance = json.loads((run / "provenance.json").read_text())
    assert [(stage["stage"], stage["jobs"]) for stage in provenance["stages"]] == [
        ("demos", 1), ("encoders", 1), ("validate", 1), ("split", 1), ("manifest", 1), ("encode_lang", 1),
        ("encode_images", 1), ("plan", 1), ("train", 3), ("eval", 3), ("retention", 3), ("baseline", 1)]
    code = provenance["code"]
    assert (code["commit"] or code["note"]) in html and provenance["config_sha256"] in html  # a commit where git is
    assert not list((run / "train").glob("*.tmp"))
