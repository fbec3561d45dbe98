"""Official-layout checkpoints: strict loading, safe unpickling, export that loads back."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
import torch
from diffusers.training_utils import EMAModel

from rdtflow.config import validate_config
from rdtflow.model.policy import RDTPolicy
from rdtflow.model.shapes import encoder_shapes, policy_config
from rdtflow.model.weights import PICKLE, WeightsMismatch, export_checkpoint, load_pretrained
from rdtflow.train.checkpoint import save_checkpoint
from rdtflow.train.trainer import build_policy

from .test_policy import TINY, tiny_batch


def official_folder(tmp_path, policy: RDTPolicy):
    """What the published checkpoints look like: flat config.json, pytorch_model.bin, transformer in bf16."""
    folder = tmp_path / "rdt-official"
    folder.mkdir()
    policy.config.to_json(folder / "config.json")
    tensors = {name: (t.to(torch.bfloat16) if name.startswith("model.") else t) for name, t in policy.state_dict().items()}
    torch.save(tensors, folder / PICKLE)
    return folder


def test_an_official_layout_checkpoint_loads_strictly(tmp_path):
    torch.manual_seed(0)
    source = RDTPolicy(TINY)
    loaded = load_pretrained(official_folder(tmp_path, source))
    for name, tensor in source.state_dict().items():
        expected = tensor.to(torch.bfloat16).float() if name.startswith("model.") else tensor
        torch.testing.assert_close(loaded.state_dict()[name], expected, rtol=0, atol=0)


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.pop("model.blocks.1.attn.qkv.weight"), "missing tensor model.blocks.1.attn.qkv.weight"),
    (lambda t: t.update({"model.extra.weight": torch.zeros(1)}), "unexpected tensor model.extra.weight"),
    (lambda t: t.update({"img_adaptor.0.weight": torch.zeros(16, 7)}), "shape mismatch img_adaptor.0.weight: checkpoint (16, 7), model (16, 6)"),
])
def test_a_checkpoint_that_does_not_fit_names_the_tensor(tmp_path, damage, message):
    folder = official_folder(tmp_path, RDTPolicy(TINY))
    tensors = torch.load(folder / PICKLE, weights_only=True)
    damage(tensors)
    torch.save(tensors, folder / PICKLE)
    with pytest.raises(WeightsMismatch, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pretrained(folder)


class NotATensor:
    pass


def test_pickled_code_is_never_run(tmp_path):
    folder = official_folder(tmp_path, RDTPolicy(TINY))
    torch.save({"payload": NotATensor()}, folder / PICKLE)
    with pytest.raises(Exception, match="[Ww]eights only|weights_only|Unsupported global"):
        load_pretrained(folder)


def test_an_exported_checkpoint_loads_back_with_identical_outputs(tmp_path):
    torch.manual_seed(0)
    policy = RDTPolicy(TINY)
    ema = EMAModel(policy.parameters(), decay=0.5)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    for _ in range(3):
        policy.compute_loss(tiny_batch()).backward()
        optimizer.step()
        optimizer.zero_grad()
        ema.step(policy.parameters())
    checkpoint = tmp_path / "checkpoint-3"
    save_checkpoint(checkpoint, policy, optimizer, scheduler, ema, {"state_names": []}, {"step": 3}, pd.DataFrame())
    exported = export_checkpoint(checkpoint, tmp_path / "export")
    assert json.loads((exported / "config.json").read_text())["img_pos_embed_config"] == TINY.img_pos_embed_config

    def sample(model: RDTPolicy) -> torch.Tensor:
        return model.eval().predict_action(tiny_batch(seed=5), generator=torch.Generator().manual_seed(9))

    torch.testing.assert_close(sample(load_pretrained(exported)), sample(policy), rtol=0, atol=0)
    ema.copy_to(policy.parameters())
    torch.testing.assert_close(sample(load_pretrained(exported / "ema")), sample(policy), rtol=0, atol=0)


def test_pretrained_weights_start_training_and_must_match_the_architecture(tmp_path):
    config = validate_config({"run": "x", "results_dir": str(tmp_path)})
    planned = policy_config(config, encoder_shapes(config))
    torch.manual_seed(1)
    source = RDTPolicy(planned)
    config["model"]["pretrained"] = str(official_folder(tmp_path, source))
    started = build_policy(config, resume_from=None)
    torch.testing.assert_close(started.lang_adaptor[0].weight, source.lang_adaptor[0].weight)
    other = tmp_path / "other"
    other.mkdir()
    replace(planned, rdt={**planned.rdt, "depth": 2}).to_json(other / "config.json")
    config["model"]["pretrained"] = str(other)
    with pytest.raises(ValueError, match="rdt: .*'depth': 2"):
        build_policy(config, resume_from=None)
