"""`rdtflow plan`: is this fine-tune config right for these GPUs? Answered before any GPU hour.

The plan states the exact launch command the train rule runs, the batch layout, steps and
epochs, and the estimated peak memory per device. It warns when the micro-batch will not fit
and says when a larger micro-batch would fit and run faster.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from rdtflow.config import checkpoint_steps
from rdtflow.data.cameras import RDT_SLOTS, CameraConfig, camera_slots, slot_roles
from rdtflow.model.policy import RDTConfig
from rdtflow.model.shapes import NormChoice, encoder_shapes, norm_choice, parameter_counts, policy_config
from rdtflow.model.weights import config_file
from rdtflow.paths import RunPaths
from rdtflow.train.hardware import resolve_layout, usable_memory_gib
from rdtflow.train.launch import train_command
from rdtflow.train.layout import BatchLayout
from rdtflow.train.memory import ModelFootprint, estimate_peak, measured_speed


@dataclass
class TrainingPlan:
    hardware: str
    layout: dict
    effective_batch: int
    optimizer_steps: int
    checkpoint_steps: list[int]
    manifest_samples: int | None
    epochs: float | None
    launch_command: str
    parameters: int
    memory_gib: dict[str, float]
    peak_gib: float
    usable_gib: float | None
    encoder_source: str
    language_tokens: int
    language_tokens_measured: bool
    image_slots: list[str]  # "role: camera" of each slot of one frame
    norm: str
    objective: str
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def text(self) -> str:
        layout = self.layout
        lines = [
            f"hardware profile   {self.hardware}",
            f"effective batch    {self.effective_batch} = {layout['micro_batch']} per device x "
            f"{layout['accumulation']} accumulation x {layout['processes']} processes",
            f"optimizer steps    {self.optimizer_steps} (checkpoints at {_steps_summary(self.checkpoint_steps)})",
            "epochs             " + (f"{self.epochs:.2f} over {self.manifest_samples} manifest samples"
                                     if self.epochs is not None else "unknown until the manifest is built"),
            f"model              {self.parameters:,} trainable parameters (encoders: {self.encoder_source})",
            f"language tokens    {self.language_tokens} per sample"
            + ("" if self.language_tokens_measured else " (assumed until the instructions are encoded)"),
            f"image slots        per frame: {', '.join(self.image_slots)}",
            f"norm               {self.norm}",
            f"objective          {self.objective}",
            f"peak memory        {self.peak_gib:.1f} GiB per device (estimate)"
            + (f", {self.usable_gib:.1f} GiB usable" if self.usable_gib is not None else ""),
            *(f"  {name:<36} {gib:6.2f} GiB" for name, gib in self.memory_gib.items() if gib),
            "launch (first period; later periods add --resume-from):",
            f"  {self.launch_command}",
        ]
        lines += [f"WARNING: {w}" for w in self.warnings] + [f"suggestion: {s}" for s in self.suggestions]
        return "\n".join(lines)


def _steps_summary(steps: list[int]) -> str:
    return ", ".join(map(str, steps)) if len(steps) <= 6 else f"{steps[0]}, {steps[1]}, ..., {steps[-1]}"


ASSUMED_LANGUAGE_TOKENS = 32  # as in the calibration measurements


def language_tokens(config: dict) -> int:
    """Language tokens per sample: batches pad to the longest instruction, not to the maximum,
    so use the longest encoded instruction once encode_lang has run."""
    table = RunPaths.from_config(config).language
    if table.is_file():
        from safetensors import safe_open

        with safe_open(str(table), framework="pt") as embeddings:
            return max(embeddings.get_slice(key).get_shape()[0] for key in embeddings.keys())
    return min(ASSUMED_LANGUAGE_TOKENS, config["encoders"]["max_lang_tokens"])


def model_footprint(config: dict, lang_tokens: int) -> tuple[ModelFootprint, RDTConfig, str]:
    """(footprint, the RDT config, where encoder shapes came from) for this config."""
    shapes = encoder_shapes(config)
    rdt = policy_config(config, shapes)
    core, adaptors = parameter_counts(rdt)
    vision_in_loop = 0 if config["model"]["precompute_image_features"] else shapes.vision_params
    footprint = ModelFootprint(
        params=core + adaptors,
        hidden_size=rdt.rdt.hidden_size,
        depth=rdt.rdt.depth,
        action_tokens=rdt.pred_horizon + 3,
        condition_tokens=rdt.img_cond_len + lang_tokens,
        vision_params_in_loop=vision_in_loop,
    )
    return footprint, rdt, shapes.source


def training_layout(config: dict) -> BatchLayout:
    """The layout the trainer uses: the same resolution the plan reports."""
    auto = config["hardware"]["per_device_batch"] == "auto"
    footprint = model_footprint(config, language_tokens(config))[0] if auto else None
    return resolve_layout(config["hardware"], config["train"]["effective_batch"], footprint)


def _better_layouts(config: dict, layout: BatchLayout, footprint: ModelFootprint) -> list[str]:
    """Larger micro-batches that reach the same effective batch, fit, and are measured faster."""
    hardware, capacity = config["hardware"], usable_memory_gib(config["hardware"])
    if capacity is None:
        return []
    per_process = config["train"]["effective_batch"] // layout.processes
    best = None
    for micro in range(layout.micro_batch + 1, per_process + 1):
        if per_process % micro:
            continue
        accumulation = per_process // micro
        peak = estimate_peak(footprint, micro, accumulation, layout.processes, hardware["param_dtype"]).total_gib
        if peak <= capacity:
            best = (micro, accumulation, peak)
    if best is None:
        return []
    micro, accumulation, peak = best
    faster, current = measured_speed(micro, accumulation), measured_speed(layout.micro_batch, layout.accumulation)
    if faster <= current * 1.01:
        return []
    return [
        f"per_device_batch {micro} x gradient_accumulation {accumulation} also fits ({peak:.1f} GiB estimated) "
        f"and should run about {faster / current - 1:.0%} faster than {layout.micro_batch} x {layout.accumulation} "
        f"(RDT-1B on an H200: {faster:.1f} vs {current:.1f} samples/s per GPU)"
    ]


def _pretrained_units_warnings(config: dict) -> list[str]:
    """Published RDT weights expect raw units; min/max inputs would start fine-tuning off-distribution."""
    if config["model"]["pretrained"] and config["data"]["normalization"]["mode"] != "raw":
        return [
            "model.pretrained was pre-trained on raw unified vectors (radians, grippers in [0, 1]) but "
            "data.normalization.mode is min_max: set it to raw (with divisors that bring grippers to [0, 1], "
            "as data.preset agilex does) unless you mean to re-learn the input scale"
        ]
    return []


def image_slot_lines(cameras: CameraConfig) -> list[str]:
    """'role: camera' for each image slot of a frame, in the order the model sees them."""
    return [f"{role}: {camera or 'no camera (background image)'}"
            for role, camera in zip(slot_roles(cameras), camera_slots(cameras))]


def _pretrained_camera_warnings(config: dict) -> list[str]:
    """The published weights saw [exterior, right wrist, left wrist]; any other order feeds
    each camera's view into a slot that was trained on another one."""
    cameras = config["data"]["cameras"]
    if not config["model"]["pretrained"]:
        return []
    if isinstance(cameras, list):
        return [
            f"data.cameras is a list ({', '.join(image_slot_lines(cameras))}), so rdtflow cannot tell which camera is "
            f"which, but model.pretrained was trained on RDT's slot order {', '.join(RDT_SLOTS)}: write data.cameras "
            "as a mapping {exterior: ..., right_wrist: ..., left_wrist: ...} (or `wrist:` for a single wrist camera)"
        ]
    slots = dict(zip(RDT_SLOTS, camera_slots(cameras)))
    if slots["left_wrist"] and not slots["right_wrist"]:
        return [
            f"data.cameras puts the only wrist camera {slots['left_wrist']} in the left-wrist slot, but RDT was trained "
            "with a single wrist camera in the right-wrist slot: name it `wrist` (or right_wrist)"
        ]
    return []


def _pretrained_architecture_warnings(config: dict, planned: RDTConfig, norm: NormChoice) -> list[str]:
    """What would stop training at its start, or start it from other numerics, said now."""
    pretrained = config["model"]["pretrained"]
    warnings = []
    if pretrained and norm.pretrained and norm.pretrained != norm.formula:
        warnings.append(
            f"model.norm is {norm.formula} but model.pretrained was trained with {norm.pretrained}: the fine-tune starts "
            "from weights computed under another normalisation (set model.norm: auto to keep theirs)"
        )
    try:
        differences = RDTConfig.from_json(config_file(Path(pretrained))).architecture_differences(planned) if pretrained else []
    except FileNotFoundError:  # planning where the checkpoint is not
        differences = []
    if differences:
        warnings.append(
            f"model.pretrained {pretrained} has another architecture than this config describes (checkpoint vs "
            f"config): {'; '.join(differences)}; training will stop at its start"
        )
    return warnings


def make_plan(config: dict, manifest_samples: int | None) -> TrainingPlan:
    hardware, train = config["hardware"], config["train"]
    lang_tokens = language_tokens(config)
    footprint, planned, encoder_source = model_footprint(config, lang_tokens)
    norm = norm_choice(config["model"])
    layout = resolve_layout(hardware, train["effective_batch"], footprint)
    memory = estimate_peak(footprint, layout.micro_batch, layout.accumulation, layout.processes, hardware["param_dtype"])
    capacity = usable_memory_gib(hardware)
    memory_warnings = []
    if capacity is not None and memory.total_gib > capacity:
        memory_warnings.append(
            f"micro-batch {layout.micro_batch} needs an estimated {memory.total_gib:.1f} GiB per device, more than "
            f"the {capacity:.1f} GiB usable of {hardware['gpu_memory_gib']} GiB: it will run out of memory; lower "
            "per_device_batch and raise gradient_accumulation, or use per_device_batch: auto"
        )
    samples_needed = train["max_steps"] * layout.effective_batch
    return TrainingPlan(
        hardware=hardware.get("name", "inline"),
        layout={**asdict(layout), "nodes": hardware["nodes"]},
        effective_batch=layout.effective_batch,
        optimizer_steps=train["max_steps"],
        checkpoint_steps=checkpoint_steps(train),
        manifest_samples=manifest_samples,
        epochs=samples_needed / manifest_samples if manifest_samples else None,
        launch_command=train_command(
            hardware, f"--config <the train stage config> --until-step {checkpoint_steps(train)[0]}"
        ),
        parameters=footprint.params,
        memory_gib={name: round(gib, 2) for name, gib in memory.parts().items()},
        peak_gib=round(memory.total_gib, 2),
        usable_gib=None if capacity is None else round(capacity, 2),
        encoder_source=encoder_source,
        language_tokens=lang_tokens,
        language_tokens_measured=RunPaths.from_config(config).language.is_file(),
        image_slots=image_slot_lines(config["data"]["cameras"]),
        norm=f"{norm.formula} ({norm.reason})",
        objective=f"loss {train['loss']}, augmentation recipe {train['augment']['recipe']}",
        warnings=memory_warnings + _pretrained_units_warnings(config) + _pretrained_camera_warnings(config)
        + _pretrained_architecture_warnings(config, planned, norm),
        suggestions=[] if memory_warnings else _better_layouts(config, layout, footprint),
    )


def write_plan(config: dict) -> TrainingPlan:
    """Plan the run, print it and record it as plan.json and plan.txt in the run's results."""
    paths = RunPaths.from_config(config)
    manifest_samples = len(pd.read_parquet(paths.manifest, columns=["step"])) if paths.manifest.is_file() else None
    plan = make_plan(config, manifest_samples)
    paths.plan.parent.mkdir(parents=True, exist_ok=True)
    paths.plan.write_text(json.dumps(asdict(plan), indent=1))
    paths.plan.with_suffix(".txt").write_text(plan.text() + "\n")
    print(plan.text())
    return plan

