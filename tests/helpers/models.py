"""A tiny RDT config and batch, and checkpoints as upstream and as rdtflow write them."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from rdtflow.model.policy import ARCHITECTURE_FIELDS, RDTConfig, RDTPolicy, TransformerConfig
from rdtflow.paths import CheckpointFile
from rdtflow.train.checkpoint import save_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = FIXTURES / "rdt1b_state_dict.json"
PUBLISHED_CONFIG = FIXTURES / "rdt1b_config.json"
TINY = RDTConfig(pred_horizon=4, lang_token_dim=8, img_token_dim=6, max_lang_cond_len=5, img_cond_len=3,
                 rdt=TransformerConfig(hidden_size=16, depth=2, num_heads=2, norm="rms"))


def tiny_batch(batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, 1, 128)
    mask[..., [0, 5, 60]] = 1
    return {
        "state": torch.randn(batch, 1, 128, generator=generator) * mask,
        "action_mask": mask,
        "loss_mask": mask,
        "lang_tokens": torch.randn(batch, 5, 8, generator=generator),
        "lang_mask": torch.tensor([[True] * 5] + [[True, True, False, False, False]] * (batch - 1)),
        "img_tokens": torch.randn(batch, 3, 6, generator=generator),
        "control_frequency": torch.full((batch,), 25.0),
        "action": torch.randn(batch, 4, 128, generator=generator) * mask,
        "noise": torch.randn(batch, 4, 128, generator=generator),
        "timestep": torch.randint(0, 1000, (batch,), generator=generator),
    }


def upstream_config_json(config: RDTConfig) -> dict:
    """config.json as upstream writes it (the published file's keys: cond_pos_embed_type, an ema
    section, no norm), with this model's sizes."""
    published, ours = json.loads(PUBLISHED_CONFIG.read_text()), asdict(config)
    return {**published, **{name: ours[name] for name in ARCHITECTURE_FIELDS},
            "rdt": {**published["rdt"], **{key: ours["rdt"][key] for key in ("hidden_size", "depth", "num_heads")}}}


def official_folder(tmp_path, policy: RDTPolicy):
    """What upstream's checkpoints look like: its config.json, pytorch_model.bin, transformer in bf16."""
    folder = tmp_path / "rdt-official"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(upstream_config_json(policy.config), indent=2))
    tensors = {name: (t.to(torch.bfloat16) if name.startswith("model.") else t) for name, t in policy.state_dict().items()}
    torch.save(tensors, folder / CheckpointFile.UPSTREAM_WEIGHTS)
    return folder


def write_checkpoint(folder: Path, step: int, ema: EMAModel | None = None, policy: RDTPolicy | None = None) -> Path:
    """`folder/checkpoint-{step}` as a training job writes it, of a tiny policy."""
    torch.manual_seed(step)
    policy = policy or RDTPolicy(TINY)
    optimizer = torch.optim.AdamW(policy.parameters())
    scheduler = get_scheduler("constant", optimizer)
    out = folder / f"checkpoint-{step}"
    save_checkpoint(out, policy, optimizer, scheduler, ema, {"normalization": {"mode": "min_max"}},
                    {"step": step}, pd.DataFrame({"step": [step]}), {"run": "x"}, {})
    return out
