"""One training job: resume from the previous checkpoint, train one period, write the next.

The workflow runs one such job per checkpoint period, so evaluation of a checkpoint starts
as soon as it exists and a killed job only loses its own period (Snakemake deletes the
outputs of a failed job, never those of finished ones).

Launched by `accelerate launch`; every step count below counts optimizer steps, whatever
the accumulation or process count. The learning-rate schedule is stepped once per optimizer
step by us (not by accelerate, which would step it once per process).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
import time
from pathlib import Path

import pandas as pd
import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from rdtflow.model.encoders import VisionEncoder
from rdtflow.model.inputs import PolicyInputs
from rdtflow.model.language import load_language_table
from rdtflow.model.policy import NoiseSchedulerConfig, RDTConfig, RDTPolicy
from rdtflow.paths import RunPaths, encoder_dirs
from rdtflow.train.checkpoint import WEIGHTS, load_training_state, save_checkpoint
from rdtflow.train.samples import BatchLayout, SampleOrder, StepSamples, TrainingSamples, collate, diffusion_draws

LOG_EVERY = 50


def policy_config(config: dict, vision: VisionEncoder, lang_token_dim: int) -> RDTConfig:
    """The RDT config of this run: sizes from the config, token widths from the encoders."""
    model = config["model"]
    image_slots = model["img_history_size"] * len(config["data"]["cameras"])
    return RDTConfig(
        pred_horizon=model["pred_horizon"],
        lang_token_dim=lang_token_dim,
        img_token_dim=vision.token_dim,
        max_lang_cond_len=config["encoders"]["max_lang_tokens"],
        img_cond_len=image_slots * vision.tokens_per_image,
        rdt={"hidden_size": model["hidden_size"], "depth": model["depth"], "num_heads": model["num_heads"]},
        noise_scheduler=NoiseSchedulerConfig(
            num_train_timesteps=model["num_train_timesteps"],
            num_inference_timesteps=model["num_inference_timesteps"],
            beta_schedule=model["beta_schedule"],
        ),
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


def train_until(config: dict, until_step: int, resume_from: Path | None) -> Path:
    """Train from `resume_from` (or from scratch) to optimizer step `until_step`; returns the checkpoint."""
    train = config["train"]
    if config["model"]["precompute_image_features"] and config["model"]["train_vision"]:
        raise ValueError("model.precompute_image_features needs a frozen vision tower: set model.train_vision to false")
    accelerator = Accelerator(
        gradient_accumulation_steps=train["gradient_accumulation_steps"],
        mixed_precision=train["mixed_precision"],
        cpu=train["cpu"],
    )
    if train["cpu"]:
        torch.set_num_threads(train["threads"])
    paths = RunPaths.from_config(config)
    stats = json.loads(paths.stats.read_text())
    manifest = pd.read_parquet(paths.manifest)
    vision = VisionEncoder.load(encoder_dirs(config)[0])
    language = load_language_table(paths.language)
    inputs = PolicyInputs.create(stats, language, vision, config["data"]["control_frequency"])
    vision.tower.to(accelerator.device).requires_grad_(config["model"]["train_vision"])
    vision.tower.train(config["model"]["train_vision"])

    torch.manual_seed(config["seed"])
    policy = RDTPolicy(policy_config(config, vision, next(iter(language.values())).shape[-1]))
    if resume_from is not None:
        policy.load_state_dict(load_file(str(resume_from / WEIGHTS)), strict=True)
    parameters = list(policy.parameters()) + (list(vision.tower.parameters()) if config["model"]["train_vision"] else [])
    optimizer = torch.optim.AdamW(parameters, lr=train["learning_rate"], weight_decay=train["weight_decay"])
    scheduler = get_scheduler(
        train["lr_scheduler"], optimizer, num_warmup_steps=train["lr_warmup_steps"], num_training_steps=train["max_steps"]
    )
    start_step = load_training_state(resume_from, optimizer, scheduler)["step"] if resume_from else 0
    if start_step >= until_step:
        raise ValueError(f"checkpoint {resume_from} is at step {start_step}, already at or past step {until_step}")
    policy, optimizer = accelerator.prepare(policy, optimizer)

    layout = BatchLayout(train["batch_size"], train["gradient_accumulation_steps"], accelerator.num_processes)
    order = SampleOrder(len(manifest), config["seed"])
    features = paths.image_features if config["model"]["precompute_image_features"] else None
    samples = StepSamples(
        manifest, config["data"], config["model"]["pred_horizon"], config["model"]["img_history_size"], features
    )
    loader = DataLoader(
        TrainingSamples(samples, order),
        batch_sampler=MicroBatches(layout, start_step, until_step, accelerator.process_index),
        collate_fn=collate,
        num_workers=train["dataloader_workers"],
    )
    micro_batches = iter(loader)
    unwrapped = accelerator.unwrap_model(policy)
    horizon = unwrapped.config.pred_horizon
    log_rows = []
    progress = tqdm(
        range(start_step, until_step),
        desc=f"train to step {until_step}",
        disable=not (accelerator.is_main_process and sys.stderr.isatty()),
    )
    started = time.perf_counter()
    for step in progress:
        step_losses = []
        for micro_step in range(layout.accumulation):
            raw = next(micro_batches)
            numbers = layout.sample_numbers(step, micro_step, accelerator.process_index)
            batch = inputs.conditions(raw["qpos"], inputs.batch_image_tokens(raw), raw["instruction"])
            batch["action"] = torch.from_numpy(inputs.unified_action(raw["action"]))
            batch["noise"], batch["timestep"] = diffusion_draws(
                numbers, config["seed"], (horizon, unwrapped.config.action_dim), unwrapped.config.noise_scheduler.num_train_timesteps
            )
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
        mean_loss = accelerator.reduce(torch.stack(step_losses).mean(), "mean").item()
        samples_seen = (step + 1) * layout.effective_batch
        rate = (step + 1 - start_step) * layout.effective_batch / (time.perf_counter() - started)
        log_rows.append({"step": step + 1, "epoch": order.epoch(samples_seen), "loss": mean_loss, "lr": lr, "samples_per_s": rate})
        progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
        if accelerator.is_main_process and progress.disable and (step + 1) % LOG_EVERY == 0:
            print(f"step {step + 1}/{train['max_steps']} loss {mean_loss:.4f} lr {lr:.2e} {rate:.0f} samples/s", flush=True)

    out_dir = paths.checkpoint(until_step)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        samples_seen = until_step * layout.effective_batch
        state = {"step": until_step, "samples_seen": samples_seen, "epoch": order.epoch(samples_seen),
                 "effective_batch": layout.effective_batch, "layout": asdict(layout)}
        save_checkpoint(out_dir, unwrapped, optimizer, scheduler, stats, state, pd.DataFrame(log_rows))
    accelerator.wait_for_everyone()
    return out_dir
