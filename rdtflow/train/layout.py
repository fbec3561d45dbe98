"""How one optimizer step's samples are spread over processes and micro-batches."""

from __future__ import annotations

from dataclasses import dataclass


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
