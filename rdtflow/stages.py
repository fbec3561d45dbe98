"""What each stage reads and writes: its config sections and its files.

The workflow's rules declare their inputs and outputs with `stage_files`, and write the same
paths, with the stage's config sections, into the job's run file (RunPaths.job_config,
format in docs/formats.md) that they hand the stage (`rdtflow STAGE --run-config FILE`). So what a
rule declares is exactly what its stage reads and writes, and a stage sees only the config
sections listed here: Snakemake re-runs a stage exactly when one of its own settings changes
(an evaluation setting re-runs evaluation and the report, never training), and reading a
section a stage did not declare fails loudly.

A run with `shared_dir` (every run of a sweep, rdtflow/sweep.py) keeps the stages that do not
depend on the training seed or its schedule, SHARED_STAGES, under shared_dir/{stage}-{key},
where the key hashes the settings of that stage and of every stage before it: runs whose data
settings are equal read one set of demos, splits and encodings, and a run added later computes
only what is its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rdtflow.paths import RunPaths, encoder_dirs, user_demo_dir
from rdtflow.train.layout import PLANNED_SECTIONS, checkpoint_steps, previous_checkpoint_step

ALWAYS = ("run", "results_dir")

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "demos": ("demos", "sim", "data"),
    "encoders": ("encoders",),
    "validate": ("data", "demos"),
    "split": ("split",),
    "manifest": ("data",),
    "encode_lang": ("encoders",),
    "encode_images": ("data", "encoders"),
    "plan": PLANNED_SECTIONS,
    "train": ("seed", *PLANNED_SECTIONS),
    "eval": ("data", "sim", "encoders", "model", "train", "hardware", "eval"),
    "retention": ("train",),
    "baseline": ("data", "sim", "model", "eval"),
    "transfer": ("data", "sim", "encoders", "model", "train", "hardware", "eval"),
    "report": ("seed", "demos", "sim", "data", "split", "encoders", "model", "train", "hardware", "eval"),
}
STEP_STAGES = ("train", "eval", "retention")  # one job per checkpoint step
TRANSFER_EVALUATIONS = ("start-own", "start-pretraining", "final-pretraining")
"""eval.transfer's evaluations: (weights) on (whose held-out states)."""

UPSTREAM: dict[str, tuple[str, ...]] = {
    "validate": ("demos",),
    "split": ("validate",),
    "manifest": ("split",),
    "encode_lang": ("split", "encoders"),
    "encode_images": ("manifest", "encoders"),
    "baseline": ("split", "manifest"),
}
"""The stages whose files a shared stage reads (the others read none)."""
SHARED_STAGES = ("demos", "encoders", "validate", "split", "manifest", "encode_lang", "encode_images", "baseline")
"""What runs with one shared_dir compute once: everything before the plan, and the blind baseline.
The plan, training and what follows stay in each run's folder, since they name the run's own jobs."""


@cache
def _ancestors(stage: str) -> tuple[str, ...]:
    """`stage` and every stage whose files reach it, in a fixed order."""
    found = {stage}
    for upstream in UPSTREAM.get(stage, ()):
        found |= set(_ancestors(upstream))
    return tuple(sorted(found))


def stage_key(config: dict, stage: str) -> str:
    """A hash of the settings of `stage` and of every stage before it: equal keys, equal files."""
    settings = {name: {key: config[key] for key in STAGE_SECTIONS[name] if key in config} for name in _ancestors(stage)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def stage_paths(config: dict, stage: str) -> RunPaths:
    """The folder whose layout (RunPaths) holds `stage`'s files: the run's, or for a shared stage
    of a run with shared_dir, shared_dir/{stage}-{key}."""
    if config.get("shared_dir") is None or stage not in SHARED_STAGES:
        return RunPaths.from_config(config)
    return RunPaths(Path(config["shared_dir"]) / f"{stage}-{stage_key(config, stage)}")


def active_jobs(config: dict) -> list[tuple[str, int | None]]:
    """(stage, checkpoint step or None) of every job this config runs, in workflow order."""
    encoders = config["encoders"]
    skipped = {
        "demos": not config["demos"]["generate"],
        "encoders": encoders["vision_path"] is not None and encoders["text_path"] is not None,
        "encode_images": not config["model"]["precompute_image_features"],
        "retention": config["train"]["checkpoints_total_limit"] is None,
        "transfer": not (config["eval"]["transfer"] and "pretraining" in config),
    }
    steps = checkpoint_steps(config["train"])
    return [(stage, step) for stage in STAGE_SECTIONS if not skipped.get(stage, False)
            for step in (steps if stage in STEP_STAGES else [None])]


def stage_config(config: dict, stage: str) -> dict:
    """The part of a (validated) config that `stage` depends on. A shared stage's run and
    results_dir name its shared folder, so every run that shares it hands it the same config."""
    keys = ALWAYS + STAGE_SECTIONS[stage]
    sections = {key: config[key] for key in keys if key in config}
    root = stage_paths(config, stage).root
    if root != RunPaths.from_config(config).root:
        sections |= {"run": root.name, "results_dir": str(root.parent)}
    return sections


def stage_config_json(config: dict, stage: str) -> str:
    """Canonical JSON of a stage's config: the Snakemake param that triggers re-runs."""
    return json.dumps(stage_config(config, stage), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class StageFiles:
    """A job's input and output paths, by the name its stage function gives each."""

    inputs: dict[str, str | list[str]]
    outputs: dict[str, str]


def stage_files(config: dict, stage: str, step: int | str | None = None) -> StageFiles:
    """The files of one job of `stage` (of checkpoint `step` for train, eval and retention).

    `step` may be the pattern "{step}" where only the outputs are needed (a rule's `output:`).
    """
    def at(name: str) -> RunPaths:
        return stage_paths(config, name)

    paths = RunPaths.from_config(config)
    vision, text = encoder_dirs(config, at("encoders"))
    model = config.get("model", {})
    steps = checkpoint_steps(config["train"]) if "train" in config else []
    files = {
        "demos": lambda: StageFiles({}, {"out_dir": str(at("demos").demos)}),
        "encoders": lambda: StageFiles({}, {"vision_dir": str(at("encoders").vision_encoder),
                                            "text_dir": str(at("encoders").text_encoder)}),
        "validate": lambda: StageFiles({"demo_dir": str(demo_dir(config))},
                                       {"validated_out": str(at("validate").validated),
                                        "report_out": str(at("validate").validation_report)}),
        "split": lambda: StageFiles({"validated_path": str(at("validate").validated)}, {"index_out": str(at("split").index)}),
        "manifest": lambda: StageFiles({"index_path": str(at("split").index)},
                                       {"manifest_out": str(at("manifest").manifest), "stats_out": str(at("manifest").stats)}),
        "encode_lang": lambda: StageFiles({"index_path": str(at("split").index), "text_encoder_dir": str(text)},
                                          {"out_path": str(at("encode_lang").language)}),
        "encode_images": lambda: StageFiles({"manifest_path": str(at("manifest").manifest), "vision_dir": str(vision)},
                                            {"out_path": str(at("encode_images").image_features)}),
        "plan": lambda: StageFiles(
            {"manifest_path": str(at("manifest").manifest), "language_path": str(at("encode_lang").language),
             "vision_dir": str(vision), "text_dir": str(text), **_pretrained(model)},
            {"plan_out": str(paths.plan), "plan_text_out": str(paths.plan_text)},
        ),
        "train": lambda: _train_files(config, at, str(vision), str(text), steps, step),
        "eval": lambda: StageFiles(
            {"checkpoint_dir": str(paths.checkpoint(step)), "index_path": str(at("split").index),
             "language_path": str(at("encode_lang").language), "vision_dir": str(vision)},
            {"out_path": str(paths.evaluation(step)), "video_dir": str(paths.videos(step)),
             **_tracking(config, paths, "eval", step)},
        ),
        "retention": lambda: _retention_files(paths, steps, step),
        "transfer": lambda: _transfer_files(config, paths, str(vision), steps),
        "baseline": lambda: StageFiles({"index_path": str(at("split").index), "stats_path": str(at("manifest").stats)},
                                       {"out_path": str(at("baseline").baseline),
                                        "video_dir": str(at("baseline").videos(None))}),
        "report": lambda: StageFiles(
            {"validation_json": str(at("validate").validation_report), "index_parquet": str(at("split").index),
             "plan_json": str(paths.plan), "checkpoint_dirs": [str(paths.checkpoint(s)) for s in steps],
             "eval_files": [str(paths.evaluation(s)) for s in steps],
             "video_dirs": [str(paths.videos(s)) for s in steps], "baseline_json": str(at("baseline").baseline),
             "benchmark_files": [str(at(job).job_benchmark(job, s)) for job, s in active_jobs(config) if job != "report"]},
            {"out_html": str(paths.report), "training_png": str(paths.training_figure),
             "success_png": str(paths.success_figure), "episode_lengths_png": str(paths.episode_lengths_figure),
             "provenance_out": str(paths.provenance)},
        ),
    }
    return files[stage]()


def demo_dir(config: dict) -> Path:
    """The folder of episodes the validate stage reads: the demos stage's, or the user's."""
    return stage_paths(config, "demos").demos if config["demos"]["generate"] else user_demo_dir(config)


def _pretrained(model: dict) -> dict[str, str]:
    return {"pretrained_dir": model["pretrained"]} if model.get("pretrained") else {}


def _tracking(config: dict, paths: RunPaths, stage: str, step: int | str) -> dict[str, str]:
    """The folder of a train or eval job's tracker files, where train.report_to names trackers."""
    return {"tracking_out": str(paths.tracking(stage, step))} if config["train"]["report_to"] else {}


def _train_files(config: dict, at: Callable[[str], RunPaths], vision: str, text: str, steps: list[int],
                 step: int | str) -> StageFiles:
    """Training to `step` reads the plan and the data it was made for, and resumes from the
    checkpoint before it (or starts from model.pretrained, or from scratch). The text encoder
    is not read but recorded in each checkpoint: the policy needs it for a new instruction."""
    model = config.get("model", {})
    paths = at("train")
    inputs = {"plan_path": str(paths.plan), "manifest_path": str(at("manifest").manifest),
              "stats_path": str(at("manifest").stats), "language_path": str(at("encode_lang").language),
              "vision_dir": vision, "text_dir": text}
    if model.get("precompute_image_features"):
        inputs["features_path"] = str(at("encode_images").image_features)
    previous = previous_checkpoint_step(steps, step) if isinstance(step, int) else None
    if previous is not None:
        inputs["resume_from"] = str(paths.checkpoint(previous))
    else:
        inputs |= _pretrained(model)
    return StageFiles(inputs, {"checkpoint_out": str(paths.checkpoint(step)), **_tracking(config, paths, "train", step)})


def _transfer_files(config: dict, paths: RunPaths, vision: str, steps: list[int]) -> StageFiles:
    """eval.transfer: the weights this run starts from (the export model.pretrained became) and
    its final checkpoint, with this run's and the pretraining's held-out states and instructions.
    A run without a link has no transfer job (active_jobs), only its output names."""
    outputs = {f"{name.replace('-', '_')}_out": str(paths.transfer(name)) for name in TRANSFER_EVALUATIONS}
    if "pretraining" not in config:
        return StageFiles({}, outputs)
    pretraining = config["pretraining"]["run"]
    return StageFiles(
        {"start_dir": config["model"]["pretrained"], "final_dir": str(paths.checkpoint(steps[-1])),
         "index_path": str(stage_paths(config, "split").index), "language_path": str(stage_paths(config, "encode_lang").language),
         "pretraining_index_path": str(stage_paths(pretraining, "split").index),
         "pretraining_language_path": str(stage_paths(pretraining, "encode_lang").language), "vision_dir": vision},
        outputs,
    )


def _retention_files(paths: RunPaths, steps: list[int], step: int | str) -> StageFiles:
    """Retention after checkpoint `step` is evaluated weighs every checkpoint evaluated by then."""
    earlier = [s for s in steps if s <= step] if isinstance(step, int) else []
    return StageFiles(
        {"checkpoint_dirs": [str(paths.checkpoint(s)) for s in earlier],
         "eval_files": [str(paths.evaluation(s)) for s in earlier]},
        {"record_out": str(paths.retention(step))},
    )


def run_file(config: dict, stage: str, step: int | None = None) -> dict:
    """What a job's run file holds: its stage, its step, its config sections and its files."""
    files = stage_files(config, stage, step)
    return {"stage": stage, "step": step, "config": stage_config(config, stage),
            "inputs": files.inputs, "outputs": files.outputs}
