"""One training job: resume from the previous checkpoint, train one period, write the next.

The workflow runs one such job per checkpoint period, so evaluation of a checkpoint starts
as soon as it exists and a killed job only loses its own period (Snakemake deletes the
outputs of a failed job, never those of finished ones).

Launched by `accelerate launch`. Every step count counts optimizer steps, whatever the
accumulation or process count: the learning-rate schedule and the EMA are stepped once per
optimizer step by this loop (accelerate's scheduler wrapper would step once per process, and
RDT's trainer steps its EMA once per micro-batch).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from rdtflow.data.cameras import camera_slots
from rdtflow.model.encoders import VisionEncoder
from rdtflow.model.inputs import PolicyInputs
from rdtflow.model.language import load_language_table
from rdtflow.model.policy import RDTConfig, RDTPolicy
from rdtflow.model.shapes import encoder_shapes, policy_config
from rdtflow.model.weights import load_pretrained_into
from rdtflow.paths import RunPaths, encoder_dirs
from rdtflow.progress import progress
from rdtflow.train.augment import (
    Augmentation,
    MaskedConditions,
    augment_conditions,
    augment_frames,
    mask_precomputed_slots,
    sample_generators,
)
from rdtflow.train.checkpoint import (
    WEIGHTS,
    load_training_state,
    resumable_checkpoint,
    save_checkpoint,
)
from rdtflow.train.layout import BatchLayout
from rdtflow.train.plan import training_layout
from rdtflow.train.samples import (
    SampleOrder,
    StepSamples,
    TrainingSamples,
    collate,
    diffusion_draws,
)


class MicroBatches(torch.utils.data.Sampler):
    """Global sample numbers of this process's micro-batches, from `start` to `end` steps."""

    def __init__(self, layout: BatchLayout, start: int, end: int, rank: int) -> None:
        self.layout, self.start, self.end, self.rank = layout, start, end, rank

    def __len__(self) -> int:
        return (self.end - self.start) * self.layout.accumulation

    def __iter__(self):
        for step in range(self.start, self.end):
            for micro_step in range(self.layout.accumulation):
                yield list(self.layout.sample_numbers(step, micro_step, self.rank))


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


def build_policy(config: dict, resume_from: Path | None) -> RDTPolicy:
    """Same seed on every process, so all start from identical weights; then the previous
    checkpoint of this run, or the pretrained RDT the config names."""
    torch.manual_seed(config["seed"])
    planned = policy_config(config, encoder_shapes(config))
    policy = RDTPolicy(planned)
    if resume_from is not None:
        policy.load_state_dict(load_file(str(resume_from / WEIGHTS)), strict=True)
    elif config["model"]["pretrained"] is not None:
        load_pretrained_into(policy, Path(config["model"]["pretrained"]))
    if config["hardware"]["param_dtype"] == "bf16":
        policy.model.to(torch.bfloat16)  # as RDT: transformer in bf16, adaptors in fp32
    return policy


def _peak_device_memory_gib(device: torch.device) -> float | None:
    """This process's peak allocated GPU memory (what `rdtflow plan` estimates); None on CPU."""
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def train_until(config: dict, until_step: int, resume_from: Path | None) -> Path:
    """Train from `resume_from` (or from scratch) to optimizer step `until_step`; returns the checkpoint."""
    train, hardware = config["train"], config["hardware"]
    if resume_from is not None:
        resume_from = resumable_checkpoint(resume_from)
    layout = training_layout(config)
    accelerator = Accelerator(
        gradient_accumulation_steps=layout.accumulation,
        mixed_precision=hardware["mixed_precision"],
        cpu=hardware["device"] == "cpu",
    )
    if accelerator.num_processes != layout.processes:
        raise RuntimeError(
            f"launched with {accelerator.num_processes} processes but hardware profile '{hardware.get('name')}' "
            f"plans {layout.processes}: launch with the command `rdtflow plan` prints"
        )
    if hardware["device"] == "cpu":
        torch.set_num_threads(hardware["cpu_threads"])
    paths = RunPaths.from_config(config)
    stats = json.loads(paths.stats.read_text())
    manifest = pd.read_parquet(paths.manifest)
    vision = VisionEncoder.load(encoder_dirs(config)[0])
    inputs = PolicyInputs.create(stats, load_language_table(paths.language), vision, config["data"]["control_frequency"])
    train_vision = config["model"]["train_vision"]
    vision.tower.to(accelerator.device).requires_grad_(train_vision).train(train_vision)

    policy = build_policy(config, resume_from)
    parameters = list(policy.parameters()) + (list(vision.tower.parameters()) if train_vision else [])
    optimizer = torch.optim.AdamW(parameters, lr=train["learning_rate"], weight_decay=train["weight_decay"])
    scheduler = get_scheduler(
        train["lr_scheduler"], optimizer, num_warmup_steps=train["lr_warmup_steps"], num_training_steps=train["max_steps"]
    )
    ema = EMAModel(policy.parameters(), decay=train["ema_decay"]) if train["ema_decay"] is not None else None
    start_step = load_training_state(resume_from, optimizer, scheduler, ema)["step"] if resume_from else 0
    if start_step >= until_step:
        raise ValueError(f"checkpoint {resume_from} is at step {start_step}, already at or past step {until_step}")
    policy, optimizer = accelerator.prepare(policy, optimizer)
    if ema is not None:
        ema.to(accelerator.device)

    order = SampleOrder(len(manifest), config["seed"])
    features = paths.image_features if config["model"]["precompute_image_features"] else None
    samples = StepSamples(
        manifest, config["data"], config["model"]["pred_horizon"], config["model"]["img_history_size"], features
    )
    loader = DataLoader(
        TrainingSamples(samples, order),
        batch_sampler=MicroBatches(layout, start_step, until_step, accelerator.process_index),
        collate_fn=collate,
        num_workers=hardware["dataloader_workers"],
    )
    micro_batches = iter(loader)
    unwrapped = accelerator.unwrap_model(policy)
    batches = TrainingBatches.create(config, inputs, stats, unwrapped.config,
                                     samples.image_features.blank if samples.image_features else None)
    log_rows = []
    steps = progress(range(start_step, until_step), desc=f"train to step {until_step}", unit="step",
                     enabled=accelerator.is_main_process)
    started = time.perf_counter()
    for step in steps:
        step_losses = []
        for micro_step in range(layout.accumulation):
            numbers = layout.sample_numbers(step, micro_step, accelerator.process_index)
            batch = batches.build(next(micro_batches), numbers)
            batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            with accelerator.accumulate(policy):
                loss = policy(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(parameters, train["max_grad_norm"])
                optimizer.step()
                optimizer.zero_grad()
            step_losses.append(loss.detach())
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        if ema is not None:
            ema.step(unwrapped.parameters())
        mean_loss = accelerator.reduce(torch.stack(step_losses).mean(), "mean").item()
        samples_seen = (step + 1) * layout.effective_batch
        rate = (step + 1 - start_step) * layout.effective_batch / (time.perf_counter() - started)
        log_rows.append({"step": step + 1, "epoch": order.epoch(samples_seen), "loss": mean_loss, "lr": lr, "samples_per_s": rate})
        steps.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", samples_per_s=f"{rate:.0f}")

    out_dir = paths.checkpoint(until_step)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        samples_seen = until_step * layout.effective_batch
        state = {"step": until_step, "samples_seen": samples_seen, "epoch": order.epoch(samples_seen),
                 "effective_batch": layout.effective_batch, "layout": asdict(layout),
                 "peak_device_memory_gib": _peak_device_memory_gib(accelerator.device)}
        save_checkpoint(out_dir, unwrapped, optimizer, scheduler, ema, stats, state, pd.DataFrame(log_rows))
    accelerator.wait_for_everyone()
    return out_dir
