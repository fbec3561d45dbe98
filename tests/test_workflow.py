"""End-to-end Snakemake run at reduced scale, and the caching behaviour of the workflow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
import yaml

from rdtflow.cli import main as rdtflow
from rdtflow.paths import CheckpointFile
from rdtflow.report.collect import best_checkpoint, evaluations_frame
from rdtflow.train.launch import train_command
from tests.helpers.browser import ARTIFACTS, view_page
from tests.helpers.workflow import ENV, REPO, SNAKEMAKE, check_reduced_outputs, planned_rules, snakemake, write_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("workflow")
    config_file = write_config(root / "config.yaml", root / "results")
    snakemake(config_file)
    return config_file, root / "results" / "e2e"


def test_every_output_exists_and_is_well_formed(finished_run):
    check_reduced_outputs(finished_run[1])


def test_second_run_has_nothing_to_do(finished_run):
    config_file, _ = finished_run
    assert planned_rules(config_file) == set()


def test_evaluation_setting_reruns_only_evaluation_and_report(finished_run, tmp_path):
    config_file, run = finished_run
    changed = write_config(tmp_path / "eval.yaml", run.parent, eval={"execute_horizon": 2})
    assert planned_rules(changed) == {"eval", "baseline", "report", "all"}


@pytest.mark.parametrize("section, change, evaluations", [
    ("train", {"learning_rate": 0.001}, {"eval"}),
    ("model", {"depth": 3}, {"eval", "baseline"}),  # the baseline predicts model.pred_horizon actions
])
def test_training_and_model_settings_do_not_rerun_data_stages(finished_run, tmp_path, section, change, evaluations):
    config_file, run = finished_run
    changed = write_config(tmp_path / "changed.yaml", run.parent, **{section: change})
    rules = planned_rules(changed)
    assert {"plan", "train", "report"} | evaluations <= rules
    assert rules.isdisjoint({"demos", "validate", "split", "manifest", "encode_lang", "encoders", "baseline"} - evaluations)


def test_long_stages_write_plain_progress_lines_to_their_logs(finished_run):
    _, run = finished_run
    assert "validate: 14/14 files (100%)" in (run / "logs" / "validate.log").read_text()
    train = (run / "logs" / "train" / "checkpoint-4.log").read_text()
    assert "train to step 4: 2/2 steps (100%)" in train and ", loss " in train and ", eta " in train
    assert "closed loop: 70/70 steps (100%)" in (run / "logs" / "eval" / "checkpoint-2.log").read_text()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_report_reads_in_a_real_browser(finished_run, width):
    """Headless Chromium at a laptop's and a phone's width: nothing fails to load, every image
    and video shows, nothing runs off the side of the page, and the headline holds the best
    checkpoint's numbers as its eval JSON has them."""
    _, run = finished_run
    evaluations = [json.loads(path.read_text()) for path in sorted((run / "eval").glob("checkpoint-*.json"))]
    best = best_checkpoint(evaluations_frame(evaluations))
    [evaluation] = [e for e in evaluations if e["step"] == best["step"]]
    view = view_page(run / "report" / "index.html", width, ARTIFACTS / f"report-{width}px.png", (".headline",))
    assert view.console_errors == [] and view.failed_requests == []
    assert len(view.images) >= 6 and all(image["naturalWidth"] > 0 for image in view.images), view.images
    assert len(view.videos) == len(evaluation["videos"]) == 3 and all(state >= 2 for state in view.videos)
    assert view.scroll_width <= view.inner_width
    low, high = evaluation["success_interval"]
    assert (f"Best checkpoint: step {evaluation['step']} — {evaluation['success_rate']:.1%} [{low:.1%}, {high:.1%}] "
            f"success on {evaluation['n_episodes']} held-out episodes") in view.texts[".headline"]
    assert (ARTIFACTS / f"report-{width}px.png").stat().st_size > 0


def test_snakemakes_own_report_collects_the_figures(finished_run, tmp_path):
    """`snakemake --report report.zip`: the archive unpacks, holds the figures with their
    captions, and its index opens in the same browser without errors."""
    config_file, _ = finished_run
    snakemake(config_file, "--report", str(tmp_path / "report.zip"))
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        archive.extractall(tmp_path / "unpacked")
        names = archive.namelist()
    assert all(any(name.endswith(figure) for name in names) for figure in ("training.png", "success.png",
                                                                           "episode_lengths.png"))
    [index] = [tmp_path / "unpacked" / name for name in names if name.endswith("/report.html")]
    assert "gradient norm before" in index.read_text()  # workflow/report/training.rst, the caption
    view = view_page(index, 1280, ARTIFACTS / "snakemake-report-1280px.png")
    assert view.console_errors == [] and view.failed_requests == []


def test_config_values_on_the_command_line_adjust_the_default():
    dry_run = subprocess.run([*SNAKEMAKE, "--dry-run", "--config", "run=other"], cwd=REPO, env=ENV, capture_output=True,
                             text=True, timeout=300, check=False)
    output = dry_run.stdout + dry_run.stderr
    assert dry_run.returncode == 0, output[-3000:]
    assert "results/other/train/checkpoint-1000" in output and "results/default" not in output


def test_a_config_file_replaces_the_default_whole(tmp_path):
    """Keys of config/config.yaml (here precompute_image_features: true) never leak into a
    --configfile run; the schema's defaults fill what the file leaves out."""
    config_file = write_config(tmp_path / "own.yaml", tmp_path / "results")
    config = yaml.safe_load(config_file.read_text())
    del config["model"]["precompute_image_features"]
    config_file.write_text(yaml.safe_dump(config))
    rules = planned_rules(config_file)
    assert "train" in rules and "encode_images" not in rules


# The kill run's periods are long enough (about 0.7 s of optimizer steps on two cores) to be
# killed in the middle of one.
KILL_RUN = {"max_steps": 90, "checkpointing_period": 30, "checkpoints_total_limit": None}


def _trained_steps(log: Path, step: int) -> int:
    """How many optimizer steps of its period the training job to `step` has logged."""
    done = re.findall(rf"train to step {step}: (\d+)/", log.read_text()) if log.is_file() else []
    return int(done[-1]) if done else 0


def _kill_mid_period(run: Path, process: subprocess.Popen, timeout: float = 300) -> int:
    """SIGKILL the whole workflow once a training job after an evaluated checkpoint has logged
    some, not all, of its optimizer steps; returns the step that job was training to."""
    period = KILL_RUN["checkpointing_period"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the workflow finished before it could be killed"
        done = {int(p.name.split("-")[1]) for p in (run / "train").glob("checkpoint-*") if not p.name.endswith(".tmp")}
        evaluated = list((run / "eval").glob("checkpoint-*.json"))
        step = max(done, default=0) + period
        if evaluated and step <= KILL_RUN["max_steps"]:
            if 0 < _trained_steps(run / "logs" / "train" / f"checkpoint-{step}.log", step) < period:
                os.killpg(process.pid, signal.SIGKILL)
                return step
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("no training job was caught in the middle of its period")


def _files_and_mtimes(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns
            for p in [*run.glob("train/checkpoint-*/*.*"), *run.glob("eval/*.json")] if ".tmp" not in str(p)}


def _train_straight(run: Path, out: Path) -> Path:
    """One training job from scratch to max_steps: the workflow's own last job, launched the
    way its rule launches it, without the checkpoint it resumed from."""
    last = KILL_RUN["max_steps"]
    job = json.loads((run / "config" / "train" / f"checkpoint-{last}.json").read_text())
    del job["inputs"]["resume_from"]
    job["outputs"]["checkpoint_out"] = str(out / f"checkpoint-{last}")
    run_file = out / "straight.json"
    out.mkdir(parents=True)
    run_file.write_text(json.dumps(job))
    threads = json.loads((run / "train" / f"checkpoint-{last}" / "trainer_state.json").read_text())["torch_threads"]
    command = train_command(job["config"]["hardware"], f"--run-config {run_file}", threads)
    subprocess.run(command, shell=True, check=True, cwd=REPO, env=ENV, capture_output=True)
    return out / f"checkpoint-{last}"


def _same_state(resumed: object, straight: object) -> bool:
    """Exact equality of (nested) training states: tensors bit for bit, everything else by value."""
    if isinstance(resumed, torch.Tensor):
        return isinstance(straight, torch.Tensor) and resumed.dtype == straight.dtype and torch.equal(resumed, straight)
    if isinstance(resumed, dict):
        return isinstance(straight, dict) and resumed.keys() == straight.keys() and all(
            _same_state(resumed[key], straight[key]) for key in resumed)
    if isinstance(resumed, (list, tuple)):
        return type(resumed) is type(straight) and len(resumed) == len(straight) and all(
            _same_state(a, b) for a, b in zip(resumed, straight, strict=True))
    return resumed == straight


def assert_trained_alike(resumed: Path, straight: Path) -> None:
    """Weights, EMA weights, optimizer, schedule and EMA state, and the step, all equal."""
    for name in (CheckpointFile.WEIGHTS, CheckpointFile.EMA_WEIGHTS):
        assert (resumed / name).read_bytes() == (straight / name).read_bytes(), name
    for name in (CheckpointFile.OPTIMIZER, CheckpointFile.SCHEDULER, CheckpointFile.EMA_STATE):
        assert _same_state(torch.load(resumed / name, weights_only=True), torch.load(straight / name, weights_only=True)), name
    resumed_state, straight_state = (json.loads((folder / CheckpointFile.TRAINER_STATE).read_text())
                                     for folder in (resumed, straight))
    for key in ("step", "samples_seen", "torch_threads"):
        assert resumed_state[key] == straight_state[key], key


TIMINGS = ("wall_seconds", "closed_loop_seconds", "sim_steps_per_s")  # how long it took, not what it measured


def measured_outcomes(evaluation_file: Path) -> dict:
    """An evaluation's JSON without its timings: every rate, interval, episode outcome and video."""
    evaluation = json.loads(evaluation_file.read_text())
    assert all(evaluation[key] > 0 for key in TIMINGS)
    return {key: value for key, value in evaluation.items() if key not in TIMINGS}


def test_killed_mid_training_resumes_exactly_and_keeps_finished_work(tmp_path):
    """SIGKILL the whole workflow in the middle of a training period and re-run it: finished
    checkpoints and evaluations are neither deleted nor redone, and the final checkpoint
    (weights, EMA, optimizer, schedule) is bitwise that of one job trained straight to the
    end. Then a silently damaged checkpoint is skipped on resume."""
    config_file = write_config(tmp_path / "kill.yaml", tmp_path / "results", train=KILL_RUN)
    run = tmp_path / "results" / "e2e"
    process = subprocess.Popen([*SNAKEMAKE, "--configfile", str(config_file)], cwd=REPO, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        killed_step = _kill_mid_period(run, process)
    finally:
        process.wait()
    log = run / "logs" / "train" / f"checkpoint-{killed_step}.log"
    assert not (run / "train" / f"checkpoint-{killed_step}").exists(), "the kill landed after the period ended"
    assert "checkpoint written" not in log.read_text()
    assert 0 < _trained_steps(log, killed_step) < KILL_RUN["checkpointing_period"]
    before = _files_and_mtimes(run)
    assert before, "nothing had finished before the kill"
    snakemake(config_file, "--unlock")
    snakemake(config_file)
    after = _files_and_mtimes(run)
    assert {name: after.get(name) for name in before} == before  # nothing finished was deleted or redone
    last = run / "train" / f"checkpoint-{KILL_RUN['max_steps']}"
    straight = _train_straight(run, tmp_path / "straight")
    assert_trained_alike(last, straight)

    # A checkpoint damaged after it was written (same mtime, so Snakemake cannot tell) is
    # named and skipped: the last one, deleted with its evaluation and the report (Snakemake
    # leaves missing intermediates alone while what they fed is up to date), is retrained
    # from the one before the damaged one, to the same bits.
    damaged = run / "train" / "checkpoint-60" / "model.safetensors"
    stat, folder_stat = damaged.stat(), damaged.parent.stat()
    damaged.write_bytes(damaged.read_bytes()[:-100])
    os.utime(damaged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.utime(damaged.parent, ns=(folder_stat.st_atime_ns, folder_stat.st_mtime_ns))
    evaluation = measured_outcomes(run / "eval" / f"{last.name}.json")
    shutil.rmtree(last)
    (run / "eval" / f"{last.name}.json").unlink()
    shutil.rmtree(run / "report")
    snakemake(config_file)
    log = (run / "logs" / "train" / f"{last.name}.log").read_text()
    assert "cannot resume from checkpoint-60" in log and "model.safetensors does not match its checksum" in log
    assert_trained_alike(last, straight)
    assert measured_outcomes(run / "eval" / f"{last.name}.json") == evaluation  # every episode's outcome, again


def test_each_checkpoint_carries_its_config_and_the_rdtflow_version(finished_run, tmp_path):
    _, run = finished_run
    recorded = json.loads((run / "train" / "checkpoint-6" / "run_config.json").read_text())
    assert recorded["rdtflow_version"] == version("rdtflow")
    assert recorded["config"]["train"]["max_steps"] == 6 and recorded["config"]["hardware"]["device"] == "cpu"
    assert rdtflow(["export", "--checkpoint", str(run / "train" / "checkpoint-6"), "--out", str(tmp_path / "export")]) == 0
    assert json.loads((tmp_path / "export" / "run_config.json").read_text()) == recorded


def _moved(value: str | list[str], run: Path, fresh: Path) -> str | list[str]:
    """A path of the finished run, at the same place under `fresh`."""
    if isinstance(value, list):
        return [_moved(item, run, fresh) for item in value]
    return str(fresh / Path(value).relative_to(run)) if Path(value).is_relative_to(run) else value


def test_each_stage_reads_only_what_its_rule_declares(finished_run, tmp_path):
    """Every job of the run again, each in a fresh folder holding copies of its declared inputs
    and nothing else, with results_dir pointing there: it finishes and writes its outputs, so
    it read nothing its rule does not declare. (Episode files stay where the index names them:
    they are the data the validated folder declared.)"""
    _, run = finished_run
    jobs = sorted((run / "config").rglob("*.json"))
    assert len(jobs) == 19  # 10 stages, and train, eval and retention for each of 3 checkpoints
    for job_file in jobs:
        job = json.loads(job_file.read_text())
        checkpoint = job["inputs"].get("checkpoint_dir")
        if checkpoint and (Path(checkpoint) / "pruned.json").is_file():
            continue  # retention deleted its weights: nothing left to evaluate
        fresh = tmp_path / job_file.relative_to(run / "config").with_suffix("") / run.name
        for value in job["inputs"].values():
            for path in map(Path, value if isinstance(value, list) else [value]):
                target = Path(_moved(str(path), run, fresh))
                if target != path and path.is_dir():
                    shutil.copytree(path, target)
                elif target != path:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
        moved = {**job, "config": {**job["config"], "results_dir": str(fresh.parent)},
                 "inputs": {name: _moved(value, run, fresh) for name, value in job["inputs"].items()},
                 "outputs": {name: _moved(value, run, fresh) for name, value in job["outputs"].items()}}
        moved_file = fresh.parent / "job.json"
        moved_file.parent.mkdir(parents=True, exist_ok=True)
        moved_file.write_text(json.dumps(moved))
        assert rdtflow([job["stage"].replace("_", "-"), "--run-config", str(moved_file)]) == 0, job_file
        assert all(Path(path).exists() for path in moved["outputs"].values()), job_file


def test_every_printed_command_is_short_and_the_plan_waits_for_the_instructions():
    """The default run's dry run: each shell command fits a line, and the plan reads the encoded
    instructions (so it waits for encode_lang and sizes memory by their real length)."""
    dry_run = subprocess.run([*SNAKEMAKE, "--dry-run", "--forceall", "--printshellcmds"], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=300, check=False)
    output = dry_run.stdout + dry_run.stderr
    assert dry_run.returncode == 0, output[-3000:]
    commands = [line.removeprefix("Shell command: ") for line in output.splitlines()
                if line.startswith("Shell command: ") and line != "Shell command: None"]
    assert len(commands) == 18 and max(map(len, commands)) < 300, max(commands, key=len)  # 10 stages, 2 x 4 steps
    assert "rdtflow eval --run-config results/default/config/eval/checkpoint-250.json" in [
        command.split(" >")[0] for command in commands]  # the README's example
    plan = output.split("rule plan:")[1].split("\n\n")[0]
    assert "results/default/lang/embeddings.safetensors" in plan


def test_each_train_and_eval_job_declares_its_tracker_folder(tmp_path):
    """train.report_to: the trackers' files are outputs of the jobs that write them, so a failed
    job's are removed with it and no job writes into another's folder."""
    config_file = write_config(tmp_path / "tracked.yaml", tmp_path / "results", train={"report_to": ["tensorboard"]})
    output = snakemake(config_file, "--dry-run", "--printshellcmds")
    run = tmp_path / "results" / "e2e" / "tracking"
    for stage in ("train", "eval"):
        for step in (2, 4, 6):
            assert f"{run / stage / f'checkpoint-{step}'}" in output, (stage, step)
