"""What each stage reads and writes: its config sections and its files.

The workflow's rules declare their inputs and outputs with `stage_files`, and write the same
paths, with the stage's config sections, into the job's run file (RunPaths.job_config,
format in docs/formats.md) that they hand the stage (`rdtflow STAGE --run-config FILE`). So what a
rule declares is exactly what its stage reads and writes, and a stage sees only the config
sections listed here: Snakemake re-runs a stage exactly when one of its own settings changes
(an evaluation setting re-runs evaluation and the report, never training), and reading a
section a stage did not declare fails loudly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rdtflow.paths import RunPaths, demo_dir, encoder_dirs
from rdtflow.train.layout import checkpoint_steps, previous_checkpoint_step
from rdtflow.train.plan import PLANNED_SECTIONS

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
    "report": ("seed", "demos", "sim", "data", "split", "encoders", "model", "train", "hardware", "eval"),
}
STEP_STAGES = ("train", "eval", "retention")  # one job per checkpoint step


def active_jobs(config: dict) -> list[tuple[str, int | None]]:
    """(stage, checkpoint step or None) of every job this config runs, in workflow order."""
    encoders = config["encoders"]
    skipped = {
        "demos": not config["demos"]["generate"],
        "encoders": encoders["vision_path"] is not None and encoders["text_path"] is not None,
        "encode_images": not config["model"]["precompute_image_features"],
        "retention": config["train"]["checkpoints_total_limit"] is None,
    }
    steps = checkpoint_steps(config["train"])
    return [(stage, step) for stage in STAGE_SECTIONS if not skipped.get(stage, False)
            for step in (steps if stage in STEP_STAGES else [None])]


def stage_config(config: dict, stage: str) -> dict:
    """The part of a (validated) config that `stage` depends on."""
    keys = ALWAYS + STAGE_SECTIONS[stage]
    return {key: config[key] for key in keys if key in config}


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
    paths = RunPaths.from_config(config)
    vision, text = encoder_dirs(config)
    model = config.get("model", {})
    steps = checkpoint_steps(config["train"]) if "train" in config else []
    files = {
        "demos": lambda: StageFiles({}, {"out_dir": str(paths.demos)}),
        "encoders": lambda: StageFiles({}, {"vision_dir": str(paths.vision_encoder), "text_dir": str(paths.text_encoder)}),
        "validate": lambda: StageFiles({"demo_dir": str(demo_dir(config))},
                                       {"validated_out": str(paths.validated), "report_out": str(paths.validation_report)}),
        "split": lambda: StageFiles({"validated_path": str(paths.validated)}, {"index_out": str(paths.index)}),
        "manifest": lambda: StageFiles({"index_path": str(paths.index)},
                                       {"manifest_out": str(paths.manifest), "stats_out": str(paths.stats)}),
        "encode_lang": lambda: StageFiles({"index_path": str(paths.index), "text_encoder_dir": str(text)},
                                          {"out_path": str(paths.language)}),
        "encode_images": lambda: StageFiles({"manifest_path": str(paths.manifest), "vision_dir": str(vision)},
                                            {"out_path": str(paths.image_features)}),
        "plan": lambda: StageFiles(
            {"manifest_path": str(paths.manifest), "language_path": str(paths.language), "vision_dir": str(vision),
             "text_dir": str(text), **_pretrained(model)},
            {"plan_out": str(paths.plan), "plan_text_out": str(paths.plan_text)},
        ),
        "train": lambda: _train_files(config, paths, str(vision), steps, step),
        "eval": lambda: StageFiles(
            {"checkpoint_dir": str(paths.checkpoint(step)), "index_path": str(paths.index),
             "language_path": str(paths.language), "vision_dir": str(vision)},
            {"out_path": str(paths.evaluation(step)), "video_dir": str(paths.videos(step)),
             **_tracking(config, paths, "eval", step)},
        ),
        "retention": lambda: _retention_files(paths, steps, step),
        "baseline": lambda: StageFiles({"index_path": str(paths.index), "stats_path": str(paths.stats)},
                                       {"out_path": str(paths.baseline), "video_dir": str(paths.videos(None))}),
        "report": lambda: StageFiles(
            {"validation_json": str(paths.validation_report), "index_parquet": str(paths.index),
             "plan_json": str(paths.plan), "checkpoint_dirs": [str(paths.checkpoint(s)) for s in steps],
             "eval_files": [str(paths.evaluation(s)) for s in steps],
             "video_dirs": [str(paths.videos(s)) for s in steps], "baseline_json": str(paths.baseline),
             "benchmark_files": [str(paths.job_benchmark(stage, s)) for stage, s in active_jobs(config) if stage != "report"]},
            {"out_html": str(paths.report), "training_png": str(paths.training_figure),
             "success_png": str(paths.success_figure), "episode_lengths_png": str(paths.episode_lengths_figure),
             "provenance_out": str(paths.provenance)},
        ),
    }
    return files[stage]()


def _pretrained(model: dict) -> dict[str, str]:
    return {"pretrained_dir": model["pretrained"]} if model.get("pretrained") else {}


def _tracking(config: dict, paths: RunPaths, stage: str, step: int | str) -> dict[str, str]:
    """The folder of a train or eval job's tracker files, where train.report_to names trackers."""
    return {"tracking_out": str(paths.tracking(stage, step))} if config["train"]["report_to"] else {}


def _train_files(config: dict, paths: RunPaths, vision: str, steps: list[int], step: int | str) -> StageFiles:
    """Training to `step` reads the plan and the data it was made for, and resumes from the
    checkpoint before it (or starts from model.pretrained, or from scratch)."""
    model = config.get("model", {})
    inputs = {"plan_path": str(paths.plan), "manifest_path": str(paths.manifest), "stats_path": str(paths.stats),
              "language_path": str(paths.language), "vision_dir": vision}
    if model.get("precompute_image_features"):
        inputs["features_path"] = str(paths.image_features)
    previous = previous_checkpoint_step(steps, step) if isinstance(step, int) else None
    if previous is not None:
        inputs["resume_from"] = str(paths.checkpoint(previous))
    else:
        inputs |= _pretrained(model)
    return StageFiles(inputs, {"checkpoint_out": str(paths.checkpoint(step)), **_tracking(config, paths, "train", step)})


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
