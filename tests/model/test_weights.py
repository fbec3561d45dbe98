"""Official-layout checkpoints: strict loading, safe unpickling, export that loads back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from diffusers.training_utils import EMAModel

from rdtflow.config import validate_config
from rdtflow.errors import BadCheckpoint
from rdtflow.model.policy import RDTConfig, RDTPolicy
from rdtflow.model.rdt import UnbiasedVarianceNorm
from rdtflow.model.weights import WeightsMismatch, export_checkpoint, load_pretrained
from rdtflow.paths import CheckpointFile
from rdtflow.train.checkpoint import save_checkpoint
from tests.helpers.models import PUBLISHED_CONFIG, REFERENCE, TINY, official_folder, tiny_batch
from tests.helpers.plans import paper, plan_for, policy_for


def test_an_official_layout_checkpoint_loads_strictly(tmp_path):
    torch.manual_seed(0)
    source = RDTPolicy(TINY)
    loaded = load_pretrained(official_folder(tmp_path, source))
    assert loaded.config.rdt.norm == "timm-1.0.3"  # upstream's config.json names none: upstream's numerics
    assert isinstance(loaded.model.blocks[0].norm1, UnbiasedVarianceNorm)
    assert loaded.config.ema == json.loads(PUBLISHED_CONFIG.read_text())["ema"]
    for name, tensor in source.state_dict().items():
        expected = tensor.to(torch.bfloat16).float() if name.startswith("model.") else tensor
        torch.testing.assert_close(loaded.state_dict()[name], expected, rtol=0, atol=0)


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.pop("model.blocks.1.attn.qkv.weight"), "missing tensor model.blocks.1.attn.qkv.weight"),
    (lambda t: t.update({"model.extra.weight": torch.zeros(1)}), "unexpected tensor model.extra.weight"),
    (lambda t: t.update({"img_adaptor.0.weight": torch.zeros(16, 7)}),
     "shape mismatch img_adaptor.0.weight: checkpoint (16, 7), model (16, 6)"),
])
def test_a_checkpoint_that_does_not_fit_names_the_tensor(tmp_path, damage, message):
    folder = official_folder(tmp_path, RDTPolicy(TINY))
    tensors = torch.load(folder / CheckpointFile.UPSTREAM_WEIGHTS, weights_only=True)
    damage(tensors)
    torch.save(tensors, folder / CheckpointFile.UPSTREAM_WEIGHTS)
    with pytest.raises(WeightsMismatch, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pretrained(folder)


class WritesAFile:
    """Unpickling this calls open(path, "w"): code that runs, with a trace left behind."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_pickled_code_is_never_run(tmp_path):
    folder = official_folder(tmp_path, RDTPolicy(TINY))
    ran_when_trusted = tmp_path / "ran-when-trusted"
    torch.save({"payload": WritesAFile(ran_when_trusted)}, tmp_path / "trusted.bin")
    torch.load(tmp_path / "trusted.bin", weights_only=False)
    assert ran_when_trusted.is_file()  # the payload works when unpickled
    ran = tmp_path / "ran"
    torch.save({"payload": WritesAFile(ran)}, folder / CheckpointFile.UPSTREAM_WEIGHTS)
    refused = r"pytorch_model.bin holds objects other than tensors.*it refers to io.open\); convert it"
    with pytest.raises(BadCheckpoint, match=refused):
        load_pretrained(folder)
    assert not ran.exists()


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
    save_checkpoint(checkpoint, policy, optimizer, scheduler, ema, {"state_names": []}, {"step": 3}, pd.DataFrame(),
                    {"run": "x"}, {})
    exported = export_checkpoint(checkpoint, tmp_path / "export")
    assert json.loads((exported / "stats.json").read_text()) == {"state_names": []}
    written = json.loads((exported / "config.json").read_text())
    assert written["img_pos_embed_config"] == TINY.img_pos_embed_config
    assert written["rdt"]["norm"] == "rms"  # recorded, so that loading it back is unambiguous
    assert load_pretrained(exported).config.rdt.norm == "rms"

    def sample(model: RDTPolicy) -> torch.Tensor:
        return model.eval().predict_action(tiny_batch(seed=5), generator=torch.Generator().manual_seed(9))

    torch.testing.assert_close(sample(load_pretrained(exported)), sample(policy), rtol=0, atol=0)
    ema.copy_to(policy.parameters())
    torch.testing.assert_close(sample(load_pretrained(exported / "ema")), sample(policy), rtol=0, atol=0)


def test_pretrained_weights_start_training_and_must_match_the_architecture(tmp_path):
    config = validate_config({"run": "x", "results_dir": str(tmp_path)})
    planned = RDTConfig.from_dict(plan_for(config).rdt_config, tmp_path)
    torch.manual_seed(1)
    source = RDTPolicy(planned)
    config["model"]["pretrained"] = str(official_folder(tmp_path, source))
    started = policy_for(config)
    torch.testing.assert_close(started.lang_adaptor[0].weight, source.lang_adaptor[0].weight)
    other = tmp_path / "other"
    other.mkdir()
    replace(planned, rdt=replace(planned.rdt, depth=2)).to_json(other / "config.json")
    config["model"]["pretrained"] = str(other)
    with pytest.raises(WeightsMismatch, match="another architecture .*: rdt.depth: 2 vs 6; set model/encoders/data"):
        policy_for(config)


def test_the_published_rdt1b_config_plans_and_loads_through_model_pretrained(tmp_path, monkeypatch):
    """The published config.json itself, at 1B size on the meta device: the weights are meta
    tensors of the published names, shapes and dtypes (no 2.5 GB file in a test)."""
    folder = tmp_path / "rdt-1b"
    folder.mkdir()
    (folder / "config.json").write_bytes(PUBLISHED_CONFIG.read_bytes())
    dtypes = {"bfloat16": torch.bfloat16, "float32": torch.float32}
    published = {entry["key"]: torch.empty(entry["shape"], dtype=dtypes[entry["dtype"]], device="meta")
                 for entry in json.loads(REFERENCE.read_text())["tensors"]}
    monkeypatch.setattr("rdtflow.model.weights.read_state_dict", lambda source: published)
    config = validate_config(paper(model__pretrained=str(folder)))
    plan = plan_for(config)
    assert not [w for w in plan.warnings if "architecture" in w or "data.cameras" in w], plan.warnings
    assert plan.norm.startswith("timm-1.0.3 (upstream's:")
    with torch.device("meta"):
        policy = policy_for(config)
    assert policy.config.rdt.norm == "timm-1.0.3" and isinstance(policy.model.final_layer.norm_final, UnbiasedVarianceNorm)
    assert {name: list(t.shape) for name, t in policy.state_dict().items()} == {n: list(t.shape) for n, t in published.items()}
    # the profile's bf16 transformer and fp32 adaptors, tensor for tensor as upstream trains and publishes them
    assert {name: t.dtype for name, t in policy.state_dict().items()} == {n: t.dtype for n, t in published.items()}


def test_another_position_embedding_type_is_another_architecture(tmp_path):
    folder = official_folder(tmp_path, RDTPolicy(TINY))
    written = json.loads((folder / "config.json").read_text())
    written["rdt"]["cond_pos_embed_type"] = "learned"
    (folder / "config.json").write_text(json.dumps(written))
    assert RDTConfig.from_json(folder / "config.json").architecture_differences(TINY) == [
        "rdt.cond_pos_embed_type: learned vs multimodal"
    ]


@pytest.mark.parametrize(("where", "message"), [
    (lambda c: c.update({"dropout": 0.1}), "unknown key.s. dropout in config.json"),
    (lambda c: c["rdt"].update({"qk_norm": False}), "unknown key.s. qk_norm in its rdt mapping"),
    (lambda c: c["rdt"].update({"norm": "layer"}), "rdt.norm 'layer' is not one rdtflow computes"),
])
def test_a_config_key_rdtflow_does_not_know_stops_the_load(tmp_path, where, message):
    folder = official_folder(tmp_path, RDTPolicy(TINY))
    written = json.loads((folder / "config.json").read_text())
    where(written)
    (folder / "config.json").write_text(json.dumps(written))
    with pytest.raises(ValueError, match=message):
        load_pretrained(folder)
