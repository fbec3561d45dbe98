# Helpers shared by the rules: config validation, paths, per-stage settings.
from pathlib import Path

from rdtflow.config import checkpoint_steps, validate_config
from rdtflow.paths import RunPaths, demo_dir, encoder_dirs
from rdtflow.stages import stage_config_json


# Schema (workflow/schemas/config.schema.yaml) with defaults, the hardware profile, the
# training lints, the folders the config names and the split's size: a bad config stops
# here, before any job runs.
validate_config(config, check_files=True)

PATHS = RunPaths.from_config(config)
CHECKPOINT_STEPS = checkpoint_steps(config["train"])
VISION_DIR, TEXT_DIR = encoder_dirs(config)


wildcard_constraints:
    step=r"\d+",


def settings(stage):
    """The config sections a stage reads, as JSON: a change re-runs exactly that stage and its dependants."""
    return stage_config_json(config, stage)


def log_file(name):
    return str(PATHS.root / "logs" / f"{name}.log")


def demo_inputs():
    """Generated demos (a folder this workflow writes) or every *.hdf5 file of the user's folder."""
    if config["demos"]["generate"]:
        return str(PATHS.demos)
    # validate_config(check_files=True) above has made sure the folder exists.
    return sorted(str(path) for path in demo_dir(config).rglob("*.hdf5"))


def previous_checkpoint(wildcards):
    """Each training job resumes from the checkpoint before it, so a failed job loses one period."""
    position = CHECKPOINT_STEPS.index(int(wildcards.step))
    return {"previous": str(PATHS.checkpoint(CHECKPOINT_STEPS[position - 1]))} if position else {}


def image_features():
    """The precomputed image-feature table, when the config asks for one."""
    return [str(PATHS.image_features)] if config["model"]["precompute_image_features"] else []


def resume_argument(wildcards, input):
    return f"--resume-from {input.previous}" if "previous" in input.keys() else ""


def final_outputs():
    return [str(PATHS.report)]
