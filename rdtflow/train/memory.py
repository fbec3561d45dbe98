"""Peak GPU memory of a training step, calibrated on RDT-1B measurements on an H200.

`h200_rdt1b_memory.jsonl` (copied from the project's reference measurements) holds the peak
allocated memory of real RDT-1B fine-tune steps at several micro-batches, with the
transformer's weights and AdamW state in bf16 (`bf16-params`, as RDT's trainer does) or in
fp32 under bf16 autocast (`fp32-master`). A straight line per mode fits them to within 0.6%
(0.9% for a row left out of the fit): about 7.9 GiB + 0.97 GiB per sample in bf16. The model
splits that line into parts that scale with the model (an assumption: only RDT-1B was
measured):

- static: weights, gradients and optimizer state, proportional to the parameter count, plus
  the frozen vision tower's weights when it runs in the training loop;
- per sample: activations, proportional to width x depth x tokens, where condition tokens
  count half (each block cross-attends to either the language or the image tokens);
- gradient accumulation: one more copy of the gradients, held between micro-batches
  (measured: 4x8 and 16x2 need 2.3 GiB more than 4x1 and 16x1);
- DDP: gradient buckets, about one more copy of the gradients (not measured here).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MEASUREMENTS = Path(__file__).with_name("h200_rdt1b_memory.jsonl")
GIB = 2**30

# The measured model: RDT-1B with a SigLIP-so400m tower and 32 language tokens.
REFERENCE_PARAMS = 1_228_319_872
REFERENCE_VISION_PARAMS = 428_225_600
REFERENCE_ACTIVATION_SCALE = 2048 * 28 * (67 + (4374 + 32) / 2)
MODE_OF_DTYPE = {"bf16": "bf16-params", "fp32": "fp32-master"}
GRADIENT_BYTES = {"bf16-params": 2, "fp32-master": 4}


@dataclass(frozen=True)
class Calibration:
    static_bytes_per_param: float
    activation_gib_per_unit: float
    rows: int


@lru_cache(maxsize=1)
def measurements() -> tuple[dict, ...]:
    """The successful measurement rows, read once."""
    rows = (json.loads(line) for line in MEASUREMENTS.read_text().splitlines() if line.strip())
    return tuple(row for row in rows if row["ok"])


def fit_calibration(rows: Iterable[dict]) -> Calibration:
    """Least-squares line through the single-process, no-accumulation, vision-in-loop rows of
    one mode; the other rows (accumulation, no tower) are what the parts on top predict."""
    usable = [r for r in rows if r["accum"] == 1 and r["vision"]]
    batches = np.array([r["batch"] for r in usable], dtype=float)
    peaks = np.array([r["peak_alloc_gib"] for r in usable])
    slope, intercept = np.polyfit(batches, peaks, 1)
    vision_gib = REFERENCE_VISION_PARAMS * 2 / GIB  # the tower ran in bf16
    return Calibration(
        static_bytes_per_param=(intercept - vision_gib) * GIB / REFERENCE_PARAMS,
        activation_gib_per_unit=slope / REFERENCE_ACTIVATION_SCALE,
        rows=len(usable),
    )


@lru_cache(maxsize=None)
def calibration(mode: str) -> Calibration:
    """The fit through every measurement of `mode`."""
    return fit_calibration(r for r in measurements() if r["mode"] == mode)


@dataclass(frozen=True)
class ModelFootprint:
    """What the memory of a step depends on, for any model size."""

    params: int  # transformer + adaptors
    hidden_size: int
    depth: int
    action_tokens: int  # timestep + frequency + state + horizon
    condition_tokens: int  # image + language tokens
    vision_params_in_loop: int  # 0 when image features are precomputed

    @property
    def activation_scale(self) -> float:
        return self.hidden_size * self.depth * (self.action_tokens + self.condition_tokens / 2)


@dataclass(frozen=True)
class MemoryEstimate:
    static_gib: float
    vision_gib: float
    activations_gib: float
    accumulation_gib: float
    ddp_gib: float

    @property
    def total_gib(self) -> float:
        return self.static_gib + self.vision_gib + self.activations_gib + self.accumulation_gib + self.ddp_gib

    def parts(self) -> dict[str, float]:
        return {
            "weights, gradients, optimizer": self.static_gib,
            "frozen vision tower": self.vision_gib,
            "activations": self.activations_gib,
            "gradients kept across accumulation": self.accumulation_gib,
            "DDP gradient buckets": self.ddp_gib,
        }


def estimate_peak(
    footprint: ModelFootprint, micro_batch: int, accumulation: int, processes: int, param_dtype: str,
    fit: Calibration | None = None,
) -> MemoryEstimate:
    """Estimated peak allocated GiB on one device for one training step, from `fit` (default:
    the calibration on every measurement of the dtype's mode)."""
    mode = MODE_OF_DTYPE[param_dtype]
    fit = fit or calibration(mode)
    gradient_gib = footprint.params * GRADIENT_BYTES[mode] / GIB
    return MemoryEstimate(
        static_gib=footprint.params * fit.static_bytes_per_param / GIB,
        vision_gib=footprint.vision_params_in_loop * 2 / GIB,
        activations_gib=micro_batch * footprint.activation_scale * fit.activation_gib_per_unit,
        accumulation_gib=gradient_gib if accumulation > 1 else 0.0,
        ddp_gib=gradient_gib if processes > 1 else 0.0,
    )


@lru_cache(maxsize=None)
def _throughput_rows() -> dict[tuple[int, int], float]:
    return {
        (r["batch"], r["accum"]): r["samples_per_s"]
        for r in measurements() if r["mode"] == "bf16-params" and r["vision"]
    }


def measured_speed(micro_batch: int, accumulation: int) -> float:
    """RDT-1B samples/s on an H200 for this layout: the measured row when there is one, else
    interpolated over micro-batches in log scale (4 -> 33.6, 8 -> 38.1, 16 -> 40.2,
    32 -> 41.6 samples/s: small micro-batches under-use the GPU, accumulation barely helps)."""
    rows = _throughput_rows()
    if (micro_batch, accumulation) in rows:
        return rows[(micro_batch, accumulation)]
    single = sorted((batch, speed) for (batch, accum), speed in rows.items() if accum == 1)
    return float(np.interp(np.log2(micro_batch), np.log2([b for b, _ in single]), [v for _, v in single]))
