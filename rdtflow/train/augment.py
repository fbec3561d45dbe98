"""Training augmentations as in RDT fine-tuning (config key train.augment).

- image augmentation: colour jitter (brightness, contrast, saturation), Gaussian blur and
  pixel noise on the camera frames before the vision tower;
- state noise at a signal-to-noise ratio in dB on the normalised state (RDT: 40 dB);
- condition masking: each sample's instruction, each image slot and the state are dropped
  with a probability, so the policy does not lean on any one of them;
- external-camera masking: the first camera slot (the fixed, external view) is dropped with
  its own probability.

Every random draw comes from a generator seeded with (seed, sample number), like the
diffusion noise, so augmentations too are reproduced exactly on resume and do not depend on
the process layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

STREAM = 7_919  # separates augmentation draws from the diffusion draws of the same sample


@dataclass(frozen=True)
class Augmentation:
    image: bool
    brightness: float
    contrast: float
    saturation: float
    blur_prob: float
    pixel_noise_std: float
    state_noise_snr_db: float | None
    cond_mask_prob: float
    external_camera_mask_prob: float

    @classmethod
    def from_config(cls, augment_cfg: dict) -> "Augmentation":
        return cls(**augment_cfg)

    @property
    def active(self) -> bool:
        return (self.image or self.state_noise_snr_db is not None or self.cond_mask_prob > 0
                or self.external_camera_mask_prob > 0)


def sample_generators(seed: int, sample_numbers: range) -> list[torch.Generator]:
    return [torch.Generator().manual_seed((seed * 1_000_003 + number) * STREAM + 1) for number in sample_numbers]


def _uniform(generator: torch.Generator, spread: float) -> float:
    return 1.0 + spread * (2 * torch.rand(1, generator=generator).item() - 1)


def jitter_image(frame: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """One uint8 (H, W, 3) frame -> augmented uint8 frame."""
    pixels = frame.permute(2, 0, 1).float() / 255.0  # (3, H, W)
    pixels = pixels * _uniform(generator, aug.brightness)
    mean = pixels.mean()
    pixels = (pixels - mean) * _uniform(generator, aug.contrast) + mean
    grey = (pixels * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
    pixels = (pixels - grey) * _uniform(generator, aug.saturation) + grey
    if torch.rand(1, generator=generator).item() < aug.blur_prob:
        kernel = torch.tensor([1.0, 2.0, 1.0]) / 4
        kernel2d = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        pixels = F.conv2d(F.pad(pixels[None], (1, 1, 1, 1), mode="replicate"), kernel2d, groups=3)[0]
    if aug.pixel_noise_std > 0:
        pixels = pixels + aug.pixel_noise_std * torch.randn(pixels.shape, generator=generator)
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)


def drop_image_slots(valid: torch.Tensor, cameras: int, aug: Augmentation, generators: list[torch.Generator]) -> torch.Tensor:
    """(B, S) slot validity with condition-masked slots and masked external-camera slots off."""
    valid = valid.clone()
    for row, generator in enumerate(generators):
        for slot in range(valid.shape[1]):
            drop = torch.rand(1, generator=generator).item() < aug.cond_mask_prob
            if slot % cameras == 0:  # slot order is frame-major, camera 0 is the external view
                drop |= torch.rand(1, generator=generator).item() < aug.external_camera_mask_prob
            if drop:
                valid[row, slot] = False
    return valid


def augment_frames(raw: dict, cameras: int, aug: Augmentation, generators: list[torch.Generator]) -> dict:
    """Image augmentation and slot masking on a collated batch of frames."""
    frames = raw["frames"].clone()
    if aug.image:
        for row, generator in enumerate(generators):
            for slot in range(frames.shape[1]):
                frames[row, slot] = jitter_image(frames[row, slot], aug, generator)
    return {**raw, "frames": frames, "frames_valid": drop_image_slots(raw["frames_valid"], cameras, aug, generators)}


def mask_precomputed_slots(raw: dict, cameras: int, blank: torch.Tensor, aug: Augmentation,
                           generators: list[torch.Generator]) -> dict:
    """Slot masking when image tokens are precomputed: dropped slots get the blank tokens."""
    tokens = raw["image_tokens"].clone()  # (B, S * P, D)
    patches = blank.shape[0]
    slots = tokens.shape[1] // patches
    keep = drop_image_slots(torch.ones(len(tokens), slots, dtype=torch.bool), cameras, aug, generators)
    for row, slot in (~keep).nonzero().tolist():
        tokens[row, slot * patches : (slot + 1) * patches] = blank.float()
    return {**raw, "image_tokens": tokens}


def augment_conditions(batch: dict[str, torch.Tensor], aug: Augmentation, generators: list[torch.Generator]) -> dict:
    """State noise at the configured SNR, and state / instruction condition masking."""
    state, mask = batch["state"].clone(), batch["action_mask"]
    lang_tokens, lang_mask = batch["lang_tokens"].clone(), batch["lang_mask"].clone()
    for row, generator in enumerate(generators):
        if aug.state_noise_snr_db is not None:
            valid = mask[row] > 0
            power = (state[row][valid] ** 2).mean()
            std = torch.sqrt(power / 10 ** (aug.state_noise_snr_db / 10))
            state[row] = state[row] + std * torch.randn(state[row].shape, generator=generator) * mask[row]
        if torch.rand(1, generator=generator).item() < aug.cond_mask_prob:
            state[row] = 0.0
        if torch.rand(1, generator=generator).item() < aug.cond_mask_prob:
            # An empty instruction: one zero token, so attention never sees an all-masked row.
            lang_tokens[row] = 0.0
            lang_mask[row] = False
            lang_mask[row, 0] = True
    return {**batch, "state": state, "lang_tokens": lang_tokens, "lang_mask": lang_mask}
