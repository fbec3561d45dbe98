"""One micro-batch of training: collated samples in, the model's training batch out.

Augmentation, conditioning, targets, loss mask and diffusion noise are each a function of the
samples' global numbers only (rdtflow.train.samples), so a batch is the same whichever
process, micro-batch or resumed job builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rdtflow.data.cameras import camera_slots
from rdtflow.model.inputs import PolicyInputs
from rdtflow.model.policy import RDTConfig
from rdtflow.train.augment import (
    Augmentation,
    MaskedConditions,
    augment_conditions,
    augment_frames,
    mask_precomputed_slots,
    sample_generators,
)
from rdtflow.train.samples import diffusion_draws


def loss_mask(loss: str, action_mask: np.ndarray) -> torch.Tensor:
    """(128,) the dimensions the loss averages over (train.loss): all of them, as upstream RDT
    (the padding's targets are 0), or the robot's own (`masked`)."""
    return torch.ones(len(action_mask)) if loss == "upstream" else torch.from_numpy(action_mask)


@dataclass(frozen=True)
class TrainingBatches:
    """Collated samples -> the model's training batch: augmentation, conditions, targets, loss
    mask and diffusion draws, each a function of the sample numbers only."""

    inputs: PolicyInputs
    augmentation: Augmentation
    masked: MaskedConditions | None  # what the upstream recipe's masking puts in
    loss_mask: torch.Tensor  # (128,) the dimensions the loss averages over (train.loss)
    cameras: int  # image slots per frame
    blank_tokens: torch.Tensor | None  # precomputed tokens of the background image
    seed: int
    noise_shape: tuple[int, int]
    train_timesteps: int

    @classmethod
    def create(cls, config: dict, inputs: PolicyInputs, stats: dict, rdt: RDTConfig,
               blank_tokens: torch.Tensor | None) -> "TrainingBatches":
        train = config["train"]
        augmentation = Augmentation.from_config(train["augment"])
        upstream_masking = augmentation.active and augmentation.recipe == "upstream"
        return cls(
            inputs=inputs,
            augmentation=augmentation,
            masked=MaskedConditions.from_inputs(inputs, stats) if upstream_masking else None,
            loss_mask=loss_mask(train["loss"], inputs.action_mask()),
            cameras=len(camera_slots(config["data"]["cameras"])),
            blank_tokens=blank_tokens,
            seed=config["seed"],
            noise_shape=(rdt.pred_horizon, rdt.action_dim),
            train_timesteps=rdt.noise_scheduler.num_train_timesteps,
        )

    def build(self, raw: dict, numbers: range) -> dict[str, torch.Tensor]:
        aug, inputs = self.augmentation, self.inputs
        generators = sample_generators(self.seed, numbers) if aug.active else []
        if aug.active:
            raw = (mask_precomputed_slots(raw, self.cameras, self.blank_tokens, aug, generators)
                   if "image_tokens" in raw else augment_frames(raw, self.cameras, aug, generators))
        batch = inputs.conditions(raw["qpos"], inputs.batch_image_tokens(raw), raw["instruction"])
        if aug.active:
            state_std = torch.from_numpy(inputs.unified_state_std(raw["qpos_std"]))[:, None]
            batch = augment_conditions(batch, aug, generators, state_std, self.masked)
        batch["action"] = torch.from_numpy(inputs.unified_action(raw["action"]))
        batch["loss_mask"] = self.loss_mask.expand(len(batch["action"]), 1, -1)
        batch["noise"], batch["timestep"] = diffusion_draws(numbers, self.seed, self.noise_shape, self.train_timesteps)
        return batch
