"""train.report_to: every optimizer step and every evaluated checkpoint reach TensorBoard and W&B."""

from __future__ import annotations

import json
import shutil

import pytest
from accelerate import Accelerator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rdtflow.cli import main as rdtflow
from rdtflow.config import validate_config
from rdtflow.errors import ConfigError, RdtflowError
from rdtflow.paths import RunPaths
from rdtflow.train.tracking import TRACKED_METRICS, log_evaluation, start_trackers, wandb_group
from tests.helpers.training import BASE, LAYOUTS, STEPS

TRACKERS = ["tensorboard", "wandb"]


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard would show from the event files under `folder`, by tag."""
    found = {}
    for events in folder.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events.parent))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found[tag] = [(event.step, event.value) for event in accumulator.Scalars(tag)]
    return found


@pytest.fixture
def tracked_config(prepared_data, tmp_path) -> dict:
    results = tmp_path / "results"
    shutil.copytree(prepared_data, results)
    config = {**BASE, "results_dir": str(results), "hardware": LAYOUTS["one_process"],
              "train": {**BASE["train"], "report_to": TRACKERS}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    return config


def test_every_training_step_reaches_both_trackers(tracked_config, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline by default: nothing may reach the network
    config_file = str(tmp_path / "config.json")
    assert rdtflow(["plan", "--config", config_file]) == 0
    assert rdtflow(["train", "--config", config_file, "--until-step", str(STEPS)]) == 0
    folder = RunPaths.from_config(tracked_config).tracking("train", STEPS)
    logged = scalars(folder)
    for name in TRACKED_METRICS:
        assert [step for step, _ in logged[f"train/{name}"]] == [1, 2, 3], name
    assert logged["train/lr"][-1][1] == pytest.approx(0.001)  # the schedule's value at step 3, as train_log.csv has it
    [offline_run] = (folder / "wandb").glob("offline-run-*")
    assert list(offline_run.glob("*.wandb")), "W&B wrote no offline run file"
    assert wandb_group(tracked_config).encode() in next(offline_run.glob("*.wandb")).read_bytes()  # the run's group


def test_an_evaluated_checkpoint_logs_its_rates_at_its_step(tracked_config, tmp_path):
    result = {"open_loop_mse": 0.02, "success_rate": 0.75, "held_at_end_rate": 0.5,
              "stage_rates": {"grasped": {"rate": 1.0}, "placed": {"rate": 0.75}}}
    log_evaluation(validate_config(dict(tracked_config)), tmp_path / "eval-tracking", 250, result)
    logged = scalars(tmp_path / "eval-tracking")
    assert logged["eval/success_rate"] == [(250, 0.75)] and logged["eval/stage/grasped"] == [(250, 1.0)]
    assert logged["eval/held_at_end_rate"] == [(250, 0.5)] and logged["eval/open_loop_mse"][0][0] == 250


def test_a_tracker_that_is_not_installed_stops_the_workflow_before_any_job(tracked_config, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"train.report_to names tensorboard, wandb, which is not installed: "
                                          r"pip install -e '.\[tracking\]'"):
        validate_config(dict(tracked_config), check_files=True)


def test_a_tracker_the_jobs_python_cannot_import_fails_the_job(tracked_config, tmp_path):
    """accelerate drops a tracker it cannot import without a word (here: as if wandb were
    missing, it was given tensorboard alone); the job must not."""
    accelerator = Accelerator(cpu=True, log_with=["tensorboard"], project_dir=str(tmp_path / "t"))
    with pytest.raises(RdtflowError, match="train.report_to names wandb, which this job's Python cannot import"):
        start_trackers(accelerator, validate_config(dict(tracked_config)), tmp_path / "train" / "checkpoint-3")
