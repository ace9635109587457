"""A diffusion transformer over image-latent patches and action tokens, shared by PAD and UWM.

Tokens, in sequence order (full self-attention over all of them):

- ``cond_tokens`` (optional, (B, Nc, width)): made by the caller (state, language, current-frame
  latents), plus a learned position embedding;
- action tokens: ``Linear(Da -> width)`` of the noisy chunk (B, T, Da), plus a learned position embedding;
- latent tokens: each of the K frames (B, K, C_in, h, w) cut into p x p patches by a stride-p conv
  (K * h/p * w/p tokens), plus learned spatial (row, column) and frame position embeddings;
- register tokens (optional): learned, output discarded (UWM uses them).

Blocks are DiT's adaLN-zero blocks: the condition vector c (B, width) gives each block a shift,
scale and gate for attention and MLP; gates start at zero so every block starts as the identity.
c = MLP(concat(timestep embeddings, cond)): one timestep embedding per timestep the caller passes:
one shared timestep (PAD) or one per modality, ``(t_action, t_obs)`` (UWM), each with its own MLP.

Outputs: the latent tokens unpatchified to (B, K, C_out, h, w) and the action tokens to (B, T, Da).

Example::

    net = DiT(latent_channels=4, latent_hw=(8, 8), n_frames=2, action_dim=7, horizon=16, cond_dim=256,
              n_timesteps=2)
    eps_obs, eps_act = net(noisy_latents, noisy_actions, (t_a, t_o), cond)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim) of (possibly fractional) timesteps."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class DiTBlock(nn.Module):
    """Pre-norm attention + MLP, each modulated (shift, scale) and gated by the condition: adaLN-zero."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """adaLN (shift, scale) then a zero-initialised Linear: the network starts by predicting 0."""

    def __init__(self, width: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear = nn.Linear(width, out_dim)
        for layer in (self.ada[1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """Denoiser over K latent frames and T action steps; see the module docstring.

    Args:
        latent_channels: C_in of the latent tokens' input (PAD: 2C, the current latent concatenated).
        latent_hw: (h, w) of a latent frame; both divisible by `patch`.
        n_frames: K latent frames (0: an action-only DiT).
        action_dim: Da (0: a latent-only DiT).
        horizon: T action tokens.
        cond_dim: size of the global condition vector (0: none).
        n_cond_tokens: Nc caller-made tokens (each of size `width`).
        n_timesteps: timestep embeddings summed into c (1: PAD, 2: UWM's (t_action, t_obs)).
        out_channels: C_out of the latent prediction (default: `latent_channels`).
        width, depth, heads, patch, mlp_ratio, n_registers, dropout: transformer size.
    """

    def __init__(self, latent_channels: int, latent_hw: Sequence[int], n_frames: int, action_dim: int, horizon: int,
                 cond_dim: int = 0, n_cond_tokens: int = 0, n_timesteps: int = 1, out_channels: int | None = None,
                 width: int = 128, depth: int = 4, heads: int = 4, patch: int = 2, mlp_ratio: float = 4.0,
                 n_registers: int = 0, dropout: float = 0.0):
        super().__init__()
        h, w = (int(s) for s in latent_hw)
        if width % heads:
            raise ValueError(f"width ({width}) must be divisible by heads ({heads}).")
        if n_frames and (h % patch or w % patch):
            raise ValueError(f"latent size {h}x{w} must be divisible by patch {patch}.")
        self.width, self.patch, self.n_frames, self.horizon = width, patch, n_frames, horizon
        self.latent_hw, self.out_channels = (h, w), out_channels or latent_channels
        self.action_dim, self.n_cond_tokens, self.n_registers = action_dim, n_cond_tokens, n_registers
        self.grid = (h // patch, w // patch)
        self.patch_embed = nn.Conv2d(latent_channels, width, patch, stride=patch) if n_frames else None
        # Factorised space-time position: a patch's spatial embedding is shared by every frame (and by
        # cond tokens made with `embed_patches`), so "same place, other frame" is easy to attend to.
        n_patches = self.grid[0] * self.grid[1]
        self.spatial_pos = nn.Parameter(torch.randn(1, 1, n_patches, width) * 0.02)
        self.frame_pos = nn.Parameter(torch.randn(1, n_frames, 1, width) * 0.02) if n_frames else None
        self.action_embed = nn.Linear(action_dim, width) if action_dim else None
        self.action_pos = nn.Parameter(torch.randn(1, horizon, width) * 0.02) if action_dim else None
        self.cond_pos = nn.Parameter(torch.randn(1, n_cond_tokens, width) * 0.02) if n_cond_tokens else None
        self.registers = nn.Parameter(torch.randn(1, n_registers, width) * 0.02) if n_registers else None
        self.time_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width)) for _ in range(n_timesteps))
        self.cond_mlp = (nn.Sequential(nn.Linear(cond_dim, width), nn.SiLU(), nn.Linear(width, width))
                         if cond_dim else None)
        self.c_mix = nn.Sequential(nn.SiLU(), nn.Linear(width * (n_timesteps + (1 if cond_dim else 0)), width))
        self.blocks = nn.ModuleList(DiTBlock(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.latent_out = FinalLayer(width, patch * patch * self.out_channels) if n_frames else None
        self.action_out = FinalLayer(width, action_dim) if action_dim else None

    def condition(self, timesteps: Sequence[torch.Tensor], cond: torch.Tensor | None) -> torch.Tensor:
        """c (B, width) from one (B,) timestep tensor per timestep MLP and the global condition."""
        if len(timesteps) != len(self.time_mlps):
            raise ValueError(f"this DiT takes {len(self.time_mlps)} timestep(s), got {len(timesteps)}.")
        parts = [mlp(timestep_embedding(t, self.width)) for mlp, t in zip(self.time_mlps, timesteps)]
        if self.cond_mlp is not None:
            if cond is None:
                raise ValueError("this DiT was built with cond_dim > 0 but got no cond.")
            parts.append(self.cond_mlp(cond))
        return self.c_mix(torch.cat(parts, dim=-1))

    def forward(self, latents: torch.Tensor | None, actions: torch.Tensor | None,
                timesteps: torch.Tensor | Sequence[torch.Tensor], cond: torch.Tensor | None = None,
                cond_tokens: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """latents (B, K, C_in, h, w), actions (B, T, Da), timesteps (B,) or a sequence of them,
        cond (B, cond_dim), cond_tokens (B, Nc, width) -> (B, K, C_out, h, w), (B, T, Da)."""
        if isinstance(timesteps, torch.Tensor):
            timesteps = (timesteps,)
        ref = latents if latents is not None else actions
        B = ref.shape[0]
        timesteps = [t.expand(B) if t.dim() == 0 else t for t in timesteps]
        c = self.condition(timesteps, cond)
        tokens = []
        if self.n_cond_tokens:
            tokens.append(cond_tokens + self.cond_pos)
        if self.action_embed is not None:
            tokens.append(self.action_embed(actions) + self.action_pos)
        if self.patch_embed is not None:
            K = latents.shape[1]
            x = self.patch_embed(latents.flatten(0, 1)).flatten(2).transpose(1, 2)  # (B*K, gh*gw, width)
            x = x.view(B, K, -1, self.width) + self.spatial_pos + self.frame_pos
            tokens.append(x.flatten(1, 2))
        if self.registers is not None:
            tokens.append(self.registers.expand(B, -1, -1))
        x = torch.cat(tokens, dim=1)
        for block in self.blocks:
            x = block(x, c)
        i = self.n_cond_tokens
        act_out = lat_out = None
        if self.action_embed is not None:
            act_out = self.action_out(x[:, i: i + self.horizon], c)
            i += self.horizon
        if self.patch_embed is not None:
            gh, gw = self.grid
            p, C = self.patch, self.out_channels
            y = self.latent_out(x[:, i: i + K * gh * gw], c)  # (B, K*gh*gw, p*p*C)
            y = y.view(B, K, gh, gw, C, p, p).permute(0, 1, 4, 2, 5, 3, 6)
            lat_out = y.reshape(B, K, C, gh * p, gw * p)
        return lat_out, act_out

    def embed_patches(self, latents: torch.Tensor, embed: nn.Conv2d) -> torch.Tensor:
        """(B, N, C, h, w) -> (B, N * gh * gw, width): frames patchified by another conv (e.g. current
        frames as cond tokens), with this DiT's spatial position embedding added."""
        B, N = latents.shape[:2]
        x = embed(latents.flatten(0, 1)).flatten(2).transpose(1, 2).view(B, N, -1, self.width)
        return (x + self.spatial_pos).flatten(1, 2)
