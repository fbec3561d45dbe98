"""The RDT diffusion transformer, written for rdtflow.

Module and parameter names follow the published RDT-1B checkpoint (tests/model/test_policy.py
compares them with its state dict) so official weights load with strict=True.

The token sequence is [diffusion timestep, control frequency, state, action chunk]; every
block self-attends over it, then cross-attends to the language tokens (even blocks) or the
image tokens (odd blocks), as in RDT. Every norm uses one formula (RDTShape.norm): timm
1.0.3's, which upstream computes and the published weights were trained with, or the true
RMS; tests/model/test_upstream_golden.py checks both against upstream's own outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

FREQUENCY_EMBEDDING_DIM = 256
NORM_EPS = 1e-6


class UnbiasedVarianceNorm(nn.Module):
    """timm 1.0.3's `RmsNorm`, the one upstream RDT pins: x * rsqrt(var(x, unbiased) + eps) * w.

    Despite its name it divides by the unbiased variance, not the mean of squares, so it also
    removes the per-token mean's share of the scale (timm fixed this in 1.0.13). The published
    RDT weights were trained with it; computing them under the true RMS changes the outputs
    (by 0.2 on the transformer output at a small size), so a fine-tune would start from a
    perturbed model. Same parameter name as nn.RMSNorm (`weight`), so checkpoints load either way.
    """

    def __init__(self, dim: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.var(x, dim=-1, keepdim=True) + self.eps) * self.weight


# model.norm / config.json rdt.norm: the normalisation formula of every norm in the transformer.
NORMS = {"timm-1.0.3": UnbiasedVarianceNorm, "rms": nn.RMSNorm}
UPSTREAM_NORM = "timm-1.0.3"  # what a config.json that names no norm was trained with


def make_norm(kind: str, dim: int) -> nn.Module:
    return NORMS[kind](dim, eps=NORM_EPS)


@dataclass(frozen=True)
class RDTShape:
    """Sizes of the core transformer (the `rdt` block and token counts of config.json)."""

    hidden_size: int
    depth: int
    num_heads: int
    output_dim: int  # action_dim of the unified vector
    pred_horizon: int
    max_lang_cond_len: int
    img_cond_len: int
    norm: str  # a key of NORMS


POSITION_SCALE = 0.1


def sincos_embedding(length: int, dim: int) -> torch.Tensor:
    """1-D sine/cosine positions (length, dim), the initial value of the position tables.

    Scaled down so that, at initialisation, positions do not drown the adapted state, action
    and image tokens (only a few of the 128 unified dimensions are filled, so those tokens
    start small); with full-scale tables a small model spends its first thousand steps
    growing its adaptors.
    """
    position = torch.arange(length, dtype=torch.float64)[:, None]
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = position * omega[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return POSITION_SCALE * table.float()


class ConditionEmbedder(nn.Module):
    """Scalar condition (diffusion timestep or control frequency) -> one token."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(FREQUENCY_EMBEDDING_DIM, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, value: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, C)
        half = FREQUENCY_EMBEDDING_DIM // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=value.device, dtype=torch.float32) / half)
        angles = value.float()[:, None] * freqs[None]
        embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        return self.mlp(embedding.to(self.mlp[0].weight.dtype))


class SelfAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, norm: str) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, hidden_size * 3)
        self.q_norm = make_norm(norm, head_dim)
        self.k_norm = make_norm(norm, head_dim)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        batch, tokens, channels = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)  # (B, H, T, D)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, channels))


class CrossAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, norm: str) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = hidden_size // num_heads
        self.q = nn.Linear(hidden_size, hidden_size)
        self.kv = nn.Linear(hidden_size, hidden_size * 2)
        self.q_norm = make_norm(norm, head_dim)
        self.k_norm = make_norm(norm, head_dim)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor | None) -> torch.Tensor:
        batch, tokens, channels = x.shape  # x (B, T, C), cond (B, L, C), cond_mask (B, L) bool
        q = self.q(x).view(batch, tokens, self.num_heads, -1).transpose(1, 2)
        k, v = self.kv(cond).view(batch, cond.shape[1], 2, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn_mask = None if cond_mask is None else cond_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, channels))


class FeedForward(nn.Module):
    def __init__(self, hidden_size: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, hidden_size)
        self.fc2 = nn.Linear(hidden_size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class RDTBlock(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, norm: str) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, hidden_size)
        self.attn = SelfAttention(hidden_size, num_heads, norm)
        self.cross_attn = CrossAttention(hidden_size, num_heads, norm)
        self.norm2 = make_norm(norm, hidden_size)
        self.ffn = FeedForward(hidden_size, hidden_size)
        self.norm3 = make_norm(norm, hidden_size)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), cond, cond_mask)
        return x + self.ffn(self.norm3(x))


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, out_features: int, norm: str) -> None:
        super().__init__()
        self.norm_final = make_norm(norm, hidden_size)
        self.ffn_final = FeedForward(hidden_size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_final(self.norm_final(x))


class RDT(nn.Module):
    """Denoises an action chunk given state, language and image tokens already in width C."""

    def __init__(self, shape: RDTShape) -> None:
        super().__init__()
        self.shape = shape
        width = shape.hidden_size
        self.t_embedder = ConditionEmbedder(width)
        self.freq_embedder = ConditionEmbedder(width)
        # +3 tokens: diffusion timestep, control frequency, state.
        self.x_pos_embed = nn.Parameter(sincos_embedding(shape.pred_horizon + 3, width)[None])
        self.lang_cond_pos_embed = nn.Parameter(sincos_embedding(shape.max_lang_cond_len, width)[None])
        self.img_cond_pos_embed = nn.Parameter(sincos_embedding(shape.img_cond_len, width)[None])
        self.blocks = nn.ModuleList(RDTBlock(width, shape.num_heads, shape.norm) for _ in range(shape.depth))
        self.final_layer = FinalLayer(width, shape.output_dim, shape.norm)
        self._initialize()

    def _initialize(self) -> None:
        """Xavier linears, small condition MLPs and a zero output layer, as in DiT/RDT: the
        untrained model predicts zeros instead of noise-scale outputs."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for embedder in (self.t_embedder, self.freq_embedder):
            nn.init.normal_(embedder.mlp[0].weight, std=0.02)
            nn.init.normal_(embedder.mlp[2].weight, std=0.02)
        nn.init.zeros_(self.final_layer.ffn_final.fc2.weight)
        nn.init.zeros_(self.final_layer.ffn_final.fc2.bias)

    def forward(
        self,
        state_action: torch.Tensor,  # (B, 1 + H, C): state token then noisy action tokens
        control_frequency: torch.Tensor,  # (B,)
        timestep: torch.Tensor,  # (B,)
        lang: torch.Tensor,  # (B, L, C)
        lang_mask: torch.Tensor | None,  # (B, L) bool, True = real token
        img: torch.Tensor,  # (B, N, C)
    ) -> torch.Tensor:  # (B, H, output_dim), float32
        # The transformer may be held in bf16 (as RDT does) while the adaptors stay fp32.
        dtype = self.x_pos_embed.dtype
        t_token = self.t_embedder(timestep)[:, None]
        freq_token = self.freq_embedder(control_frequency)[:, None]
        x = torch.cat([t_token, freq_token, state_action.to(dtype)], dim=1) + self.x_pos_embed
        lang = lang.to(dtype) + self.lang_cond_pos_embed[:, : lang.shape[1]]
        img = img.to(dtype) + self.img_cond_pos_embed[:, : img.shape[1]]
        for index, block in enumerate(self.blocks):
            x = block(x, lang, lang_mask) if index % 2 == 0 else block(x, img, None)
        return self.final_layer(x)[:, -self.shape.pred_horizon :].float()
