"""End-to-end Snakemake run at reduced scale, and the caching behaviour of the workflow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.sizes import TINY_ENCODERS, TINY_MODEL

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]

# Rules call the `rdtflow` and `accelerate` commands installed beside this Python.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

# Small enough to run in about a minute on two cores; same code path as the default.
REDUCED = {
    "run": "e2e",
    "demos": {"generate": True, "n_episodes": 14, "sim": {"image_size": 32}},
    "split": {"held_out": 4},
    "encoders": TINY_ENCODERS,
    "model": {**TINY_MODEL, "pred_horizon": 8},
    "hardware": {"device": "cpu", "per_device_batch": 4},  # accumulation 2, derived
    "train": {"max_steps": 6, "checkpointing_period": 2, "effective_batch": 8, "lr_warmup_steps": 1,
              "checkpoints_total_limit": 2},
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
        config[section] = {**config[section], **values}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("workflow")
    config_file = write_config(root / "config.yaml", root / "results")
    snakemake(config_file)
    return config_file, root / "results" / "e2e"


def test_every_output_exists_and_is_well_formed(finished_run):
    _, run = finished_run
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
    for step in (2, 4, 6):
        checkpoint = run / "train" / f"checkpoint-{step}"
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        assert state["step"] == step and state["effective_batch"] == 8
        assert len(pd.read_csv(checkpoint / "train_log.csv")) == 2  # two optimizer steps, four micro-batches
        evaluation = json.loads((run / "eval" / f"checkpoint-{step}.json").read_text())
        assert evaluation["step"] == step and evaluation["n_episodes"] == 4
        assert 0.0 <= evaluation["success_rate"] <= 1.0 and evaluation["open_loop_mse"] > 0
        assert len(evaluation["episodes"]) == 4
    with_weights = [step for step in (2, 4, 6) if (run / "train" / f"checkpoint-{step}" / "model.safetensors").is_file()]
    assert len(with_weights) == 2 and 6 in with_weights  # checkpoints_total_limit 2 keeps best and latest
    pruned = ({2, 4} - set(with_weights)).pop()
    assert (run / "train" / f"checkpoint-{pruned}" / "pruned.json").is_file()
    baseline = json.loads((run / "eval" / "baseline.json").read_text())
    assert baseline["policy"] == "mean-trajectory baseline" and baseline["n_episodes"] == 4
    html = (run / "report" / "index.html").read_text()
    assert "data:image/png;base64," in html and "checkpoint" in html.lower()
    assert not list((run / "train").glob("*.tmp"))


def test_second_run_has_nothing_to_do(finished_run):
    config_file, _ = finished_run
    assert planned_rules(config_file) == set()


def test_evaluation_setting_reruns_only_evaluation_and_report(finished_run, tmp_path):
    config_file, run = finished_run
    changed = write_config(tmp_path / "eval.yaml", run.parent, eval={"execute_horizon": 2})
    assert planned_rules(changed) == {"eval", "baseline", "report", "all"}


def test_training_setting_does_not_rerun_data_stages(finished_run, tmp_path):
    config_file, run = finished_run
    changed = write_config(tmp_path / "train.yaml", run.parent, train={"learning_rate": 0.001})
    rules = planned_rules(changed)
    assert {"train", "eval", "report"} <= rules
    assert rules.isdisjoint({"demos", "validate", "split", "manifest", "encode_lang", "encoders", "baseline"})
