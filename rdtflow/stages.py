"""Which config sections each stage reads.

The workflow passes a stage only these sections, so Snakemake re-runs a stage exactly when
one of its own settings changes (an evaluation setting re-runs evaluation and the report,
never training), and the CLI refuses to read a section a stage did not declare.
"""

from __future__ import annotations

import json

ALWAYS = ("run", "results_dir")

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "demos": ("demos",),
    "encoders": ("encoders", "demos"),
    "validate": ("data", "demos"),
    "split": ("split",),
    "manifest": ("data",),
    "encode_lang": ("encoders",),
    "encode_images": ("data", "encoders"),
    "plan": ("demos", "data", "encoders", "model", "train", "hardware"),
    "train": ("seed", "demos", "data", "encoders", "model", "train", "hardware"),
    "eval": ("data", "demos", "encoders", "model", "train", "eval"),
    "baseline": ("data", "demos", "model", "eval"),
    "export": (),
    "report": ("seed", "demos", "data", "split", "encoders", "model", "train", "hardware", "eval"),
}


def stage_config(config: dict, stage: str) -> dict:
    """The part of a (validated) config that `stage` depends on."""
    keys = ALWAYS + STAGE_SECTIONS[stage]
    return {key: config[key] for key in keys if key in config}


def stage_config_json(config: dict, stage: str) -> str:
    """Canonical JSON of a stage's config: the Snakemake param that triggers re-runs."""
    return json.dumps(stage_config(config, stage), sort_keys=True, separators=(",", ":"))
