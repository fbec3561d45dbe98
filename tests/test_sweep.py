"""Sweeps: one run per combination, shared stages computed once, a run added later computes only
itself, and the comparison page of the runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rdtflow.errors import ConfigError
from rdtflow.stages import SHARED_STAGES, stage_config, stage_files, stage_paths
from rdtflow.sweep import expand_sweep
from tests.helpers.browser import ARTIFACTS, view_page
from tests.helpers.workflow import REDUCED, snakemake

DATA_STAGES = {"demos", "encoders", "validate", "split", "manifest", "encode_lang", "encode_images", "baseline"}


def sweep_config(results: Path, sweep: dict, **changes: dict) -> dict:
    config = json.loads(json.dumps(REDUCED))
    for section, values in changes.items():
        config[section] = {**config[section], **values}
    return {**config, "run": "sweep", "results_dir": str(results), "sweep": sweep}


def test_each_combination_is_a_run_with_its_own_folder(tmp_path):
    runs = expand_sweep(sweep_config(tmp_path, {"seed": [0, 1], "train.learning_rate": [0.001, 0.002]}))
    assert [run.label for run in runs] == ["seed-0_train.learning_rate-0.001", "seed-0_train.learning_rate-0.002",
                                           "seed-1_train.learning_rate-0.001", "seed-1_train.learning_rate-0.002"]
    assert [(run.config["seed"], run.config["train"]["learning_rate"]) for run in runs] == [
        (0, 0.001), (0, 0.002), (1, 0.001), (1, 0.002)]
    assert {stage_paths(run.config, "train").root for run in runs} == {tmp_path / "sweep" / run.label for run in runs}
    assert all(run.config["shared_dir"] == str(tmp_path / "sweep" / "stages") for run in runs)


def test_runs_that_differ_in_the_seed_share_every_data_stage(tmp_path):
    runs = expand_sweep(sweep_config(tmp_path, {"seed": [0, 1, 2]}))
    for stage in SHARED_STAGES:
        roots = {stage_paths(run.config, stage).root for run in runs}
        assert len(roots) == 1 and roots.pop().parent == tmp_path / "sweep" / "stages", stage
        # the shared job's run file is the same whichever run asks for it
        assert len({json.dumps(stage_config(run.config, stage), sort_keys=True) for run in runs}) == 1
    trained = [stage_files(run.config, "train", 2).inputs for run in runs]
    assert len({inputs["manifest_path"] for inputs in trained}) == 1
    assert len({inputs["plan_path"] for inputs in trained}) == 3  # the plan names each run's own jobs


def test_a_data_setting_shares_only_the_stages_before_it(tmp_path):
    runs = expand_sweep(sweep_config(tmp_path, {"split.held_out": [4, 5]}))
    shared = {stage for stage in SHARED_STAGES if len({stage_paths(run.config, stage).root for run in runs}) == 1}
    assert shared == {"demos", "encoders", "validate"}


def test_a_named_group_sets_several_keys_together(tmp_path):
    arms = {"fast": {"train.learning_rate": 0.002, "train.lr_warmup_steps": 2},
            "slow": {"train.learning_rate": 0.0005}}
    runs = expand_sweep(sweep_config(tmp_path, {"arm": arms, "seed": [0, 1]}))
    assert [run.label for run in runs] == ["arm-fast_seed-0", "arm-fast_seed-1", "arm-slow_seed-0", "arm-slow_seed-1"]
    assert [(run.values["arm"], run.config["train"]["learning_rate"], run.config["train"]["lr_warmup_steps"])
            for run in runs] == [("fast", 0.002, 2), ("fast", 0.002, 2), ("slow", 0.0005, 1), ("slow", 0.0005, 1)]
    with pytest.raises(ConfigError, match="sweep cannot vary results_dir"):
        expand_sweep(sweep_config(tmp_path, {"arm": {"elsewhere": {"results_dir": "x"}}}))

def test_a_hardware_mapping_is_an_inline_profile(tmp_path):
    layouts = [{"profile": "cpu", "per_device_batch": 8}, {"profile": "cpu", "per_device_batch": 2, "processes_per_node": 2}]
    runs = expand_sweep(sweep_config(tmp_path, {"hardware": layouts}))
    assert [run.label for run in runs] == ["hardware-profile-cpu-per_device_batch-8",
                                           "hardware-profile-cpu-per_device_batch-2-processes_per_node-2"]
    assert [(run.config["hardware"]["per_device_batch"], run.config["hardware"]["processes_per_node"]) for run in runs] == [
        (8, 1), (2, 2)]


@pytest.mark.parametrize("sweep, message", [
    ({"results_dir": ["a", "b"]}, "sweep cannot vary results_dir"),
    ({"seed": []}, "sweep.seed"),
    ({"train.learning_rat": [0.1]}, "sweep run train.learning_rat-0.1 (train.learning_rat=0.1): train.learning_rat: unknown key"),
    ({"train.lr_warmup_steps": [1, 10]},
     "sweep run train.lr_warmup_steps-10 (train.lr_warmup_steps=10): train.lr_warmup_steps (10) is not shorter"),
    ({"run.name": ["a"]}, "sweep cannot vary run.name"),
    ({"seed.value": [1]}, "sweep key seed.value: seed is 0, not a section of keys"),
    ({"train.lr_scheduler": ["cosine", "cosine"]}, "the same run folder twice (train.lr_scheduler-cosine)"),
    ({"hardware": [{"profile": "cpu", "per_device_batch": 4}, "gpu24g-x1"]}, "all train on CPUs or all on GPUs"),
])
def test_a_bad_sweep_stops_naming_the_key_and_run(tmp_path, sweep, message):
    config = {**sweep_config(tmp_path, sweep), "seed": 0}
    with pytest.raises(ConfigError, match=re.escape(message)):
        expand_sweep(config)


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("total")[0]
    return {match.group(1): int(match.group(2)) for match in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_a_sweep_shares_its_data_and_a_seed_added_later_trains_only_itself(tmp_path):
    results = tmp_path / "results"
    train = {"max_steps": 2, "checkpointing_period": 2, "checkpoints_total_limit": None}  # one checkpoint
    config_file = tmp_path / "sweep.yaml"
    config_file.write_text(yaml.safe_dump(sweep_config(results, {"seed": [0]}, train=train)))
    snakemake(config_file)
    sweep = results / "sweep"
    assert sorted(path.name.split("-")[0] for path in (sweep / "stages").iterdir()) == sorted(DATA_STAGES)
    shared = _mtimes(sweep / "stages")

    config_file.write_text(yaml.safe_dump(sweep_config(results, {"seed": [0, 1]}, train=train)))
    planned = _job_counts(snakemake(config_file, "--dry-run"))
    assert planned == {"plan": 1, "train": 1, "eval": 1, "report": 1, "compare": 1, "all": 1}
    snakemake(config_file)
    assert _mtimes(sweep / "stages") == shared

    table = pd.read_csv(sweep / "runs.csv")
    assert list(table["label"]) == ["seed-0", "seed-1"] and list(table["seed"]) == [0, 1]
    for run in table.itertuples():
        evaluation = json.loads((sweep / run.label / "eval" / "checkpoint-2.json").read_text())
        assert run.final_step == 2 and run.success == evaluation["success_rate"] and run.train_seconds > 0
        assert (sweep / run.report).is_file()
    page = (sweep / "index.html").read_text()
    mean, std = table["success"].mean(), table["success"].std()
    assert f"final success {mean:.1%} ± {100 * std:.1f} pp" in page and page.count('href="seed-') == 2
    assert "data:image/png;base64," in page
    weights = {(sweep / f"seed-{seed}" / "train" / "checkpoint-2" / "model.safetensors").read_bytes() for seed in (0, 1)}
    assert len(weights) == 2  # each seed trained its own policy
    # last: it skips where there is no browser
    view = view_page(sweep / "index.html", 390, ARTIFACTS / "comparison-390px.png", (".headline",))
    assert view.console_errors == [] and view.failed_requests == [] and view.scroll_width <= view.inner_width
    assert [image["naturalWidth"] > 0 for image in view.images] == [True] and "over 2 runs" in view.texts[".headline"]
