"""The paper config with changes, and a plan made from a config the way the plan stage makes it."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from rdtflow.config import validate_config
from rdtflow.model.policy import RDTConfig, RDTPolicy
from rdtflow.stages import stage_files
from rdtflow.train.plan import TrainingPlan, make_plan
from rdtflow.train.trainer import build_policy

REPO = Path(__file__).resolve().parents[2]
PAPER = yaml.safe_load((REPO / "config" / "paper" / "rdt1b-finetune.yaml").read_text())


def paper(**changes) -> dict:
    """The paper config; `section__key=value` replaces one key, `section=value` a whole section."""
    config = copy.deepcopy(PAPER)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    return config


def plan_for(config: dict) -> TrainingPlan:
    """The plan of a validated config, from the files its plan stage would read (on a laptop
    most of them are not there, and the plan says what it assumed)."""
    inputs = stage_files(config, "plan").inputs
    return make_plan(config, **{name: Path(path) for name, path in inputs.items()})


def planned(**changes) -> TrainingPlan:
    """The plan of the paper config with changes."""
    return plan_for(validate_config(paper(**changes)))


def policy_for(config: dict) -> RDTPolicy:
    """The policy a run's first training job starts from, built as the trainer builds it: the
    plan's model, with model.pretrained's weights when the config names them."""
    pretrained = config["model"]["pretrained"]
    return build_policy(RDTConfig.from_dict(plan_for(config).rdt_config, Path("plan.json")), config["seed"],
                        config["hardware"]["param_dtype"], None, Path(pretrained) if pretrained else None)
