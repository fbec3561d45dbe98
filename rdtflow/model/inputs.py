"""Turn raw robot observations into the policy's inputs, the same way for training and acting.

Training batches (from recorded episodes) and closed-loop evaluation (from the simulator)
both go through `PolicyInputs`, so a normalisation, unified-vector or image-slot mistake
cannot hide in one path and not the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rdtflow.data.state_vector import to_unified, unified_indices, unified_mask
from rdtflow.model.encoders import VisionEncoder


@dataclass(frozen=True)
class Normalizer:
    """An affine map of each episode column, (x - offset) / scale, and back.

    Two kinds (data.normalization.mode): min_max scales each column's range over the
    training episodes to [-1, 1], what a model trained from scratch learns best from; raw
    only divides by fixed per-column divisors, because RDT was pre-trained on raw unified
    vectors (radians, grippers in [0, 1]) and its weights expect those units.
    """

    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def min_max(cls, stats: dict, key: str) -> "Normalizer":
        """Range to [-1, 1]; constant columns keep their offset and get unit scale."""
        low, high = (np.asarray(stats[key][bound], np.float32) for bound in ("min", "max"))
        return cls((high + low) / 2, np.where(high - low > 1e-6, (high - low) / 2, 1.0).astype(np.float32))

    @classmethod
    def from_stats(cls, stats: dict, key: str) -> "Normalizer":
        """The normaliser stats.json records for `key` (qpos or action)."""
        settings = stats["normalization"]
        if settings["mode"] == "min_max":
            return cls.min_max(stats, key)
        width = len(stats[key]["min"])
        divisors = settings[f"{key}_divisors"] or [1.0] * width
        return cls(np.zeros(width, np.float32), np.asarray(divisors, np.float32))

    def normalize(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.offset) / self.scale).astype(np.float32)

    def denormalize(self, values: np.ndarray) -> np.ndarray:
        return (values * self.scale + self.offset).astype(np.float32)


@dataclass
class PolicyInputs:
    """Everything needed to build a conditioning batch: stats, slots, language, vision."""

    state_normalizer: Normalizer
    action_normalizer: Normalizer
    indices: np.ndarray
    language: dict[str, torch.Tensor]
    vision: VisionEncoder
    control_frequency: float

    @classmethod
    def create(cls, stats: dict, language: dict[str, torch.Tensor], vision: VisionEncoder, control_frequency: float):
        return cls(
            state_normalizer=Normalizer.from_stats(stats, "qpos"),
            action_normalizer=Normalizer.from_stats(stats, "action"),
            indices=unified_indices(stats["state_names"]),
            language=language,
            vision=vision,
            control_frequency=control_frequency,
        )

    def unified_state(self, qpos: np.ndarray) -> np.ndarray:
        """(..., D) raw qpos -> (..., 128) normalised unified vector."""
        return to_unified(self.state_normalizer.normalize(qpos), self.indices)

    def unified_action(self, action: np.ndarray) -> np.ndarray:
        return to_unified(self.action_normalizer.normalize(action), self.indices)

    def unified_state_std(self, qpos_std: np.ndarray) -> np.ndarray:
        """(..., D) std of raw qpos columns -> (..., 128) std in model units (0 in padding)."""
        return to_unified(qpos_std / self.state_normalizer.scale, self.indices)

    def action_mask(self) -> np.ndarray:
        """(128,) 1 where this robot's columns sit in the unified vector, RDT's state_elem_mask."""
        return unified_mask(self.indices)

    def raw_action(self, unified: np.ndarray) -> np.ndarray:
        """(..., 128) model output -> (..., D) actions in the robot's units."""
        return self.action_normalizer.denormalize(unified[..., self.indices])

    def language_batch(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad cached instruction embeddings to (B, L, D) with a (B, L) validity mask."""
        try:
            tokens = [self.language[text] for text in instructions]
        except KeyError as missing:
            raise KeyError(f"instruction {missing} has no cached embedding; re-run the encode_lang stage") from None
        longest = max(len(t) for t in tokens)
        padded = torch.zeros(len(tokens), longest, tokens[0].shape[-1])
        mask = torch.zeros(len(tokens), longest, dtype=torch.bool)
        for row, t in enumerate(tokens):
            padded[row, : len(t)] = t
            mask[row, : len(t)] = True
        return padded, mask

    def image_tokens(self, frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, S, H, W, 3) for S image slots -> tokens (B, S * P, D).

        A slot without an image (missing camera, history before the first step) shows the
        processor's mean colour, as in RDT, never a copy of another camera.
        """
        batch, slots = frames.shape[:2]
        flat = frames.reshape(batch * slots, *frames.shape[2:]).to(self.vision.tower.device, copy=True)
        flat[~valid.reshape(-1).to(flat.device)] = self.vision.mean_colour.to(flat.device)
        with torch.set_grad_enabled(self.vision.tower.training):
            tokens = self.vision.encode(flat)
        return tokens.reshape(batch, slots * tokens.shape[1], tokens.shape[2]).float()

    def batch_image_tokens(self, raw: dict) -> torch.Tensor:
        """Image tokens of a collated batch: precomputed ones, or encoded from its frames now."""
        if "image_tokens" in raw:
            return raw["image_tokens"]
        return self.image_tokens(raw["frames"], raw["frames_valid"])

    def conditions(self, qpos: np.ndarray, img_tokens: torch.Tensor, instructions: list[str]) -> dict[str, torch.Tensor]:
        """The model's conditioning batch for B observations (img_tokens (B, S * P, D))."""
        lang_tokens, lang_mask = self.language_batch(instructions)
        batch = len(qpos)
        return {
            "state": torch.from_numpy(self.unified_state(qpos))[:, None],
            "action_mask": torch.from_numpy(self.action_mask()).expand(batch, 1, -1).clone(),
            "lang_tokens": lang_tokens,
            "lang_mask": lang_mask,
            "img_tokens": img_tokens,
            "control_frequency": torch.full((batch,), float(self.control_frequency)),
        }
