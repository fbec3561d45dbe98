"""The command line: every stage has --help, and a bad config is a clear error, not a traceback."""

from __future__ import annotations

import json
import socket
import sys

import pytest
import yaml

from rdtflow.cli import main
from tests.helpers.models import write_checkpoint

STAGES = ["demos", "encoders", "validate", "split", "manifest", "encode-lang", "encode-images", "plan", "train", "eval",
          "baseline", "export", "report"]


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_explains_itself(stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([stage, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--config" in text and len(text.splitlines()) > 3


def test_top_level_help_lists_the_stages(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(stage in text for stage in STAGES)


def test_unknown_config_key_is_reported_with_its_name(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text('{"run": "x", "split": {"held_outt": 3}}')
    code = main(["split", "--config", str(config)])
    assert code == 2
    (error,) = capsys.readouterr().err.strip().splitlines()  # one line, no traceback
    assert error.startswith("rdtflow split: invalid configuration") and "held_outt" in error


def test_missing_config_file_is_reported(tmp_path, capsys):
    assert main(["split", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_a_stage_sees_only_the_sections_it_declares(monkeypatch, tmp_path):
    """Reading an undeclared section must fail loudly: it would not trigger re-runs."""
    from rdtflow import stages

    config = tmp_path / "config.yaml"
    config.write_text("run: x\n")  # a whole config: every other section takes its defaults
    monkeypatch.setitem(stages.STAGE_SECTIONS, "split", ())
    with pytest.raises(KeyError, match="split"):
        main(["split", "--config", str(config)])


def test_inline_stage_config_gets_no_default_for_a_missing_section(tmp_path):
    """The workflow hands each stage its sections in a run file; a missing one is an error, not a default."""
    run_file = tmp_path / "split.json"
    run_file.write_text(json.dumps({"stage": "split", "step": None, "config": {"run": "x"}, "inputs": {}, "outputs": {}}))
    with pytest.raises(KeyError, match="split"):
        main(["split", "--run-config", str(run_file)])


def test_a_bug_is_an_internal_error_shown_with_its_traceback(monkeypatch, tmp_path, capsys):
    from rdtflow import cli

    config = tmp_path / "config.yaml"
    config.write_text("run: x\n")

    def broken(job):
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.STAGES, "split", (broken, "help"))
    monkeypatch.setattr(sys, "argv", ["rdtflow", "split", "--config", str(config)])
    assert cli.entry() == 1
    error = capsys.readouterr().err
    assert "Traceback" in error and "invalid configuration" not in error
    assert error.strip().splitlines()[-1] == (
        "rdtflow split: internal error (a bug in rdtflow, not in your data or config): RuntimeError: boom")


def test_a_problem_with_the_users_files_is_one_line_not_a_traceback(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(f"run: x\nresults_dir: {tmp_path}\n")
    assert main(["train", "--config", str(config), "--until-step", "2"]) == 1  # no plan.json yet
    error = capsys.readouterr().err
    assert error.startswith("rdtflow train: no plan at ") and "run `rdtflow plan`" in error and "Traceback" not in error


def test_a_damaged_checkpoint_is_one_line_naming_it_and_the_fix(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"run": "x", "results_dir": str(tmp_path),
                                      "train": {"max_steps": 2, "checkpointing_period": 2, "lr_warmup_steps": 0}}))
    checkpoint = write_checkpoint(tmp_path / "x" / "train", 2)
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert main(["eval", "--config", str(config), "--step", "2"]) == 1
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert error.startswith(f"rdtflow eval: {weights} does not match its checksum")
    assert error.endswith(f"delete {checkpoint} and re-run the workflow to train it again")


def test_the_installed_command_reports_bugs_as_internal_errors():
    from importlib.metadata import entry_points

    assert entry_points(group="console_scripts")["rdtflow"].value == "rdtflow.cli:entry"


def test_a_test_that_reaches_for_the_network_fails():
    """tests/conftest.py's guard, which holds "nothing is downloaded" for every test."""
    with pytest.raises(AssertionError, match="nothing may be downloaded"):
        socket.create_connection(("198.51.100.7", 443), timeout=1)
