"""The demo-scaling study in its smallest form: a tiny pretraining, and for two demo counts a
fine-tune from its export and the same run from scratch, in one snakemake call
(config/benchmarks/demo-scaling.yaml at full size)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from rdtflow.stages import stage_paths
from rdtflow.sweep import expand_sweep
from tests.helpers.browser import ARTIFACTS, view_page
from tests.helpers.pretraining import fine_tune_config, pretraining_config, write
from tests.helpers.workflow import snakemake

COLUMNS = ["init", "n_demos", "seed", "success", "n_episodes", "success_low", "success_high", "best_step",
           "best_success", "train_seconds", "zero_shot", "pretraining_tasks_start", "pretraining_tasks_final"]


def study_config(folder, results) -> dict:
    pretraining = write(folder / "pretrain.yaml", pretraining_config(results))
    base = fine_tune_config(results, pretraining)
    base["model"].pop("pretrained")
    base["demos"]["n_episodes"] = 7  # a pool of 4 to train on, 3 held out
    base["split"] = {"held_out": 3}
    base["eval"] = {**base["eval"], "transfer": True}
    return {**base, "run": "scaling", "sweep": {
        "init": {"pretrained": {"model.pretrained": {"config": str(pretraining), "checkpoint": "final"},
                                "train.learning_rate": 0.001},
                 "scratch": {"model.pretrained": None, "train.learning_rate": 0.003}},
        "split.train_episodes": [2, 4]}}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("scaling")
    config = study_config(folder, folder / "results")
    snakemake(write(folder / "scaling.yaml", config))
    return {"config": config, "root": folder / "results" / "scaling"}


def test_runs_csv_has_one_row_per_arm_and_demo_count(study):
    table = pd.read_csv(study["root"] / "runs.csv")
    assert set(COLUMNS) <= set(table.columns)
    assert sorted(zip(table["init"], table["n_demos"], table["seed"])) == [
        ("pretrained", 2, 0), ("pretrained", 4, 0), ("scratch", 2, 0), ("scratch", 4, 0)]
    assert (table["n_episodes"] == 3).all() and (table["train_seconds"] > 0).all()
    assert ((table["success_low"] <= table["success"]) & (table["success"] <= table["success_high"])).all()
    pretrained = table["init"] == "pretrained"  # eval.transfer: only a run that starts from another has these
    assert table.loc[pretrained, "zero_shot"].notna().all() and table.loc[~pretrained, "zero_shot"].isna().all()


def test_the_fine_tunes_are_also_judged_zero_shot_and_on_the_pretrainings_own_states(study):
    transfer = study["root"] / "init-pretrained_split.train_episodes-2" / "eval" / "transfer"
    own, before, after = (json.loads((transfer / f"{name}.json").read_text())
                          for name in ("start-own", "start-pretraining", "final-pretraining"))
    assert (own["step"], before["step"], after["step"]) == (0, 0, 2)
    assert {e["instruction"] for e in own["episodes"]} == {"pick up the red block and place it below the green square"}
    pretraining_states = {e["instruction"] for e in before["episodes"]}
    assert pretraining_states == {e["instruction"] for e in after["episodes"]} and len(before["episodes"]) == 4
    assert not any("below" in instruction for instruction in pretraining_states)
    assert all("released_at" in e for e in after["episodes"])


def test_demo_sets_nest_and_every_run_is_judged_on_the_same_held_out_states(study):
    trained, held_out = {}, set()
    for run in expand_sweep(json.loads(json.dumps(study["config"]))):
        index = pd.read_parquet(stage_paths(run.config, "split").index)
        trained[run.config["split"]["train_episodes"]] = set(index.loc[index["split"] == "train", "episode_id"])
        evaluation = json.loads((study["root"] / run.label / "eval" / "checkpoint-2.json").read_text())
        held_out.add(tuple(sorted(e["episode_id"] for e in evaluation["episodes"])))
    assert trained[2] < trained[4] and len(held_out) == 1 and not trained[4] & set(held_out.pop())


def test_the_comparison_page_shows_success_against_demos_and_the_paired_arms(study):
    page = (study["root"] / "index.html").read_text()
    assert 'id="scaling"' in page and "exact McNemar p" in page and "paid once for every run" in page
    pairs = page.split("exact McNemar p")[1].split("</table>")[0]
    assert pairs.count("<tr><td class=\"num\">") == 2  # a pair per demo count
    transfer = page.split('id="transfer"')[1].split("</table>")[0]
    assert transfer.count("<tr><td class=\"num\">") == 2  # each pretrained run: zero-shot, kept
    view = view_page(study["root"] / "index.html", 390, ARTIFACTS / "scaling-390px.png", ("#scaling",))
    assert view.console_errors == [] and view.failed_requests == []
    assert all(image["naturalWidth"] > 0 for image in view.images) and len(view.images) == 2
    assert "How many demos?" in view.texts["#scaling"] and "what each fine-tune keeps" in view.texts["#scaling"]


def test_the_shipped_study_config_holds_out_100_states_and_nests_five_demo_counts():
    config = yaml.safe_load(open("config/benchmarks/demo-scaling.yaml"))
    runs = expand_sweep(config)
    assert sorted({run.config["split"]["train_episodes"] for run in runs}) == [10, 25, 50, 100, 200]
    assert {run.values["init"] for run in runs} == {"pretrained", "scratch"} and len(runs) == 10
    assert all(run.config["split"]["held_out"] == 100 and run.config["eval"]["transfer"] for run in runs)
    assert config["demos"]["n_episodes"] - config["split"]["held_out"] == 200
