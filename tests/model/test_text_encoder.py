"""encode_lang's text encoder placement: bf16 for a real T5, offload under a GPU budget, CPU without one."""

from __future__ import annotations

import torch

from rdtflow.config import validate_config
from rdtflow.model.encoders import (
    TextEncoder,
    build_small_text_encoder,
    text_encoder_placement,
)

SETTINGS = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4}


def encoders(**changes) -> dict:
    return validate_config({"run": "x", "encoders": changes})["encoders"]


def test_a_local_t5_loads_in_bf16_and_the_built_small_one_in_fp32():
    assert text_encoder_placement(encoders(text_device="cpu"), built_small=False) == {"dtype": torch.bfloat16}
    assert text_encoder_placement(encoders(text_device="cpu"), built_small=True) == {"dtype": torch.float32}
    assert text_encoder_placement(encoders(text_device="cpu", text_dtype="fp32"), built_small=False)["dtype"] == torch.float32


def test_without_a_gpu_the_text_encoder_runs_on_the_cpu_in_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert encoders()["text_device"] == "auto"
    assert text_encoder_placement(encoders(), built_small=False) == {"dtype": torch.bfloat16}


def test_a_gpu_budget_offloads_what_does_not_fit_to_cpu_memory():
    placement = text_encoder_placement(encoders(text_device="cuda", text_gpu_memory_gib=20), built_small=False)
    assert placement["device_map"] == "auto" and placement["max_memory"][0] == 20 * 2**30
    assert placement["max_memory"]["cpu"] > 0


def test_bf16_encoding_on_cpu_halves_the_weights_and_matches_fp32(tmp_path):
    build_small_text_encoder(tmp_path / "text", SETTINGS, max_tokens=16, seed=0)
    full = TextEncoder.load(tmp_path / "text", 16)
    half = TextEncoder.load(tmp_path / "text", 16, **text_encoder_placement(encoders(text_device="cpu"), False))
    size = {name: sum(p.numel() * p.element_size() for p in model.encoder.parameters()) for name, model in
            (("full", full), ("half", half))}
    assert size["half"] * 2 == size["full"]
    reference, approximate = full.encode("fold the towel"), half.encode("fold the towel")
    assert approximate.dtype == torch.float32 and approximate.device.type == "cpu"
    assert torch.nn.functional.cosine_similarity(reference, approximate, dim=-1).min() > 0.99
