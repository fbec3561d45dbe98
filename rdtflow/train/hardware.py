"""Hardware profiles and the batch layout they give: micro-batch x accumulation x processes.

The effective batch is a training setting (train.effective_batch); the profile only says how
to reach it on given hardware. A profile that cannot reach it exactly is an error, because a
different effective batch is a different training run, silently.
"""

from __future__ import annotations

from pathlib import Path

from rdtflow.errors import ConfigError
from rdtflow.presets import load_named, shipped
from rdtflow.train.layout import BatchLayout
from rdtflow.train.memory import ModelFootprint, estimate_peak

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "hardware.schema.yaml"


class LayoutError(ConfigError):
    """The profile cannot train with the configured effective batch."""


def shipped_profiles() -> list[str]:
    """Names of the profiles in config/hardware/."""
    return shipped("hardware")


def load_profile(spec: str | dict) -> dict:
    """A validated profile with defaults, from a shipped name, a YAML path or an inline mapping;
    an inline mapping with `profile` overrides that profile's fields."""
    from snakemake.utils import validate

    if isinstance(spec, dict) and "profile" in spec:
        base = load_named("hardware", spec["profile"], "hardware.profile")
        overrides = {key: value for key, value in spec.items() if key != "profile"}
        profile = {**base, **overrides, "name": f"{base['name']} ({', '.join(f'{k} {v}' for k, v in overrides.items())})"}
    else:
        profile = dict(spec) if isinstance(spec, dict) else load_named("hardware", spec, "hardware")
    validate(profile, str(SCHEMA_PATH), set_default=True)
    return profile


def process_count(profile: dict) -> int:
    per_node = profile["gpus_per_node"] if profile["device"] == "gpu" else profile["processes_per_node"]
    return profile["nodes"] * per_node


def usable_memory_gib(profile: dict) -> float | None:
    memory = profile["gpu_memory_gib"]
    return None if memory is None else memory * (1 - profile["memory_safety_margin"])


def _reachable(effective_batch: int, micro_batch: int, processes: int) -> int | None:
    """The accumulation that makes micro x accumulation x processes = effective, if any."""
    per_step = micro_batch * processes
    return effective_batch // per_step if effective_batch % per_step == 0 else None


def fixed_layout(profile: dict, effective_batch: int) -> BatchLayout:
    """The layout of a profile with a numeric micro-batch, or a LayoutError naming the numbers."""
    processes = process_count(profile)
    micro = profile["per_device_batch"]
    name = profile.get("name", "inline")
    derived = _reachable(effective_batch, micro, processes)
    accumulation = profile["gradient_accumulation"] or derived
    if accumulation is None or micro * accumulation * processes != effective_batch:
        reached = micro * (accumulation or 1) * processes
        fix = (
            f"set gradient_accumulation to {derived}" if derived
            else f"{micro} x {processes} processes = {micro * processes} does not divide {effective_batch}; "
                 "choose a per_device_batch that does, or per_device_batch: auto"
        )
        raise LayoutError(
            f"hardware profile '{name}' cannot reach train.effective_batch {effective_batch}: per_device_batch "
            f"{micro} x gradient_accumulation {accumulation or 1} x {processes} processes = {reached}; {fix}"
        )
    return BatchLayout(micro, accumulation, processes)


def auto_layout(profile: dict, effective_batch: int, footprint: ModelFootprint) -> BatchLayout:
    """Largest micro-batch that divides the per-process batch and fits memory with the margin."""
    processes = process_count(profile)
    capacity = usable_memory_gib(profile)
    name = profile.get("name", "inline")
    if capacity is None:
        raise LayoutError(f"hardware profile '{name}': per_device_batch auto needs gpu_memory_gib")
    if effective_batch % processes:
        raise LayoutError(
            f"hardware profile '{name}': {processes} processes do not divide train.effective_batch {effective_batch}"
        )
    per_process = effective_batch // processes
    for micro in sorted((d for d in range(1, per_process + 1) if per_process % d == 0), reverse=True):
        accumulation = per_process // micro
        peak = estimate_peak(footprint, micro, accumulation, processes, profile["param_dtype"]).total_gib
        if peak <= capacity:
            return BatchLayout(micro, accumulation, processes)
    smallest = estimate_peak(footprint, 1, per_process, processes, profile["param_dtype"]).total_gib
    raise LayoutError(
        f"hardware profile '{name}': even micro-batch 1 needs an estimated {smallest:.1f} GiB, more than the "
        f"{capacity:.1f} GiB usable of {profile['gpu_memory_gib']} GiB; use bigger cards, param_dtype bf16, or "
        "precomputed image features"
    )


def resolve_layout(profile: dict, effective_batch: int, footprint: ModelFootprint) -> BatchLayout:
    if profile["per_device_batch"] == "auto":
        return auto_layout(profile, effective_batch, footprint)
    return fixed_layout(profile, effective_batch)
