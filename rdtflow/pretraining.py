"""`model.pretrained: {config: FILE, checkpoint: final | best | STEP}`: a run that starts from
another run's export, both in one workflow.

Why: rdtflow exists to fine-tune a pretrained RDT on a few demonstrations, and a study of that
(pretrain on many tasks, fine-tune on a new one) must be one cached command. So the run FILE
configures joins the workflow's runs; an export job writes the chosen checkpoint in the
official layout under that run's folder (RunPaths.export); and the fine-tune's config is
resolved before any job is built: its model.pretrained becomes that export folder, read
through the very code path a user's RDT-1B folder takes, and its encoders become the
pretraining's folders, so both runs read the same features. Snakemake orders the jobs by
those files: a fine-tune setting reruns only the fine-tune, and a second fine-tune reuses the
pretraining and its export.

Everything is checked before any job runs: the file, a run that names itself or a cycle of
runs, a step that is not a checkpoint or that retention may delete, and encoder settings that
differ from the pretraining's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from rdtflow.errors import ConfigError
from rdtflow.paths import RunPaths, encoder_dirs
from rdtflow.stages import StageFiles, stage_paths
from rdtflow.train.layout import checkpoint_steps

ENCODER_PATH_KEYS = ("vision_path", "text_path")


@dataclass(frozen=True)
class PretrainingLink:
    """What a fine-tune's model.pretrained names: a run config file and one of its checkpoints."""

    config_file: Path
    checkpoint: str | int  # "final", "best" or a checkpoint step

    @property
    def label(self) -> str:
        """The export's folder name: final, best or checkpoint-STEP."""
        return self.checkpoint if isinstance(self.checkpoint, str) else f"checkpoint-{self.checkpoint}"


def pretraining_link(config: dict) -> PretrainingLink | None:
    """The link a config's model.pretrained holds, or None for a folder or null."""
    pretrained = config["model"]["pretrained"]
    if not isinstance(pretrained, dict):
        return None
    return PretrainingLink(Path(pretrained["config"]), pretrained.get("checkpoint", "final"))


def export_folder(pretraining: dict, link: PretrainingLink) -> Path:
    return stage_paths(pretraining, "export").export(link.label)


Validate = Callable[..., dict]  # rdtflow.config.validate_config, handed in: config imports this module


def load_pretraining(link: PretrainingLink, validate: Validate, check_files: bool, chain: tuple[str, ...]) -> dict:
    """The run `link` names, validated (and resolved, should it start from a run itself).
    `chain` holds the results folders of the runs that led here, this one last: a run that
    names itself, or a cycle, is refused before the run it names is read any further."""
    where = f"model.pretrained.config {link.config_file}"
    if not link.config_file.is_file():
        raise ConfigError(f"{where}: no such run config file; give the YAML file of the run to start from "
                          "(relative to where snakemake runs)")
    pretraining = yaml.safe_load(link.config_file.read_text()) or {}
    if "sweep" in pretraining:
        raise ConfigError(f"{where} is a sweep (it has `sweep:`): name the config of one run")
    theirs = str(RunPaths.from_config({**pretraining, "run": str(pretraining.get("run"))}).root)
    if theirs == chain[-1]:
        raise ConfigError(f"{where} is this run itself ({theirs}): a run cannot start from its own export; name "
                          "the config of another run")
    if theirs in chain:
        raise ConfigError(f"model.pretrained forms a cycle of runs ({' -> '.join([*chain, theirs])}): each run must "
                          "start from one that does not start from it")
    try:
        return validate(pretraining, check_files=check_files, chain=chain)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _check_checkpoint(pretraining: dict, link: PretrainingLink) -> None:
    """A step must be one the run writes, and one that train.checkpoints_total_limit keeps."""
    if not isinstance(link.checkpoint, int):
        return
    steps = checkpoint_steps(pretraining["train"])
    where = f"model.pretrained.checkpoint {link.checkpoint}"
    if link.checkpoint not in steps:
        raise ConfigError(f"{where}: {link.config_file} writes checkpoints at steps {', '.join(map(str, steps))}; "
                          "name one of them, or final, or best")
    limit = pretraining["train"]["checkpoints_total_limit"]
    if limit is not None and link.checkpoint != steps[-1]:
        raise ConfigError(f"{where}: {link.config_file} has train.checkpoints_total_limit {limit}, whose retention may "
                          "delete that checkpoint's weights before the export reads them; name final or best (always "
                          "kept), or set its limit to null")


def _check_encoders(config: dict, pretraining: dict, link: PretrainingLink) -> None:
    """The fine-tune encodes its own instructions and frames with the pretraining's encoders,
    so every other encoder setting must be the pretraining's too."""
    differing = [f"encoders.{key}: {config['encoders'][key]!r} here, {pretraining['encoders'][key]!r} there"
                 for key in sorted(config["encoders"]) if key not in ENCODER_PATH_KEYS
                 and config["encoders"][key] != pretraining["encoders"].get(key)]
    if differing:
        raise ConfigError(f"model.pretrained.config {link.config_file}: the fine-tune reads the pretraining's encoders, "
                          f"but its encoder settings differ ({'; '.join(differing)}): copy that run's encoders section")


def resolve_pretraining(config: dict, validate: Validate, check_files: bool, chain: tuple[str, ...]) -> dict | None:
    """Resolve a validated config's link in place: model.pretrained becomes the export folder and
    the encoder paths the pretraining's encoders. Returns the pretraining's config (None
    without a link)."""
    link = pretraining_link(config)
    if link is None:
        return None
    pretraining = load_pretraining(link, validate, check_files, (*chain, str(RunPaths.from_config(config).root)))
    _check_checkpoint(pretraining, link)
    _check_encoders(config, pretraining, link)
    vision, text = encoder_dirs(pretraining, stage_paths(pretraining, "encoders"))
    # new mappings, not changes to the given ones: a caller's sections may be shared with other configs
    config["encoders"] = {**config["encoders"], "vision_path": str(vision), "text_path": str(text)}
    config["model"] = {**config["model"], "pretrained": str(export_folder(pretraining, link))}
    config["pretraining"] = {"config": str(link.config_file), "checkpoint": link.checkpoint,
                             "run": json.loads(json.dumps(pretraining))}
    return pretraining


def export_files(pretraining: dict, label: str) -> StageFiles:
    """The export job's files: the checkpoint it exports (every checkpoint and evaluation, for
    best, which it picks by held-out success), and the folder it writes."""
    paths = stage_paths(pretraining, "export")
    steps = checkpoint_steps(pretraining["train"])
    if label == "best":
        inputs = {"checkpoint_dirs": [str(paths.checkpoint(step)) for step in steps],
                  "eval_files": [str(paths.evaluation(step)) for step in steps]}
    else:
        step = steps[-1] if label == "final" else int(label.removeprefix("checkpoint-"))
        inputs = {"checkpoint_dirs": [str(paths.checkpoint(step))], "eval_files": []}
    return StageFiles(inputs, {"out_dir": str(paths.export(label))})


def pretraining_runs(configs: list[dict]) -> list[dict]:
    """The runs the given ones start from, and those they start from in turn, each once."""
    found: dict[str, dict] = {}
    pending = list(configs)
    while pending:
        linked = pending.pop().get("pretraining")
        root = None if linked is None else str(RunPaths.from_config(linked["run"]).root)
        if root is not None and root not in found:
            found[root] = linked["run"]
            pending.append(linked["run"])
    return list(found.values())


def export_jobs(configs: list[dict]) -> dict[str, dict[str, dict]]:
    """{results folder of a pretraining run: {export label: that run's config}} for every link."""
    jobs: dict[str, dict[str, dict]] = {}
    for config in configs:
        linked = config.get("pretraining")
        if linked is not None:
            label = PretrainingLink(Path(linked["config"]), linked["checkpoint"]).label
            jobs.setdefault(str(RunPaths.from_config(linked["run"]).root), {})[label] = linked["run"]
    return jobs


def export_run_file(pretraining: dict, label: str) -> dict:
    """The run file of an export job (rdtflow.stages.run_file's form): it needs no settings."""
    files = export_files(pretraining, label)
    return {"stage": "export", "step": None,
            "config": {"run": pretraining["run"], "results_dir": pretraining["results_dir"]},
            "inputs": files.inputs, "outputs": files.outputs}


def export_job_file(pretraining_root: str, label: str) -> Path:
    """Where an export job's run file lives, beside its run's other job files."""
    return RunPaths(Path(pretraining_root)).job_config(f"export-{label}")
