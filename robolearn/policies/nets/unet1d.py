"""ConditionalUnet1D: the temporal CNN denoiser of Diffusion Policy (DP-C).

A 1-D U-Net over the action horizon T. Each residual block is Conv1d -> GroupNorm(8) -> Mish
twice, with FiLM (per-channel scale and bias) from a global condition vector
``cond = concat(MLP(sinusoidal(k)), obs_features)`` between the two convolutions.

Layout follows Chi et al. (2023): down levels of two residual blocks (+ stride-2 conv except the
last), two middle blocks, up levels with skip concatenation (+ transposed conv), and a final conv.

Two CPU-speed choices, both the same math rearranged:

- All FiLM projections are fused into one Linear, and because Mish is elementwise,
  ``W @ mish([emb_k; obs]) = W_k @ mish(emb_k) + W_o @ mish(obs)``. A sampler computes the
  observation part once per chunk (`obs_film`) and the step part for all its steps in one call
  (`step_film`), then runs `denoise` per step.
- Small inputs (batch-1 inference) run each temporal conv as one im2col matmul: PyTorch routes
  batch-1 1-D convolutions to its reference kernel, 3-5x slower at 128+ channels. Training keeps
  oneDNN's convolution (unfold's backward costs more than the matmul saves).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        arg = k.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Conv1d(nn.Conv1d):
    """Conv1d (same padding by default) whose small inputs go through one im2col matmul (see module doc).

    Under `torch.compile` every input takes the matmul path: inductor then runs it as a prepacked
    MKL linear instead of PyTorch's reference kernel for small 1-D convolutions.
    """

    # Measured on a 2-core EPYC: the matmul wins for B * T <= 256 once C_in * k exceeds ~320.
    _MAX_ROWS = 256
    _MIN_COLS = 321

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int | None = None):
        super().__init__(c_in, c_out, kernel_size, stride, kernel_size // 2 if padding is None else padding)
        self._use_matmul = c_in * kernel_size >= self._MIN_COLS and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T = x.shape
        compiling = torch.compiler.is_compiling()
        # Training takes oneDNN's convolution: unfold's backward makes the matmul path slower there (U-Net
        # forward + backward at B=64, T=16: 135 vs 150 ms, one thread).
        training = torch.is_grad_enabled() and self.weight.requires_grad
        if not compiling and (not self._use_matmul or B * T > self._MAX_ROWS or x.device.type != "cpu" or training):
            return super().forward(x)
        k, p, s = self.kernel_size[0], self.padding[0], self.stride[0]
        cols = F.pad(x, (p, p)).unfold(2, k, s)  # (B, C, T_out, k)
        T_out = cols.shape[2]
        cols = cols.transpose(1, 2).reshape(B * T_out, C * k)
        y = torch.addmm(self.bias, cols, self.weight.view(self.out_channels, C * k).t())
        return y.view(B, T_out, self.out_channels).transpose(1, 2)


class Conv1dBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int):
        super().__init__(
            Conv1d(c_in, c_out, kernel_size),
            nn.GroupNorm(n_groups, c_out),
            nn.Mish(),
        )


class ResidualBlock1D(nn.Module):
    """Two conv blocks with FiLM in between; `film` is this block's (B, 2*C_out) or (B, C_out) slice."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int, film_scale: bool):
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel_size, n_groups)
        self.block2 = Conv1dBlock(c_out, c_out, kernel_size, n_groups)
        self.residual = Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.c_out = c_out
        self.film_dim = 2 * c_out if film_scale else c_out

    def forward(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        if self.film_dim == 2 * self.c_out:
            scale, bias = film[:, : self.c_out, None], film[:, self.c_out :, None]
            h = torch.addcmul(bias, h, scale)
        else:
            h = h + film[:, :, None]
        return self.block2(h) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """Noise predictor eps(x_k, k, cond) for action sequences.

    Args:
        input_dim: Da.
        global_cond_dim: size of the flattened observation features (To * D_obs_features).
        down_dims: channels per level; T must be divisible by 2 ** (len(down_dims) - 1).
        kernel_size: temporal kernel of every conv block.
        n_groups: GroupNorm groups.
        step_embed_dim: size of the diffusion-step embedding.
        film_scale: FiLM with scale and bias (True) or bias only.
        output_dim: channels out; None: input_dim (an input may carry extra channels, e.g. the frozen-prefix
            flag of training-time RTC, that are not predicted).

    Shapes: ``forward(x: (B, T, Da), k: (B,) or scalar, global_cond: (B, global_cond_dim)) -> (B, T, Da)``;
    samplers call ``denoise(x, obs_film(cond) + step_film(k))`` to reuse the FiLM parts across steps.
    """

    def __init__(
        self,
        input_dim: int,
        global_cond_dim: int,
        down_dims: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        n_groups: int = 8,
        step_embed_dim: int = 128,
        film_scale: bool = True,
        output_dim: int | None = None,
    ):
        super().__init__()
        self.step_encoder = nn.Sequential(
            SinusoidalPosEmb(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        self.step_embed_dim = step_embed_dim
        self.global_cond_dim = global_cond_dim

        def block(c_in: int, c_out: int) -> ResidualBlock1D:
            return ResidualBlock1D(c_in, c_out, kernel_size, n_groups, film_scale)

        dims = [input_dim, *down_dims]
        levels = list(zip(dims[:-1], dims[1:]))
        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(levels):
            last = i == len(levels) - 1
            self.down.append(nn.ModuleList([
                block(c_in, c_out), block(c_out, c_out),
                nn.Identity() if last else Conv1d(c_out, c_out, 3, stride=2, padding=1),
            ]))
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]), block(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList()
        for c_in, c_out in reversed(levels[1:]):
            self.up.append(nn.ModuleList([
                block(2 * c_out, c_in), block(c_in, c_in), nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1),
            ]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                                   Conv1d(down_dims[0], output_dim or input_dim, 1))

        self._blocks = [m for m in self.modules() if isinstance(m, ResidualBlock1D)]
        self._film_sizes = [b.film_dim for b in self._blocks]
        # One Linear for every block's FiLM; columns [:step_embed_dim] see the step, the rest the obs.
        self.film = nn.Linear(step_embed_dim + global_cond_dim, sum(self._film_sizes))
        self.min_horizon_multiple = 2 ** (len(down_dims) - 1)

    def obs_film(self, global_cond: torch.Tensor) -> torch.Tensor:
        """Observation part of every block's FiLM, bias included: (B, film_dim)."""
        return F.linear(F.mish(global_cond), self.film.weight[:, self.step_embed_dim :], self.film.bias)

    def step_film(self, k: torch.Tensor) -> torch.Tensor:
        """Diffusion-step part of every block's FiLM: (K,) steps -> (K, film_dim)."""
        emb = F.mish(self.step_encoder(k))
        return F.linear(emb, self.film.weight[:, : self.step_embed_dim])

    def forward(self, x: torch.Tensor, k: torch.Tensor | int, global_cond: torch.Tensor) -> torch.Tensor:
        """x: (B, T, Da) noisy actions, k: (B,) or scalar step, global_cond: (B, cond) -> (B, T, Da)."""
        k = torch.as_tensor(k, device=x.device)
        k = k.expand(x.shape[0]) if k.dim() == 0 else k
        return self.denoise(x, self.obs_film(global_cond) + self.step_film(k))

    def denoise(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        """x: (B, T, Da), film: (B, film_dim) = obs_film + step_film -> (B, T, Da)."""
        T = x.shape[1]
        if T % self.min_horizon_multiple:
            raise ValueError(f"horizon {T} must be divisible by {self.min_horizon_multiple} for this U-Net depth.")
        films = iter(film.split(self._film_sizes, dim=1))
        h = x.transpose(1, 2)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, next(films)), next(films))
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, next(films))
        for res1, res2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = res2(res1(h, next(films)), next(films))
            h = up(h)
        return self.final(h).transpose(1, 2)
