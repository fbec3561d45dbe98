"""Each augmentation changes the batch as specified, and nothing changes when it is off."""

from __future__ import annotations

import pytest
import torch

from rdtflow.config import ConfigError, validate_config
from rdtflow.train.augment import (
    Augmentation,
    MaskedConditions,
    augment_conditions,
    augment_frames,
    mask_precomputed_slots,
    sample_generators,
)

OFF = Augmentation(recipe="rdtflow", image=False, brightness=0.3, contrast=0.4, saturation=0.5, blur_prob=0.1,
                   pixel_noise_std=0.02, state_noise_snr_db=None, cond_mask_prob=0.0, external_camera_mask_prob=None)


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


def upstream_conditions(batch: int = 4) -> dict:
    return {**conditions(batch), "control_frequency": torch.full((batch,), 25.0)}


def masked_values() -> MaskedConditions:
    mean = torch.zeros(1, 128)
    mean[0, :14] = torch.arange(1, 15, dtype=torch.float32)
    return MaskedConditions(mean_state=mean, empty_instruction=torch.full((1, 8), 3.0))


def test_upstream_masking_replaces_each_condition_as_rdt_does():
    cond = upstream_conditions()
    out = augment_conditions(cond, with_(recipe="upstream", cond_mask_prob=1.0), sample_generators(0, range(4)),
                             torch.zeros(4, 1, 128), masked_values())
    assert torch.equal(out["state"], masked_values().mean_state.expand(4, 1, 128))  # the training-set mean state
    assert torch.all(out["action_mask"] == 0)  # the state's validity mask becomes zeros
    assert torch.all(out["control_frequency"] == 0)
    # the empty instruction's embedding, padded like any other instruction
    assert torch.all(out["lang_tokens"][:, 0] == 3.0) and torch.all(out["lang_tokens"][:, 1:] == 0)
    assert out["lang_mask"].tolist() == [[True, False, False, False, False]] * 4
    assert torch.equal(cond["action_mask"][:, :, :14], torch.ones(4, 1, 14))  # the input batch is left as it was


def test_upstream_masks_each_condition_on_its_own_draw():
    cond = upstream_conditions(batch=2000)
    out = augment_conditions(cond, with_(recipe="upstream", cond_mask_prob=0.5), sample_generators(0, range(2000)),
                             torch.zeros(2000, 1, 128), masked_values())
    masked = torch.stack([
        out["control_frequency"] == 0,
        out["state"][:, 0, 0] == 1.0,
        out["action_mask"][:, 0, 0] == 0,
        out["lang_mask"].sum(dim=1) == 1,
    ]).float()
    assert masked.mean(dim=1).tolist() == pytest.approx([0.5] * 4, abs=0.04)
    # independent draws: any two conditions are masked together a quarter of the time
    assert (masked[1] * masked[2]).mean().item() == pytest.approx(0.25, abs=0.04)


def test_upstream_state_noise_scales_with_each_dimensions_episode_std():
    cond = upstream_conditions(batch=4000)
    state_std = torch.zeros(4000, 1, 128)
    state_std[..., 0], state_std[..., 1] = 1.0, 0.1
    out = augment_conditions(cond, with_(recipe="upstream", state_noise_snr_db=20.0),
                             sample_generators(0, range(4000)), state_std, masked_values())
    noise = out["state"] - cond["state"]
    expected = 1 / 10 ** (20.0 / 20)  # std / sqrt(10^(snr/10))
    assert noise[..., 0].std().item() == pytest.approx(expected, rel=0.05)
    assert noise[..., 1].std().item() == pytest.approx(0.1 * expected, rel=0.05)
    assert torch.all(noise[..., 2:] == 0)  # no spread, no noise: padding stays exactly zero


def test_upstream_external_camera_probability_replaces_the_condition_one():
    raw = raw_frames(batch=500, slots=6)
    generators = sample_generators(0, range(500))
    valid = augment_frames(raw, 3, with_(recipe="upstream", cond_mask_prob=1.0, external_camera_mask_prob=0.0),
                           generators)["frames_valid"]
    assert valid[:, [0, 3]].all() and not valid[:, [1, 2, 4, 5]].any()
    same = augment_frames(raw, 3, with_(recipe="upstream", cond_mask_prob=0.3), sample_generators(0, range(500)))  # null
    dropped = 1 - same["frames_valid"].float().mean(dim=0)
    assert dropped.tolist() == pytest.approx([0.3] * 6, abs=0.07)  # the first camera like the others
