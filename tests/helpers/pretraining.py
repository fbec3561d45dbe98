"""The smallest pretraining on the built-in task's relation family, and a run that starts from
it: the configs the pretraining and demo-scaling tests share."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers.sizes import TINY_ENCODERS, TINY_MODEL

RELATIONS = ["on", "left of", "right of", "above", "below"]
ATTRIBUTE = {"source": "attribute", "key": "instruction"}
COMMON = {
    "encoders": TINY_ENCODERS,
    "model": {**TINY_MODEL, "pred_horizon": 8, "precompute_image_features": True},
    "hardware": {"device": "cpu", "per_device_batch": 8, "cpu_threads": 1},
    "eval": {"execute_horizon": 4, "open_loop_stride": 8, "videos": 1},
}


def pretraining_config(results: Path) -> dict:
    return {**COMMON, "run": "pretrain", "results_dir": str(results),
            "sim": {"env": "builtin-pick-place", "options": {"image_size": 32, "relations": RELATIONS,
                                                              "exclude_relations": ["below"]}},
            "data": {"instruction": ATTRIBUTE},
            "demos": {"generate": True, "n_episodes": 12}, "split": {"held_out": 4},
            "train": {"max_steps": 4, "checkpointing_period": 4, "effective_batch": 8, "lr_warmup_steps": 1,
                      "learning_rate": 0.003, "ema_decay": 0.5}}


def fine_tune_config(results: Path, pretraining_file: Path, **train: object) -> dict:
    return {**COMMON, "run": "finetune", "results_dir": str(results),
            "sim": {"env": "builtin-pick-place", "options": {"image_size": 32, "relations": ["below"]}},
            "data": {"instruction": ATTRIBUTE},
            "demos": {"generate": True, "n_episodes": 8}, "split": {"held_out": 2},
            "model": {**COMMON["model"], "pretrained": {"config": str(pretraining_file), "checkpoint": "final"}},
            "train": {"max_steps": 2, "checkpointing_period": 2, "effective_batch": 8, "lr_warmup_steps": 1,
                      "learning_rate": 0.001, "ema_decay": 0.9, **train}}


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path
