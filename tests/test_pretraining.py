"""Pretrain, export, fine-tune from the export: one workflow, in the smallest sizes.

A tiny pretraining on four relations of the built-in task, its export, and a fine-tune on the
fifth from that export, through Snakemake; then the checks that the fine-tune really starts
from the export's EMA weights with the pretraining's encoders, that the jobs are cached
across the two runs, and that a bad link stops the run before any job.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml

from rdtflow.cli import main as rdtflow
from rdtflow.config import validate_config
from rdtflow.errors import ConfigError
from rdtflow.paths import CheckpointFile
from tests.helpers.pretraining import fine_tune_config, pretraining_config, write
from tests.helpers.sizes import TINY_ENCODERS
from tests.helpers.workflow import snakemake


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both runs through one snakemake call on the fine-tune's config."""
    folder = tmp_path_factory.mktemp("linked")
    results = folder / "results"
    pretraining = write(folder / "pretrain.yaml", pretraining_config(results))
    fine_tune = write(folder / "finetune.yaml", fine_tune_config(results, pretraining))
    snakemake(fine_tune)
    return {"folder": folder, "results": results, "pretraining": pretraining, "fine_tune": fine_tune}


def test_the_export_is_the_official_layout_of_the_pretrainings_final_checkpoint(linked):
    export = linked["results"] / "pretrain" / "export" / "final"
    for name in (CheckpointFile.CONFIG, CheckpointFile.WEIGHTS, CheckpointFile.EMA_WEIGHTS, CheckpointFile.STATS,
                 CheckpointFile.RUN_CONFIG):
        assert (export / name).is_file(), name
    assert json.loads((export / "export.json").read_text())["step"] == 4
    assert not (linked["results"] / "pretrain" / "report").exists()  # only what the fine-tune needs ran


def test_the_fine_tune_starts_from_the_exports_ema_with_its_encoders_and_norm(linked):
    export = linked["results"] / "pretrain" / "export" / "final"
    checkpoint = linked["results"] / "finetune" / "train" / "checkpoint-2"
    log = (linked["results"] / "finetune" / "logs" / "train" / "checkpoint-2.log").read_text()
    assert f"starting from the EMA weights in {export / 'ema'}" in log
    recorded = json.loads((export / CheckpointFile.RUN_CONFIG).read_text())["policy_files"]
    used = json.loads((checkpoint / CheckpointFile.RUN_CONFIG).read_text())["policy_files"]
    assert (used["vision_dir"], used["text_dir"]) == (recorded["vision_dir"], recorded["text_dir"])
    norm = json.loads((export / CheckpointFile.CONFIG).read_text())["rdt"]["norm"]
    assert json.loads((checkpoint / CheckpointFile.CONFIG).read_text())["rdt"]["norm"] == norm
    assert not (linked["results"] / "finetune" / "encoders").exists()  # it built none of its own


def test_the_fine_tunes_relation_never_appears_in_the_pretrainings_demos(linked):
    instructions = pd.read_parquet(linked["results"] / "pretrain" / "data" / "index.parquet")["instruction"]
    assert instructions.nunique() == 4 and not instructions.str.contains("below").any()
    fine_tune = pd.read_parquet(linked["results"] / "finetune" / "data" / "index.parquet")["instruction"]
    assert set(fine_tune) == {"pick up the red block and place it below the green square"}
    with h5py.File(next((linked["results"] / "finetune" / "demos").glob("*.hdf5")), "r") as episode:
        assert "below" in json.loads(episode.attrs["sim_reset"])["relation"]


def planned_outputs(dry_run: str) -> list[str]:
    """The output files of the jobs a dry run lists."""
    return [path.strip() for line in dry_run.splitlines() if line.strip().startswith("output:")
            for path in line.split("output:", 1)[1].split(",")]


def _first_loss(results: Path, config: dict, folder: Path, pretrained: str | None) -> float:
    """The fine-tune's first logged loss (the loss of its starting weights on its first batch),
    trained by hand in a copy of its folders, starting from `pretrained`."""
    results.mkdir(parents=True)
    shutil.copytree(folder / "results" / "finetune", results / "finetune")
    for stale in ("plan.json", "plan.txt", "train"):
        shutil.rmtree(results / "finetune" / stale, ignore_errors=True)
        (results / "finetune" / stale).unlink(missing_ok=True)
    resolved = {**config, "results_dir": str(results), "model": {**config["model"], "pretrained": pretrained},
                "encoders": {**config["encoders"], "vision_path": str(folder / "results/pretrain/encoders/vision"),
                             "text_path": str(folder / "results/pretrain/encoders/text")}}
    config_file = write(results / "config.yaml", resolved)
    assert rdtflow(["plan", "--config", str(config_file)]) == 0
    assert rdtflow(["train", "--config", str(config_file), "--until-step", "2"]) == 0
    return float(pd.read_csv(results / "finetune" / "train" / "checkpoint-2" / CheckpointFile.TRAIN_LOG)["loss"].iloc[0])


def test_the_first_loss_is_the_pretrained_models_loss_on_the_same_batch(linked, tmp_path):
    """The linked fine-tune's first loss equals that of the same run started from a folder
    holding only the export's EMA weights; from the export's other weights, or from a fresh
    initialisation, it differs."""
    config = yaml.safe_load(linked["fine_tune"].read_text())
    export = linked["results"] / "pretrain" / "export" / "final"
    linked_loss = float(pd.read_csv(linked["results"] / "finetune" / "train" / "checkpoint-2" /
                                    CheckpointFile.TRAIN_LOG)["loss"].iloc[0])
    ema_only, main_only = tmp_path / "ema_only", tmp_path / "main_only"
    shutil.copytree(export / "ema", ema_only)
    main_only.mkdir()
    for name in (CheckpointFile.CONFIG, CheckpointFile.WEIGHTS):
        shutil.copy(export / name, main_only / name)
    losses = {name: _first_loss(tmp_path / name / "results", config, linked["folder"], pretrained)
              for name, pretrained in (("ema", str(ema_only)), ("main", str(main_only)), ("fresh", None))}
    assert linked_loss == pytest.approx(losses["ema"], rel=1e-6)
    assert abs(linked_loss - losses["main"]) > 1e-4 and abs(linked_loss - losses["fresh"]) > 1e-4


def test_a_fine_tune_setting_reruns_the_fine_tune_only_and_a_second_fine_tune_reuses_the_pretraining(linked, tmp_path):
    pretraining_root = str(linked["results"] / "pretrain")
    changed = write(tmp_path / "changed.yaml",
                    fine_tune_config(linked["results"], linked["pretraining"], learning_rate=0.002))
    output = snakemake(changed, "--dry-run")
    assert "rule train:" in output and "rule export:" not in output
    assert not any(pretraining_root in path for path in planned_outputs(output))
    second = fine_tune_config(linked["results"], linked["pretraining"]) | {"run": "finetune-again"}
    output = snakemake(write(tmp_path / "second.yaml", second), "--dry-run")
    assert "rule demos:" in output and "rule export:" not in output
    assert not any(pretraining_root in path for path in planned_outputs(output))


@pytest.mark.parametrize("link, message", [
    ({"config": "missing.yaml"}, "model.pretrained.config missing.yaml: no such run config file"),
    ({"config": "{pretraining}", "checkpoint": 3}, "model.pretrained.checkpoint 3: {pretraining} writes checkpoints "
                                                     "at steps 4; name one of them, or final, or best"),
])
def test_a_bad_link_is_a_config_error_before_any_job(tmp_path, link, message):
    pretraining = write(tmp_path / "pretrain.yaml", pretraining_config(tmp_path / "results"))
    link = {key: value.format(pretraining=pretraining) if isinstance(value, str) else value
            for key, value in link.items()}
    config = fine_tune_config(tmp_path / "results", pretraining)
    config["model"]["pretrained"] = link
    with pytest.raises(ConfigError, match=message.format(pretraining=pretraining).replace(".", r"\.")):
        validate_config(config)


def test_a_step_retention_may_delete_is_refused(tmp_path):
    pretraining = pretraining_config(tmp_path / "results")
    pretraining["train"] |= {"max_steps": 12, "checkpointing_period": 4, "checkpoints_total_limit": 2}
    pretraining_file = write(tmp_path / "pretrain.yaml", pretraining)
    config = fine_tune_config(tmp_path / "results", pretraining_file)
    config["model"]["pretrained"]["checkpoint"] = 4
    with pytest.raises(ConfigError, match="has train.checkpoints_total_limit 2, whose retention may delete"):
        validate_config(config)
    config["model"]["pretrained"]["checkpoint"] = "best"
    assert validate_config(config)["model"]["pretrained"] == str(tmp_path / "results" / "pretrain" / "export" / "best")


def test_a_run_that_names_itself_or_a_cycle_is_refused(tmp_path):
    results = tmp_path / "results"
    itself = tmp_path / "itself.yaml"
    write(itself, fine_tune_config(results, itself) | {"run": "itself"})
    with pytest.raises(ConfigError, match="is this run itself"):
        validate_config(yaml.safe_load(itself.read_text()))
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    write(first, fine_tune_config(results, second) | {"run": "first"})
    write(second, fine_tune_config(results, first) | {"run": "second"})
    with pytest.raises(ConfigError, match="a cycle of runs"):
        validate_config(yaml.safe_load(first.read_text()))


def test_encoder_settings_that_differ_from_the_pretrainings_are_refused_naming_them(tmp_path):
    pretraining = write(tmp_path / "pretrain.yaml", pretraining_config(tmp_path / "results"))
    config = fine_tune_config(tmp_path / "results", pretraining)
    config["encoders"] = {**TINY_ENCODERS, "max_lang_tokens": 16}
    with pytest.raises(ConfigError, match="encoders.max_lang_tokens: 16 here, 32 there"):
        validate_config(config)


def test_resolving_a_link_leaves_the_given_sections_untouched(tmp_path):
    """Tests and sweeps share section mappings between configs: the resolved paths must not leak."""
    pretraining = write(tmp_path / "pretrain.yaml", pretraining_config(tmp_path / "results"))
    config = fine_tune_config(tmp_path / "results", pretraining)
    encoders, model = config["encoders"], config["model"]
    resolved = validate_config(config)
    assert resolved["encoders"]["vision_path"] is not None and encoders.get("vision_path") is None
    assert isinstance(model["pretrained"], dict) and isinstance(resolved["model"]["pretrained"], str)
