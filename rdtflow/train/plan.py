"""`rdtflow plan`: is this fine-tune config right for these GPUs? Answered before any GPU hour.

The plan states the exact launch command the train rule runs, the batch layout, steps and
epochs, and the estimated peak memory per device. It warns when the micro-batch will not fit
and says when a larger micro-batch would fit and run faster.

The recorded plan (plan.json) is what trains: the trainer takes its batch layout and its RDT
config from it, and stops when the config it was given is not the one the plan was made for.
Planning also works where the data, encoders or checkpoint are not (a laptop, before any
GPU hour): what cannot be read is assumed, and the plan says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from rdtflow.data.cameras import RDT_SLOTS, CameraConfig, camera_slots, slot_roles
from rdtflow.errors import MissingFile, RdtflowError
from rdtflow.model.policy import RDTConfig
from rdtflow.model.shapes import NormChoice, encoder_shapes, norm_choice, parameter_counts, policy_config
from rdtflow.model.weights import config_file
from rdtflow.paths import RunPaths
from rdtflow.train.hardware import resolve_layout, usable_memory_gib
from rdtflow.train.launch import train_command
from rdtflow.train.layout import PLANNED_SECTIONS, BatchLayout, checkpoint_steps
from rdtflow.train.memory import ModelFootprint, estimate_peak, measured_speed


@dataclass
class TrainingPlan:
    hardware: str
    config: dict  # the config sections the plan was made from
    rdt_config: dict  # the model to build (RDTConfig, config.json's layout)
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
            "launch (first period; later periods resume from the checkpoint before theirs):",
            f"  {self.launch_command}",
        ]
        lines += [f"WARNING: {w}" for w in self.warnings] + [f"suggestion: {s}" for s in self.suggestions]
        return "\n".join(lines)


def _steps_summary(steps: list[int]) -> str:
    return ", ".join(map(str, steps)) if len(steps) <= 6 else f"{steps[0]}, {steps[1]}, ..., {steps[-1]}"


ASSUMED_LANGUAGE_TOKENS = 32  # as in the calibration measurements


def language_tokens(language_path: Path, max_lang_tokens: int) -> tuple[int, bool]:
    """(language tokens per sample, whether measured). Batches pad to the longest instruction,
    not to the maximum, so once encode_lang has run the longest encoded one counts."""
    if Path(language_path).is_file():
        from safetensors import safe_open

        with safe_open(str(language_path), framework="pt") as embeddings:
            return max(embeddings.get_slice(key).get_shape()[0] for key in embeddings.keys()), True
    return min(ASSUMED_LANGUAGE_TOKENS, max_lang_tokens), False


def model_footprint(config: dict, lang_tokens: int, vision_dir: Path, text_dir: Path,
                    norm: str) -> tuple[ModelFootprint, RDTConfig, str]:
    """(footprint, the RDT config, where encoder shapes came from) for this config."""
    shapes = encoder_shapes(config, vision_dir, text_dir)
    rdt = policy_config(config, shapes, norm)
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


def _pretrained_architecture_warnings(planned: RDTConfig, norm: NormChoice, pretrained: Path | None) -> list[str]:
    """What would stop training at its start, or start it from other numerics, said now."""
    warnings = []
    if pretrained and norm.pretrained and norm.pretrained != norm.formula:
        warnings.append(
            f"model.norm is {norm.formula} but model.pretrained was trained with {norm.pretrained}: the fine-tune starts "
            "from weights computed under another normalisation (set model.norm: auto to keep theirs)"
        )
    try:
        differences = RDTConfig.from_json(config_file(pretrained)).architecture_differences(planned) if pretrained else []
    except FileNotFoundError:  # planning where the checkpoint is not
        differences = []
    if differences:
        warnings.append(
            f"model.pretrained {pretrained} has another architecture than this config describes (checkpoint vs "
            f"config): {'; '.join(differences)}; training will stop at its start"
        )
    return warnings


def make_plan(config: dict, manifest_path: Path, language_path: Path, vision_dir: Path, text_dir: Path,
              pretrained_dir: Path | None = None) -> TrainingPlan:
    """The plan of a run from the files it reads; any of them may be missing (planning ahead)."""
    hardware, train = config["hardware"], config["train"]
    manifest_samples = len(pd.read_parquet(manifest_path, columns=["step"])) if Path(manifest_path).is_file() else None
    lang_tokens, measured = language_tokens(language_path, config["encoders"]["max_lang_tokens"])
    norm = norm_choice(config["model"], pretrained_dir)
    footprint, planned, encoder_source = model_footprint(config, lang_tokens, vision_dir, text_dir, norm.formula)
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
    first_job = RunPaths.from_config(config).job_config("train", checkpoint_steps(train)[0])
    return TrainingPlan(
        hardware=hardware.get("name", "inline"),
        config={section: config[section] for section in PLANNED_SECTIONS},
        rdt_config=asdict(planned),
        layout={**asdict(layout), "nodes": hardware["nodes"]},
        effective_batch=layout.effective_batch,
        optimizer_steps=train["max_steps"],
        checkpoint_steps=checkpoint_steps(train),
        manifest_samples=manifest_samples,
        epochs=samples_needed / manifest_samples if manifest_samples else None,
        launch_command=train_command(hardware, f"--run-config {first_job}"),
        parameters=footprint.params,
        memory_gib={name: round(gib, 2) for name, gib in memory.parts().items()},
        peak_gib=round(memory.total_gib, 2),
        usable_gib=None if capacity is None else round(capacity, 2),
        encoder_source=encoder_source,
        language_tokens=lang_tokens,
        language_tokens_measured=measured,
        image_slots=image_slot_lines(config["data"]["cameras"]),
        norm=f"{norm.formula} ({norm.reason})",
        objective=f"loss {train['loss']}, augmentation recipe {train['augment']['recipe']}",
        warnings=memory_warnings + _pretrained_units_warnings(config) + _pretrained_camera_warnings(config)
        + _pretrained_architecture_warnings(planned, norm, pretrained_dir),
        suggestions=[] if memory_warnings else _better_layouts(config, layout, footprint),
    )


def write_plan(config: dict, manifest_path: Path, language_path: Path, vision_dir: Path, text_dir: Path,
               plan_out: Path, plan_text_out: Path, pretrained_dir: Path | None = None) -> TrainingPlan:
    """Plan the run, print it and record it as plan.json and plan.txt."""
    plan = make_plan(config, manifest_path, language_path, vision_dir, text_dir, pretrained_dir)
    Path(plan_out).parent.mkdir(parents=True, exist_ok=True)
    Path(plan_out).write_text(json.dumps(asdict(plan), indent=1))
    Path(plan_text_out).write_text(plan.text() + "\n")
    print(plan.text())
    return plan


class StalePlan(RdtflowError):
    """Training was asked to follow a plan made for another config."""


def read_plan(plan_path: Path, config: dict) -> TrainingPlan:
    """The recorded plan, which training follows, once it is known to be this config's."""
    if not Path(plan_path).is_file():
        raise MissingFile(f"no plan at {plan_path}: run `rdtflow plan` with the same config first (the workflow does)")
    plan = TrainingPlan(**json.loads(Path(plan_path).read_text()))
    changed = [section for section in PLANNED_SECTIONS if plan.config.get(section) != config.get(section)]
    if changed:
        raise StalePlan(
            f"{plan_path} was made for another config (sections {', '.join(changed)} differ): run `rdtflow plan` "
            "again with this config"
        )
    return plan
