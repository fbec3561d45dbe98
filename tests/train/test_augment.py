"""Each augmentation changes the batch as specified, and nothing changes when it is off."""

from __future__ import annotations

import pytest
import torch

from rdtflow.config import ConfigError, validate_config
from rdtflow.train.augment import (
    Augmentation,
    augment_conditions,
    augment_frames,
    mask_precomputed_slots,
    sample_generators,
)

OFF = Augmentation(image=False, brightness=0.3, contrast=0.4, saturation=0.5, blur_prob=0.1, pixel_noise_std=0.02,
                   state_noise_snr_db=None, cond_mask_prob=0.0, external_camera_mask_prob=0.0)


def with_(**changes) -> Augmentation:
    return Augmentation(**{**OFF.__dict__, **changes})


def raw_frames(batch: int = 4, slots: int = 6) -> dict:
    frames = torch.randint(30, 220, (batch, slots, 8, 8, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return {"frames": frames, "frames_valid": torch.ones(batch, slots, dtype=torch.bool)}


def conditions(batch: int = 4) -> dict:
    mask = torch.zeros(batch, 1, 128)
    mask[..., :14] = 1
    return {"state": torch.randn(batch, 1, 128) * mask, "action_mask": mask,
            "lang_tokens": torch.randn(batch, 5, 8), "lang_mask": torch.ones(batch, 5, dtype=torch.bool)}


def test_everything_off_changes_nothing():
    assert not OFF.active
    raw, cond = raw_frames(), conditions()
    generators = sample_generators(0, range(4))
    out = augment_frames(raw, 3, OFF, generators)
    assert torch.equal(out["frames"], raw["frames"]) and torch.equal(out["frames_valid"], raw["frames_valid"])
    out = augment_conditions(cond, OFF, generators)
    assert all(torch.equal(out[key], cond[key]) for key in cond)


def test_image_augmentation_changes_pixels_reproducibly_and_keeps_uint8():
    raw, aug = raw_frames(), with_(image=True, blur_prob=0.5)
    first = augment_frames(raw, 3, aug, sample_generators(0, range(4)))["frames"]
    again = augment_frames(raw, 3, aug, sample_generators(0, range(4)))["frames"]
    assert first.dtype == torch.uint8 and first.shape == raw["frames"].shape
    assert torch.equal(first, again) and not torch.equal(first, raw["frames"])
    other = augment_frames(raw, 3, aug, sample_generators(0, range(4, 8)))["frames"]
    assert not torch.equal(first, other)


def test_state_noise_has_the_configured_signal_to_noise_ratio():
    cond = conditions(batch=512)
    out = augment_conditions(cond, with_(state_noise_snr_db=20.0), sample_generators(0, range(512)))
    noise = out["state"] - cond["state"]
    assert torch.all(noise[..., 14:] == 0)  # padding dimensions stay exactly zero
    snr_db = 10 * torch.log10((cond["state"][..., :14] ** 2).mean() / (noise[..., :14] ** 2).mean())
    assert snr_db.item() == pytest.approx(20.0, abs=0.5)


def test_condition_masking_drops_instruction_state_and_images():
    raw, cond, aug = raw_frames(), conditions(), with_(cond_mask_prob=1.0)
    generators = sample_generators(0, range(4))
    assert not augment_frames(raw, 3, aug, generators)["frames_valid"].any()
    out = augment_conditions(cond, aug, generators)
    assert torch.all(out["state"] == 0) and torch.all(out["lang_tokens"] == 0)
    assert out["lang_mask"].sum(dim=1).tolist() == [1, 1, 1, 1]  # one empty token, never an all-masked row


def test_condition_masking_probability_is_respected():
    cond = conditions(batch=1000)
    out = augment_conditions(cond, with_(cond_mask_prob=0.1), sample_generators(0, range(1000)))
    dropped = (out["lang_mask"].sum(dim=1) == 1).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.03)


def test_external_camera_masking_drops_only_the_first_camera():
    raw = raw_frames(slots=6)  # 2 frames x 3 cameras
    valid = augment_frames(raw, 3, with_(external_camera_mask_prob=1.0), sample_generators(0, range(4)))["frames_valid"]
    assert valid.tolist() == [[False, True, True, False, True, True]] * 4


def test_precomputed_tokens_of_dropped_slots_become_blank():
    blank = torch.full((2, 4), 7.0)
    raw = {"image_tokens": torch.zeros(3, 6 * 2, 4)}
    out = mask_precomputed_slots(raw, 3, blank, with_(external_camera_mask_prob=1.0), sample_generators(0, range(3)))
    tokens = out["image_tokens"].view(3, 6, 2, 4)
    assert torch.all(tokens[:, [0, 3]] == 7.0) and torch.all(tokens[:, [1, 2, 4, 5]] == 0.0)


def test_image_augmentation_cannot_use_precomputed_features():
    with pytest.raises(ConfigError, match="precompute_image_features"):
        validate_config({"run": "x", "model": {"precompute_image_features": True}, "train": {"augment": {"image": True}}})
