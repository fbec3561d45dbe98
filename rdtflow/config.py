"""Loading and validating a run configuration (the schema documents every key)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


def validate_config(config: dict) -> dict:
    """Validate against the schema and fill in defaults, exactly as the workflow does at start."""
    from snakemake.utils import validate

    validate(config, str(SCHEMA_PATH), set_default=True)
    return config


def load_config(source: str | Path) -> dict:
    """A config from a YAML/JSON file, or an inline JSON object (what Snakemake rules pass)."""
    text = str(source)
    if text.lstrip().startswith("{"):
        config = json.loads(text)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        config = yaml.safe_load(path.read_text()) or {}
    return validate_config(config)


def checkpoint_steps(train_cfg: dict) -> list[int]:
    """Optimizer steps at which a checkpoint is written: every period, and the last step."""
    period, last = train_cfg["checkpointing_period"], train_cfg["max_steps"]
    steps = list(range(period, last + 1, period))
    return steps if steps and steps[-1] == last else [*steps, last]
