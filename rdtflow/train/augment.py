"""Training augmentations as in RDT fine-tuning (config key train.augment).

- image augmentation: colour jitter (brightness, contrast, saturation), Gaussian blur and
  pixel noise on the camera frames before the vision tower;
- state noise at a signal-to-noise ratio in dB on the normalised state (RDT: 40 dB);
- condition masking: each sample's instruction, each image slot and the state are masked
  with a probability, so the policy does not lean on any one of them;
- external-camera masking: the first camera slot (the fixed, external view) has a
  probability of its own.

`recipe` says what masking and noise do. `upstream` is RDT's train/dataset.py exactly: a
masked instruction becomes the empty instruction's embedding, a masked state the
training-set mean, a masked state mask zeros, a masked control frequency 0, each on its own
draw, and the state noise's std is each dimension's std over the episode / sqrt(10^(snr/10)).
`rdtflow` is what rdtflow did before it matched upstream, kept so that earlier runs rerun
exactly: zeros for the state (its mask kept), one zero token for the instruction, and noise
scaled by the power of the sample's own state.

Every random draw comes from a generator seeded with (seed, sample number), like the
diffusion noise, so augmentations too are reproduced exactly on resume and do not depend on
the process layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rdtflow.model.inputs import PolicyInputs
from rdtflow.model.language import EMPTY_INSTRUCTION

STREAM = 7_919  # separates augmentation draws from the diffusion draws of the same sample


@dataclass(frozen=True)
class Augmentation:
    recipe: str  # upstream | rdtflow
    image: bool
    brightness: float
    contrast: float
    saturation: float
    blur_prob: float
    pixel_noise_std: float
    state_noise_snr_db: float | None
    cond_mask_prob: float
    external_camera_mask_prob: float | None

    @classmethod
    def from_config(cls, augment_cfg: dict) -> "Augmentation":
        return cls(**augment_cfg)

    @property
    def active(self) -> bool:
        return (self.image or self.state_noise_snr_db is not None or self.cond_mask_prob > 0
                or bool(self.external_camera_mask_prob))


@dataclass(frozen=True)
class MaskedConditions:
    """What the upstream recipe puts in place of a masked state and a masked instruction."""

    mean_state: torch.Tensor  # (1, 128) the training set's mean state, unified, in model units
    empty_instruction: torch.Tensor  # (L, D) the empty instruction's embedding

    @classmethod
    def from_inputs(cls, inputs: PolicyInputs, stats: dict) -> "MaskedConditions":
        mean = np.asarray(stats["qpos"]["mean"], np.float32)
        tokens, _ = inputs.language_batch([EMPTY_INSTRUCTION])
        return cls(mean_state=torch.from_numpy(inputs.unified_state(mean))[None], empty_instruction=tokens[0])


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


def _slot_dropped(external: bool, aug: Augmentation, generator: torch.Generator) -> bool:
    """One slot's masking draw(s); `external` is the first camera's slot."""
    if aug.recipe == "upstream":  # RDT's cam_ext_mask_prob replaces cond_mask_prob for that camera
        own = aug.external_camera_mask_prob if external and aug.external_camera_mask_prob is not None else None
        return torch.rand(1, generator=generator).item() < (aug.cond_mask_prob if own is None else own)
    drop = torch.rand(1, generator=generator).item() < aug.cond_mask_prob
    if external:
        drop |= torch.rand(1, generator=generator).item() < (aug.external_camera_mask_prob or 0.0)
    return drop


def drop_image_slots(valid: torch.Tensor, cameras: int, aug: Augmentation, generators: list[torch.Generator]) -> torch.Tensor:
    """(B, S) slot validity with condition-masked slots and masked external-camera slots off."""
    valid = valid.clone()
    for row, generator in enumerate(generators):
        for slot in range(valid.shape[1]):
            # slot order is frame-major, camera 0 is the external view
            if _slot_dropped(slot % cameras == 0, aug, generator):
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


def augment_conditions(
    batch: dict[str, torch.Tensor],
    aug: Augmentation,
    generators: list[torch.Generator],
    state_std: torch.Tensor | None = None,
    masked: MaskedConditions | None = None,
) -> dict:
    """State noise at the configured SNR, and condition masking, by `aug.recipe`.

    `state_std` (B, 1, 128) is each sample's episode std per dimension in model units, and
    `masked` what masked conditions become; only the upstream recipe reads them.
    """
    if aug.recipe == "upstream":
        return _upstream_conditions(batch, aug, generators, state_std, masked)
    return _rdtflow_conditions(batch, aug, generators)


def _upstream_conditions(batch: dict[str, torch.Tensor], aug: Augmentation, generators: list[torch.Generator],
                         state_std: torch.Tensor, masked: MaskedConditions) -> dict:
    """RDT's train/dataset.py: four independent draws per sample, in its order."""
    state, mask = batch["state"].clone(), batch["action_mask"].clone()
    frequency = batch["control_frequency"].clone()
    lang_tokens, lang_mask = batch["lang_tokens"].clone(), batch["lang_mask"].clone()
    empty = masked.empty_instruction
    for row, generator in enumerate(generators):
        if torch.rand(1, generator=generator).item() < aug.cond_mask_prob:
            frequency[row] = 0.0
        if aug.state_noise_snr_db is not None:
            std = state_std[row] / math.sqrt(10 ** (aug.state_noise_snr_db / 10))
            state[row] = state[row] + std * torch.randn(state[row].shape, generator=generator)
        if torch.rand(1, generator=generator).item() < aug.cond_mask_prob:
            state[row] = masked.mean_state
        if torch.rand(1, generator=generator).item() < aug.cond_mask_prob:
            mask[row] = 0.0
        if torch.rand(1, generator=generator).item() < aug.cond_mask_prob:
            # As if the instruction were "": the batch pads every instruction, "" included.
            lang_tokens[row] = 0.0
            lang_tokens[row, : len(empty)] = empty
            lang_mask[row] = False
            lang_mask[row, : len(empty)] = True
    return {**batch, "state": state, "action_mask": mask, "control_frequency": frequency,
            "lang_tokens": lang_tokens, "lang_mask": lang_mask}


def _rdtflow_conditions(batch: dict[str, torch.Tensor], aug: Augmentation, generators: list[torch.Generator]) -> dict:
    """rdtflow's earlier recipe, draw for draw."""
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
