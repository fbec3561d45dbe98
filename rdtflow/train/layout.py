"""How training is laid out: which samples each micro-batch of a step takes, and where the
checkpoints (and so the training jobs) fall."""

from __future__ import annotations

from dataclasses import dataclass

PLANNED_SECTIONS = ("demos", "data", "encoders", "model", "train", "hardware")
"""The config sections a plan is made from; training checks its own against them. Here, not in
rdtflow.train.plan, so that the workflow and every job's command start without importing torch."""


@dataclass(frozen=True)
class BatchLayout:
    """How one optimizer step's samples are spread over processes and micro-batches."""

    micro_batch: int
    accumulation: int
    processes: int

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.accumulation * self.processes

    def sample_numbers(self, step: int, micro_step: int, rank: int) -> range:
        """Global sample numbers of one micro-batch of optimizer step `step` (0-based)."""
        start = step * self.effective_batch + (micro_step * self.processes + rank) * self.micro_batch
        return range(start, start + self.micro_batch)


def checkpoint_steps(train_cfg: dict) -> list[int]:
    """Optimizer steps at which a checkpoint is written: every period, and the last step."""
    period, last = train_cfg["checkpointing_period"], train_cfg["max_steps"]
    steps = list(range(period, last + 1, period))
    return steps if steps and steps[-1] == last else [*steps, last]


def previous_checkpoint_step(steps: list[int], step: int) -> int | None:
    """The checkpoint a job training to `step` resumes from: the last one before it, if any."""
    earlier = [s for s in steps if s < step]
    return max(earlier) if earlier else None
