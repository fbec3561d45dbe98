"""Loading and checking a run configuration (the schema documents every key).

Checks run when the workflow starts and when any stage loads its config, so a setting that
would be silently ignored, or a batch the hardware cannot reach, stops the run before any
job (and any GPU hour) starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration that would not train as the user wrote it."""


def _lint_training(config: dict) -> None:
    train = config["train"]
    if train["lr_warmup_steps"] > 0 and train["lr_scheduler"] == "constant":
        raise ConfigError(
            f"train.lr_warmup_steps is {train['lr_warmup_steps']} but train.lr_scheduler 'constant' has no warmup "
            "(diffusers' constant schedule ignores it): use lr_scheduler 'constant_with_warmup', or set "
            "lr_warmup_steps to 0"
        )
    if train["lr_warmup_steps"] >= train["max_steps"]:
        raise ConfigError(
            f"train.lr_warmup_steps ({train['lr_warmup_steps']}) is not shorter than train.max_steps "
            f"({train['max_steps']}): the run would end before the learning rate reaches its peak"
        )
    if train["checkpointing_period"] > train["max_steps"]:
        raise ConfigError(
            f"train.checkpointing_period ({train['checkpointing_period']}) is longer than train.max_steps "
            f"({train['max_steps']}): no checkpoint before the last step; lower the period"
        )
    model = config["model"]
    if model["precompute_image_features"] and train["augment"]["image"]:
        raise ConfigError(
            "train.augment.image changes every frame, so its features cannot be precomputed: set "
            "model.precompute_image_features to false or train.augment.image to false"
        )
    if model["precompute_image_features"] and model["train_vision"]:
        raise ConfigError(
            "model.precompute_image_features needs a frozen vision tower: set model.train_vision to false "
            "or precompute_image_features to false"
        )


def validate_config(config: dict, partial: bool = False) -> dict:
    """Validate against the schema, fill in defaults, resolve the hardware profile, lint.

    The same function runs at workflow start and in every CLI stage. A `partial` config (the
    sections the workflow passes one stage) keeps only the sections it was given, so a
    default never stands in for a section the stage did not receive.
    """
    from snakemake.utils import validate

    from rdtflow.train.hardware import fixed_layout, load_profile

    given = set(config)
    validate(config, str(SCHEMA_PATH), set_default=True)
    if partial:
        for key in set(config) - given - {"results_dir"}:
            del config[key]
    if "hardware" in config:
        config["hardware"] = load_profile(config["hardware"])
    if "train" in config and "model" in config:
        _lint_training(config)
    if "train" in config and "hardware" in config and config["hardware"]["per_device_batch"] != "auto":
        fixed_layout(config["hardware"], config["train"]["effective_batch"])
    return config


def load_config(source: str | Path) -> dict:
    """A whole config from a YAML/JSON file, or one stage's sections as inline JSON (what the
    workflow's rules pass)."""
    text = str(source)
    if text.lstrip().startswith("{"):
        return validate_config(json.loads(text), partial=True)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    return validate_config(yaml.safe_load(path.read_text()) or {})


def checkpoint_steps(train_cfg: dict) -> list[int]:
    """Optimizer steps at which a checkpoint is written: every period, and the last step."""
    period, last = train_cfg["checkpointing_period"], train_cfg["max_steps"]
    steps = list(range(period, last + 1, period))
    return steps if steps and steps[-1] == last else [*steps, last]
