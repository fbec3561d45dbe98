"""Token shapes of the encoders and the RDT config they imply, without loading any weights.

Planning a run (memory, launch line) must work on a laptop that has neither the GPU nor the
multi-GB encoder folders, so shapes come from the encoders' config.json when the folder is
there, from the published architecture of well-known encoders when it is not, and from the
config's `tiny_*` settings for the small encoders the pipeline builds itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from rdtflow.data.cameras import camera_slots
from rdtflow.errors import MissingFile
from rdtflow.model.policy import NoiseSchedulerConfig, RDTConfig, RDTPolicy, TransformerConfig
from rdtflow.model.rdt import UPSTREAM_NORM
from rdtflow.model.weights import config_file

# Published architectures (config.json of the public checkpoints), used only when the folder
# is not on this machine.
KNOWN_VISION = {
    "siglip-so400m-patch14-384": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
                                  "num_attention_heads": 16, "image_size": 384, "patch_size": 14},
}
KNOWN_TEXT_WIDTH = {"t5-v1_1-xxl": 4096}


@dataclass(frozen=True)
class EncoderShapes:
    tokens_per_image: int
    img_token_dim: int
    vision_params: int
    lang_token_dim: int
    source: str  # where the shapes came from, for the plan's report


def _vision_config(config: dict, folder: Path):
    from transformers import SiglipVisionConfig

    if config["encoders"]["vision_path"] is None:
        tiny = SiglipVisionConfig(**config["encoders"]["tiny_vision"])
        return tiny, "built small tower"
    if (folder / "config.json").is_file():
        return SiglipVisionConfig.from_pretrained(folder), f"{folder}/config.json"
    if folder.name in KNOWN_VISION:
        source = f"published {folder.name} architecture ({folder} not on this machine)"
        return SiglipVisionConfig(**KNOWN_VISION[folder.name]), source
    raise MissingFile(
        f"encoders.vision_path: {folder} has no config.json, and '{folder.name}' is not a known architecture "
        f"({', '.join(KNOWN_VISION)}); point it at the local SigLIP folder"
    )


def _text_width(config: dict, folder: Path) -> int:
    from transformers import T5Config

    if config["encoders"]["text_path"] is None:
        return int(config["encoders"]["tiny_text"]["d_model"])
    if (folder / "config.json").is_file():
        return int(T5Config.from_pretrained(folder).d_model)
    if folder.name in KNOWN_TEXT_WIDTH:
        return KNOWN_TEXT_WIDTH[folder.name]
    raise MissingFile(
        f"encoders.text_path: {folder} has no config.json, and '{folder.name}' is not a known architecture "
        f"({', '.join(KNOWN_TEXT_WIDTH)}); point it at the local T5 folder"
    )


def encoder_shapes(config: dict, vision_dir: Path, text_dir: Path) -> EncoderShapes:
    """Token shapes of the run's encoders: read from their folders' config.json (or, for the
    small ones the pipeline builds, from the config's tiny settings)."""
    from transformers import SiglipVisionModel

    vision_config, source = _vision_config(config, vision_dir)
    with torch.device("meta"):
        vision_params = sum(p.numel() for p in SiglipVisionModel(vision_config).parameters())
    return EncoderShapes(
        tokens_per_image=(vision_config.image_size // vision_config.patch_size) ** 2,
        img_token_dim=vision_config.hidden_size,
        vision_params=vision_params,
        lang_token_dim=_text_width(config, text_dir),
        source=source,
    )


@dataclass(frozen=True)
class NormChoice:
    formula: str  # a key of rdtflow.model.rdt.NORMS
    reason: str  # where it came from, for the plan
    pretrained: str | None  # what model.pretrained's weights were trained with, when they are known


def pretrained_norm(folder: Path) -> tuple[str, str]:
    """(formula, reason) the weights of a checkpoint folder were trained with. Upstream's
    config.json names none: its weights were trained with timm 1.0.3's norm."""
    try:
        file = config_file(folder)
    except FileNotFoundError:
        return UPSTREAM_NORM, f"upstream's: {folder} is not on this machine to say otherwise"
    recorded = json.loads(file.read_text()).get("rdt", {}).get("norm")
    return (recorded, f"recorded in {file}") if recorded else (UPSTREAM_NORM, f"upstream's: {file} names none")


def norm_choice(model: dict, pretrained_dir: Path | None) -> NormChoice:
    """model.norm, with `auto` meaning: what model.pretrained (`pretrained_dir`) was trained
    with, or the true RMS when training from scratch (there are no published numerics to match)."""
    pretrained = pretrained_norm(Path(pretrained_dir)) if pretrained_dir else None
    if model["norm"] != "auto":
        return NormChoice(model["norm"], "model.norm", pretrained and pretrained[0])
    if pretrained:
        return NormChoice(pretrained[0], pretrained[1], pretrained[0])
    return NormChoice("rms", "from scratch (model.norm auto)", None)


def policy_config(config: dict, shapes: EncoderShapes, norm: str) -> RDTConfig:
    """The RDT config of this run: sizes from the config, token widths from the encoders, and
    the norm formula (NormChoice.formula)."""
    model = config["model"]
    history, cameras = model["img_history_size"], len(camera_slots(config["data"]["cameras"]))
    max_lang = config["encoders"]["max_lang_tokens"]
    return RDTConfig(
        pred_horizon=model["pred_horizon"],
        lang_token_dim=shapes.lang_token_dim,
        img_token_dim=shapes.img_token_dim,
        max_lang_cond_len=max_lang,
        img_cond_len=history * cameras * shapes.tokens_per_image,
        lang_pos_embed_config=[["lang", -max_lang]],
        img_pos_embed_config=[["image", [history, cameras, -shapes.tokens_per_image]]],
        rdt=TransformerConfig(hidden_size=model["hidden_size"], depth=model["depth"], num_heads=model["num_heads"],
                              norm=norm),
        noise_scheduler=NoiseSchedulerConfig(
            num_train_timesteps=model["num_train_timesteps"],
            num_inference_timesteps=model["num_inference_timesteps"],
            beta_schedule=model["beta_schedule"],
        ),
    )


def parameter_counts(rdt_config: RDTConfig) -> tuple[int, int]:
    """(transformer parameters, adaptor parameters), counted on the meta device at no memory cost."""
    with torch.device("meta"):
        policy = RDTPolicy(rdt_config)
    core = sum(p.numel() for p in policy.model.parameters())
    return core, sum(p.numel() for p in policy.parameters()) - core
