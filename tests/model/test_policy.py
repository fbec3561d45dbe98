"""The RDT model: official names and shapes, loss, sampling, encoders."""

from __future__ import annotations

import json

import numpy as np
import torch

from rdtflow.model.encoders import TextEncoder, VisionEncoder, build_small_text_encoder, build_small_vision_tower
from rdtflow.model.policy import RDTConfig, RDTPolicy
from tests.helpers.models import REFERENCE, TINY, tiny_batch


def test_rdt1b_state_dict_matches_the_published_checkpoint_exactly():
    reference = json.loads(REFERENCE.read_text())
    with torch.device("meta"):
        policy = RDTPolicy(RDTConfig())
    ours = {name: list(tensor.shape) for name, tensor in policy.state_dict().items()}
    theirs = {entry["key"]: entry["shape"] for entry in reference["tensors"]}
    assert ours == theirs
    assert sum(tensor.numel() for tensor in policy.state_dict().values()) == reference["total_params"] == 1_228_319_872


def test_loss_ignores_padding_dimensions_and_padded_language_tokens():
    torch.manual_seed(0)
    policy = RDTPolicy(TINY)
    batch = tiny_batch()
    loss = policy.compute_loss(batch)
    changed = dict(batch)
    changed["lang_tokens"] = batch["lang_tokens"].clone()
    changed["lang_tokens"][1:, 2:] = 100.0  # masked-out positions
    torch.testing.assert_close(policy.compute_loss(changed), loss)


def test_training_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    policy = RDTPolicy(TINY)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    batch = tiny_batch()
    first = policy.compute_loss(batch).item()
    for _ in range(60):
        loss = policy.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3 * first


def test_per_sample_loss_does_not_depend_on_batch_composition():
    torch.manual_seed(0)
    policy = RDTPolicy(TINY)
    batch = tiny_batch(batch=4)
    whole = policy.compute_loss(batch)
    halves = [policy.compute_loss({k: v[i : i + 2] for k, v in batch.items()}) for i in (0, 2)]
    torch.testing.assert_close(whole, torch.stack(halves).mean())


def test_predict_action_shape_and_masked_dimensions():
    torch.manual_seed(0)
    policy = RDTPolicy(TINY).eval()
    action = policy.predict_action(tiny_batch(), generator=torch.Generator().manual_seed(1))
    assert action.shape == (3, 4, 128)
    assert torch.all(action[..., 1] == 0) and torch.isfinite(action).all()


def test_config_json_round_trip(tmp_path):
    TINY.to_json(tmp_path / "config.json")
    assert RDTConfig.from_json(tmp_path / "config.json") == TINY
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["rdt"] == {"hidden_size": 16, "depth": 2, "num_heads": 2, "cond_pos_embed_type": "multimodal",
                              "norm": "rms"}
    assert "ema" not in written  # rdtflow's EMA is train.ema_decay; only a checkpoint that had upstream's writes it
    assert written["noise_scheduler"]["prediction_type"] == "sample"


def test_small_encoders_load_through_from_pretrained(tmp_path):
    build_small_vision_tower(tmp_path / "vision", 32, {"hidden_size": 16, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 32, "patch_size": 8}, seed=0)
    build_small_text_encoder(tmp_path / "text", {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1,
                             "num_heads": 2}, max_tokens=12, seed=0)
    vision = VisionEncoder.load(tmp_path / "vision")
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (2, 48, 64, 3), dtype=np.uint8))
    tokens = vision.encode(images)  # non-square frames are padded to square first
    assert tokens.shape == (2, vision.tokens_per_image, 16) == (2, 16, 16)
    text = TextEncoder.load(tmp_path / "text", max_tokens=12)
    short, long = text.encode("pick"), text.encode("pick up the red block and place it")
    assert short.shape == (5, 16) and long.shape == (12, 16)  # bytes + end token, truncated at 12


def test_padding_to_square_uses_the_mean_colour(tmp_path):
    build_small_vision_tower(tmp_path / "vision", 16, {"hidden_size": 8, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 16, "patch_size": 8}, seed=0)
    vision = VisionEncoder.load(tmp_path / "vision")
    wide = torch.full((1, 8, 16, 3), 255, dtype=torch.uint8)
    pixels = vision.preprocess(wide)
    assert pixels.shape == (1, 3, 16, 16)
    assert torch.allclose(pixels[0, :, 0, :], torch.zeros(3, 16), atol=0.02)  # mean colour -> 0 after normalising
    assert torch.allclose(pixels[0, :, 8, :], torch.ones(3, 16), atol=0.02)  # white -> +1
