"""One training job: resume from the previous checkpoint, train one period, write the next.

The workflow runs one such job per checkpoint period, so evaluation of a checkpoint starts
as soon as it exists and a killed job only loses its own period (Snakemake deletes the
outputs of a failed job, never those of finished ones). The job follows the recorded plan
(plan.json): its batch layout and its model.

Launched by `accelerate launch`. Every step count counts optimizer steps, whatever the
accumulation or process count: the learning-rate schedule and the EMA are stepped once per
optimizer step by this loop (accelerate's scheduler wrapper would step once per process, and
RDT's trainer steps its EMA once per micro-batch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from rdtflow.errors import RdtflowError
from rdtflow.machine import cpu_threads, describe_machine
from rdtflow.model.encoders import VisionEncoder
from rdtflow.model.inputs import PolicyInputs
from rdtflow.model.language import load_language_table
from rdtflow.model.policy import RDTConfig, RDTPolicy
from rdtflow.model.weights import load_pretrained_into
from rdtflow.paths import CheckpointFile
from rdtflow.progress import progress
from rdtflow.train.batches import TrainingBatches
from rdtflow.train.checkpoint import load_training_state, resumable_checkpoint, save_checkpoint
from rdtflow.train.layout import BatchLayout
from rdtflow.train.plan import TrainingPlan, read_plan
from rdtflow.train.samples import SampleOrder, StepSamples, TrainingSamples, collate
from rdtflow.train.tracking import TRACKED_METRICS, start_trackers, tracking_accelerator_options


class MicroBatches(torch.utils.data.Sampler):
    """Global sample numbers of this process's micro-batches, from `start` to `end` steps."""

    def __init__(self, layout: BatchLayout, start: int, end: int, rank: int) -> None:
        self.layout, self.start, self.end, self.rank = layout, start, end, rank

    def __iter__(self):
        for step in range(self.start, self.end):
            for micro_step in range(self.layout.accumulation):
                yield list(self.layout.sample_numbers(step, micro_step, self.rank))


def build_policy(rdt_config: RDTConfig, seed: int, param_dtype: str, resume_from: Path | None,
                 pretrained_dir: Path | None) -> RDTPolicy:
    """Same seed on every process, so all start from identical weights; then the previous
    checkpoint of this run, or the pretrained RDT the config names (its EMA weights where it
    kept them: rdtflow.model.weights.starting_weights)."""
    torch.manual_seed(seed)
    policy = RDTPolicy(rdt_config)
    if resume_from is not None:
        policy.load_state_dict(load_file(str(resume_from / CheckpointFile.WEIGHTS)), strict=True)
    elif pretrained_dir is not None:
        weights = load_pretrained_into(policy, Path(pretrained_dir))
        kind = "EMA weights" if weights.name == CheckpointFile.EMA_DIR else "weights (it kept no EMA)"
        print(f"model.pretrained: starting from the {kind} in {weights}; optimizer and EMA start fresh", flush=True)
    if param_dtype == "bf16":
        policy.model.to(torch.bfloat16)  # as RDT: transformer in bf16, adaptors in fp32
    return policy


@dataclass
class Optimization:
    """What one optimizer step updates, and how."""

    accelerator: Accelerator
    policy: torch.nn.Module  # as accelerate prepared it (DDP on several processes)
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMAModel | None
    max_grad_norm: float

    def step(self, micro_batches: Iterator[dict[str, torch.Tensor]]) -> tuple[float, float, float]:
        """One optimizer step over its micro-batches: (mean loss over all processes, learning
        rate, gradient norm before clipping).

        Gradients accumulate over the micro-batches and are clipped once they are synchronised
        (so the norm is the same on every process); the schedule and the EMA then move once,
        whatever the accumulation.
        """
        losses = []
        grad_norm = torch.tensor(float("nan"))
        for batch in micro_batches:
            with self.accelerator.accumulate(self.policy):
                loss = self.policy(batch)
                self.accelerator.backward(loss)
                if self.accelerator.sync_gradients:
                    grad_norm = self.accelerator.clip_grad_norm_(self.parameters, self.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
            losses.append(loss.detach())
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        if self.ema is not None:
            self.ema.step(self.accelerator.unwrap_model(self.policy).parameters())
        return self.accelerator.reduce(torch.stack(losses).mean(), "mean").item(), lr, float(grad_norm)


def _peak_device_memory_gib(device: torch.device) -> float | None:
    """This process's peak allocated GPU memory (what `rdtflow plan` estimates); None on CPU."""
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def _launched(plan: TrainingPlan, plan_path: Path, config: dict,
              tracking_out: Path | None) -> tuple[BatchLayout, Accelerator]:
    """The plan's batch layout, and this process's place in the processes it was made for
    (logging to train.report_to's trackers in `tracking_out`, where given)."""
    hardware = config["hardware"]
    layout = BatchLayout(**{key: plan.layout[key] for key in ("micro_batch", "accumulation", "processes")})
    accelerator = Accelerator(
        gradient_accumulation_steps=layout.accumulation,
        mixed_precision=hardware["mixed_precision"],
        cpu=hardware["device"] == "cpu",
        **tracking_accelerator_options(config, tracking_out),
    )
    if accelerator.num_processes != layout.processes:
        raise RdtflowError(
            f"launched with {accelerator.num_processes} processes but the plan ({plan_path}) has {layout.processes}: "
            "launch with the command `rdtflow plan` prints"
        )
    if hardware["device"] == "cpu":
        torch.set_num_threads(cpu_threads(hardware["cpu_threads"]))
    return layout, accelerator


def _optimization(config: dict, rdt_config: RDTConfig, accelerator: Accelerator, resume_from: Path | None,
                  pretrained_dir: Path | None) -> tuple[Optimization, int]:
    """The model, its optimizer, schedule and EMA, prepared for the processes; and the step of
    the checkpoint they resume from (0 from scratch or from pretrained weights)."""
    train = config["train"]
    policy = build_policy(rdt_config, config["seed"], config["hardware"]["param_dtype"], resume_from, pretrained_dir)
    parameters = list(policy.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=train["learning_rate"], weight_decay=train["weight_decay"])
    scheduler = get_scheduler(
        train["lr_scheduler"], optimizer, num_warmup_steps=train["lr_warmup_steps"], num_training_steps=train["max_steps"]
    )
    ema = EMAModel(policy.parameters(), decay=train["ema_decay"]) if train["ema_decay"] is not None else None
    start_step = load_training_state(resume_from, optimizer, scheduler, ema)["step"] if resume_from else 0
    policy, optimizer = accelerator.prepare(policy, optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    return Optimization(accelerator, policy, parameters, optimizer, scheduler, ema, train["max_grad_norm"]), start_step


def _sample_stream(config: dict, manifest: pd.DataFrame, features_path: Path | None, layout: BatchLayout,
                   start: int, end: int, rank: int) -> tuple[StepSamples, SampleOrder, Iterator[dict]]:
    """This process's collated micro-batches of steps `start` to `end`, in the seed's order."""
    order = SampleOrder(len(manifest), config["seed"])
    samples = StepSamples(manifest, config["data"], config["model"]["pred_horizon"], config["model"]["img_history_size"],
                          features_path)
    loader = DataLoader(
        TrainingSamples(samples, order),
        batch_sampler=MicroBatches(layout, start, end, rank),
        collate_fn=collate,
        num_workers=config["hardware"]["dataloader_workers"],
    )
    return samples, order, iter(loader)


def train_until(config: dict, until_step: int, plan_path: Path, manifest_path: Path, stats_path: Path,
                language_path: Path, vision_dir: Path, checkpoint_out: Path, features_path: Path | None = None,
                resume_from: Path | None = None, pretrained_dir: Path | None = None,
                tracking_out: Path | None = None, text_dir: Path | None = None) -> Path:
    """Train from `resume_from` (else from `pretrained_dir`, else from scratch) to optimizer step
    `until_step`, as the plan says; returns the checkpoint written to `checkpoint_out`. The
    checkpoint records where its encoders and instruction embeddings are (`text_dir` is only
    recorded), so rdtflow.load_policy finds them wherever the run's stages keep them."""
    # The plan, and the processes it was made for.
    plan = read_plan(plan_path, config)
    if resume_from is not None:
        resume_from = resumable_checkpoint(resume_from)
    layout, accelerator = _launched(plan, plan_path, config, tracking_out)

    # What every batch is made from: statistics, instructions, the vision tower.
    stats = json.loads(Path(stats_path).read_text())
    manifest = pd.read_parquet(manifest_path)
    vision = VisionEncoder.load(vision_dir)
    inputs = PolicyInputs.create(stats, load_language_table(language_path), vision, config["data"]["control_frequency"])
    vision.tower.to(accelerator.device).requires_grad_(False).eval()  # frozen, as in RDT

    # The model and its optimizer, at the step of the checkpoint resumed from.
    optimization, start_step = _optimization(config, RDTConfig.from_dict(plan.rdt_config, Path(plan_path)), accelerator,
                                             resume_from, pretrained_dir)
    if start_step >= until_step:
        raise RdtflowError(f"checkpoint {resume_from} is at step {start_step}, already at or past step {until_step}")
    samples, order, collated = _sample_stream(config, manifest, features_path, layout, start_step, until_step,
                                              accelerator.process_index)
    unwrapped = accelerator.unwrap_model(optimization.policy)
    batches = TrainingBatches.create(config, inputs, stats, unwrapped.config,
                                     samples.image_features.blank if samples.image_features else None)

    # The loop: one optimizer step per iteration over its micro-batches, each logged.
    if tracking_out is not None:
        start_trackers(accelerator, config, tracking_out)
    log_rows = []
    steps = progress(range(start_step, until_step), desc=f"train to step {until_step}", unit="step",
                     enabled=accelerator.is_main_process)
    started = time.perf_counter()
    for step in steps:
        micro_batches = (
            {key: value.to(accelerator.device) for key, value in batches.build(next(collated), numbers).items()}
            for numbers in (layout.sample_numbers(step, micro, accelerator.process_index)
                            for micro in range(layout.accumulation))
        )
        mean_loss, lr, grad_norm = optimization.step(micro_batches)
        samples_seen = (step + 1) * layout.effective_batch
        rate = (step + 1 - start_step) * layout.effective_batch / (time.perf_counter() - started)
        log_rows.append({"step": step + 1, "epoch": order.epoch(samples_seen), "loss": mean_loss, "lr": lr,
                         "grad_norm": grad_norm, "samples_per_s": rate})
        accelerator.log({f"train/{name}": log_rows[-1][name] for name in TRACKED_METRICS}, step=step + 1)
        steps.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", samples_per_s=f"{rate:.0f}")

    # The checkpoint, written by one process, with the config it was trained with.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        samples_seen = until_step * layout.effective_batch
        state = {"step": until_step, "samples_seen": samples_seen, "epoch": order.epoch(samples_seen),
                 "effective_batch": layout.effective_batch, "layout": asdict(layout),
                 "peak_device_memory_gib": _peak_device_memory_gib(accelerator.device),
                 "torch_threads": torch.get_num_threads(), "machine": describe_machine()}
        save_checkpoint(Path(checkpoint_out), unwrapped, optimization.optimizer, optimization.scheduler,
                        optimization.ema, stats, state, pd.DataFrame(log_rows), config,
                        {"language_path": str(language_path), "vision_dir": str(vision_dir),
                         "text_dir": None if text_dir is None else str(text_dir)})
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes the trackers' files (train.report_to) and the process group
    return Path(checkpoint_out)
