"""RDT policy: condition adaptors + the RDT transformer + diffusion schedulers.

Two verbs, as in diffusion_policy and LeRobot: `compute_loss` for training (DDPM noising,
`sample` prediction) and `predict_action` for acting (DPM-Solver sampling). Inputs are
already in RDT's unified 128-d vector and already encoded by the vision/text towers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler
from torch import nn

from rdtflow.errors import BadCheckpoint
from rdtflow.model.rdt import NORMS, RDT, UPSTREAM_NORM, RDTShape

UNIFIED_DIM = 128


@dataclass(frozen=True)
class NoiseSchedulerConfig:
    type: str = "ddpm"
    num_train_timesteps: int = 1000
    num_inference_timesteps: int = 5
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "sample"
    clip_sample: bool = False


@dataclass(frozen=True)
class TransformerConfig:
    """The `rdt` mapping of config.json.

    `norm` is rdtflow's addition (upstream's loader ignores it): the normalisation formula
    the weights were trained with. A config.json that names none is upstream's, whose
    timm 1.0.3 norm is not the true RMS (rdtflow.model.rdt.UnbiasedVarianceNorm).
    """

    hidden_size: int = 2048
    depth: int = 28
    num_heads: int = 32
    cond_pos_embed_type: str = "multimodal"  # the only kind upstream has
    norm: str = UPSTREAM_NORM

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise BadCheckpoint(f"rdt.norm '{self.norm}' is not one rdtflow computes; known: {', '.join(NORMS)}")


# What makes two checkpoints different models rather than two weights of one model: the tensor
# shapes, the transformer's layout, and how condition tokens are laid out (2 frames x 3 cameras
# is not 3 frames x 2 cameras, though both have the same length). The norm formula and the
# noise schedule are numerics a run may choose (model.norm, model.*_timesteps).
ARCHITECTURE_FIELDS = ("action_dim", "pred_horizon", "lang_token_dim", "img_token_dim", "state_token_dim",
                       "max_lang_cond_len", "img_cond_len", "lang_pos_embed_config", "img_pos_embed_config",
                       "lang_adaptor", "img_adaptor", "state_adaptor")
TRANSFORMER_ARCHITECTURE_FIELDS = ("hidden_size", "depth", "num_heads", "cond_pos_embed_type")


def _known_keys(values: dict, cls: type, where: str, source: Path) -> dict:
    """`values` when every key is a field of `cls`; an unknown key may change the model, so it
    stops the load instead of being dropped."""
    unknown = sorted(set(values) - set(cls.__dataclass_fields__))
    if unknown:
        raise BadCheckpoint(
            f"{source}: unknown key(s) {', '.join(unknown)} in {where}; rdtflow reads {', '.join(cls.__dataclass_fields__)}. "
            "This checkpoint may describe a model rdtflow cannot build"
        )
    return values


@dataclass(frozen=True)
class RDTConfig:
    """The flat `config.json` of an RDT checkpoint directory (official layout).

    Every key upstream writes is read: `ema` holds upstream's EMA settings (power schedule)
    and is written back only when the checkpoint carried it; rdtflow's own EMA is
    `train.ema_decay`.
    """

    action_dim: int = UNIFIED_DIM
    pred_horizon: int = 64
    lang_token_dim: int = 4096
    img_token_dim: int = 1152
    state_token_dim: int = UNIFIED_DIM
    max_lang_cond_len: int = 1024
    img_cond_len: int = 4374
    lang_pos_embed_config: list = field(default_factory=lambda: [["lang", -1024]])
    img_pos_embed_config: list = field(default_factory=lambda: [["image", [2, 3, -729]]])
    lang_adaptor: str = "mlp2x_gelu"
    img_adaptor: str = "mlp2x_gelu"
    state_adaptor: str = "mlp3x_gelu"
    rdt: TransformerConfig = field(default_factory=TransformerConfig)
    noise_scheduler: NoiseSchedulerConfig = field(default_factory=NoiseSchedulerConfig)
    ema: dict | None = None

    def to_json(self, path: Path) -> None:
        values = asdict(self)
        if values["ema"] is None:
            del values["ema"]
        path.write_text(json.dumps(values, indent=1))

    @classmethod
    def from_json(cls, path: Path) -> "RDTConfig":
        return cls.from_dict(json.loads(Path(path).read_text()), Path(path))

    @classmethod
    def from_dict(cls, values: dict, source: Path) -> "RDTConfig":
        """From config.json's mapping; `source` names where it came from in errors."""
        values = _known_keys(values, cls, "config.json", source)
        return cls(**{
            **values,
            "rdt": TransformerConfig(**_known_keys(values.get("rdt", {}), TransformerConfig, "its rdt mapping", source)),
            "noise_scheduler": NoiseSchedulerConfig(
                **_known_keys(values.get("noise_scheduler", {}), NoiseSchedulerConfig, "its noise_scheduler mapping", source)
            ),
        })

    def architecture_differences(self, other: "RDTConfig") -> list[str]:
        """The architecture fields (ARCHITECTURE_FIELDS) that differ, as 'name: ours vs theirs'."""
        pairs = [(name, getattr(self, name), getattr(other, name)) for name in ARCHITECTURE_FIELDS]
        pairs += [(f"rdt.{name}", getattr(self.rdt, name), getattr(other.rdt, name))
                  for name in TRANSFORMER_ARCHITECTURE_FIELDS]
        return [f"{name}: {ours} vs {theirs}" for name, ours, theirs in pairs if _as_json(ours) != _as_json(theirs)]


def _as_json(value: object) -> str:
    """Compare as config.json would store it: tuples and lists alike."""
    return json.dumps(value)


def mlp_adaptor(kind: str, in_features: int, out_features: int) -> nn.Sequential:
    """RDT's `mlpNx_gelu` adaptors: N linear layers with tanh-GELU between them."""
    depth = int(kind.removeprefix("mlp").removesuffix("x_gelu"))
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    for _ in range(depth - 1):
        layers += [nn.GELU(approximate="tanh"), nn.Linear(out_features, out_features)]
    for layer in layers[::2]:  # Xavier, like the transformer: keeps sparse unified inputs audible
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def _build_schedulers(schedule: NoiseSchedulerConfig) -> tuple[DDPMScheduler, DPMSolverMultistepScheduler]:
    """DDPM noising for training and DPM-Solver for sampling, on one noise schedule."""
    shared = dict(
        num_train_timesteps=schedule.num_train_timesteps,
        beta_schedule=schedule.beta_schedule,
        prediction_type=schedule.prediction_type,
    )
    return DDPMScheduler(clip_sample=schedule.clip_sample, **shared), DPMSolverMultistepScheduler(**shared)


class RDTPolicy(nn.Module):
    def __init__(self, config: RDTConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.rdt.hidden_size
        self.model = RDT(
            RDTShape(
                hidden_size=hidden,
                depth=config.rdt.depth,
                num_heads=config.rdt.num_heads,
                output_dim=config.action_dim,
                pred_horizon=config.pred_horizon,
                max_lang_cond_len=config.max_lang_cond_len,
                img_cond_len=config.img_cond_len,
                norm=config.rdt.norm,
            )
        )
        self.lang_adaptor = mlp_adaptor(config.lang_adaptor, config.lang_token_dim, hidden)
        self.img_adaptor = mlp_adaptor(config.img_adaptor, config.img_token_dim, hidden)
        # The state adaptor sees the value and its validity mask side by side.
        self.state_adaptor = mlp_adaptor(config.state_adaptor, config.state_token_dim * 2, hidden)
        schedule = config.noise_scheduler
        with torch.device("cpu"):  # schedulers keep CPU tables, even when the model is built on meta
            self.train_scheduler, self.sample_scheduler = _build_schedulers(schedule)

    def _denoise(self, noisy_action, timestep, cond: "Conditions") -> torch.Tensor:
        mask = cond.action_mask.expand(-1, noisy_action.shape[1], -1)
        action_tokens = self.state_adaptor(torch.cat([noisy_action, mask], dim=-1))
        state_action = torch.cat([cond.state_token, action_tokens], dim=1)
        return self.model(state_action, cond.control_frequency, timestep, cond.lang, cond.lang_mask, cond.img)

    def adapt(self, batch: dict[str, torch.Tensor]) -> "Conditions":
        """Project encoder outputs and the state into the transformer's width, once per batch."""
        state = torch.cat([batch["state"], batch["action_mask"]], dim=-1)  # (B, 1, 256)
        return Conditions(
            state_token=self.state_adaptor(state),
            lang=self.lang_adaptor(batch["lang_tokens"]),
            lang_mask=batch["lang_mask"],
            img=self.img_adaptor(batch["img_tokens"]),
            action_mask=batch["action_mask"],
            control_frequency=batch["control_frequency"],
        )

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """DDPM loss: the mean squared error over the dimensions `batch["loss_mask"]` (B, 1, 128) selects.

        Upstream RDT averages over all 128 unified dimensions (its padding targets are 0, so
        the model also learns to output zeros there); a mask of the valid dimensions averages
        over the robot's own ones only (train.loss).
        `batch["noise"]` and `batch["timestep"]` come from per-sample seeds, so the loss of a
        sample does not depend on how samples are split across processes or micro-batches.
        """
        action = batch["action"]  # (B, H, 128)
        noisy = self.train_scheduler.add_noise(action, batch["noise"], batch["timestep"])
        prediction = self._denoise(noisy, batch["timestep"], self.adapt(batch))
        mask = batch["loss_mask"].expand_as(action)
        return F.mse_loss(prediction * mask, action * mask, reduction="sum") / mask.sum()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss: DDP synchronises gradients only through `forward`."""
        return self.compute_loss(batch)

    @torch.no_grad()
    def predict_action(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample an action chunk (B, H, 128) with DPM-Solver; invalid dimensions are zero."""
        cond = self.adapt(batch)
        batch_size = cond.state_token.shape[0]
        shape = (batch_size, self.config.pred_horizon, self.config.action_dim)
        action = torch.randn(shape, generator=generator, device=cond.state_token.device).to(cond.state_token.dtype)
        scheduler = self.sample_scheduler
        scheduler.set_timesteps(self.config.noise_scheduler.num_inference_timesteps)
        for timestep in scheduler.timesteps:
            step = timestep.expand(batch_size).to(cond.state_token.device)
            prediction = self._denoise(action, step, cond)
            action = scheduler.step(prediction, timestep, action).prev_sample
        return action * cond.action_mask


@dataclass
class Conditions:
    """Adapted conditioning tokens shared by every denoising step of one batch."""

    state_token: torch.Tensor  # (B, 1, C)
    lang: torch.Tensor  # (B, L, C)
    lang_mask: torch.Tensor  # (B, L) bool
    img: torch.Tensor  # (B, N, C)
    action_mask: torch.Tensor  # (B, 1, 128)
    control_frequency: torch.Tensor  # (B,)
