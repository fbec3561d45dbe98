"""The command line: every stage has --help, and a bad config is a clear error, not a traceback."""

from __future__ import annotations

import pytest

from rdtflow.cli import main

STAGES = ["demos", "encoders", "validate", "split", "manifest", "encode-lang", "encode-images", "plan", "train", "eval", "baseline", "export", "report"]


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


def test_unknown_config_key_is_reported_with_its_name(capsys):
    code = main(["split", "--config", '{"run": "x", "split": {"held_outt": 3}}'])
    assert code == 2
    error = capsys.readouterr().err
    assert "invalid configuration" in error and "held_outt" in error


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


def test_inline_stage_config_gets_no_default_for_a_missing_section():
    """The workflow passes each stage its sections inline; a missing one is an error, not a default."""
    with pytest.raises(KeyError, match="split"):
        main(["split", "--config", '{"run": "x"}'])
