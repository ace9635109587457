"""TransformerForDiffusion: the transformer denoiser of Diffusion Policy (DP-T).

Encoder-decoder, as in Chi et al. (2023) with ``obs_as_cond=True, time_as_cond=True,
n_cond_layers=0``:

- action tokens: ``Linear(Da -> n_emb)`` of the noisy chunk (B, T, Da) + a learned position embedding;
- conditioning tokens (the decoder's memory): the denoising step as one sinusoidal token, then one
  token per observation step from ``Linear(cond_dim -> n_emb)`` of its features (B, To, cond_dim),
  + a learned position embedding, then a per-token MLP (the "encoder" with zero layers);
- ``nn.TransformerDecoder`` (pre-norm, GELU): self-attention over action tokens, causal when
  `causal_attn` (token i sees tokens <= i), cross-attention to every conditioning token.

Unlike diffusion_policy, there is no memory mask: there the chunk starts To-1 steps in the past,
so early action tokens are kept from seeing later observations; here the chunk starts at the
current step t, which comes after every observation step, so every action token may see them all.

Because the conditioning MLP acts per token, the observation tokens' memory is the same for every
denoising step of a chunk: samplers call ``obs_memory(cond)`` once and ``denoise(x, k, memory)``
per step; ``forward(x, k, cond)`` does both.
"""

from __future__ import annotations

import torch
from torch import nn

from robolearn.policies.nets.unet1d import SinusoidalPosEmb


class TransformerForDiffusion(nn.Module):
    """Noise/velocity predictor over action chunks, conditioned on per-step observation features.

    Args:
        input_dim: Da.
        horizon: T, the number of action tokens (the position embedding's length).
        n_obs_steps: To, the number of observation conditioning tokens.
        cond_dim: features per observation step.
        n_layer, n_head, n_emb: decoder depth, attention heads, token width (n_emb % n_head == 0).
        p_drop_emb: dropout on the summed token embeddings.
        p_drop_attn: dropout inside the decoder layers (attention and feed-forward).
        causal_attn: causal self-attention mask over the action tokens.
        output_dim: features out per token; None: input_dim (an input may carry extra features, e.g. the
            frozen-prefix flag of training-time RTC, that are not predicted).

    Shapes: ``forward(x: (B, T, Da), k: (B,) or scalar, cond: (B, To, cond_dim)) -> (B, T, Da)``.
    """

    def __init__(
        self,
        input_dim: int,
        horizon: int,
        n_obs_steps: int,
        cond_dim: int,
        n_layer: int = 4,
        n_head: int = 4,
        n_emb: int = 128,
        p_drop_emb: float = 0.0,
        p_drop_attn: float = 0.1,
        causal_attn: bool = True,
        output_dim: int | None = None,
    ):
        super().__init__()
        if n_emb % n_head:
            raise ValueError(f"n_emb ({n_emb}) must be divisible by n_head ({n_head}).")
        self.horizon, self.n_obs_steps = horizon, n_obs_steps
        self.input_emb = nn.Linear(input_dim, n_emb)
        self.pos_emb = nn.Parameter(torch.zeros(1, horizon, n_emb))
        self.drop = nn.Dropout(p_drop_emb)
        self.time_emb = SinusoidalPosEmb(n_emb)
        self.cond_obs_emb = nn.Linear(cond_dim, n_emb)
        self.cond_pos_emb = nn.Parameter(torch.zeros(1, 1 + n_obs_steps, n_emb))
        self.encoder = nn.Sequential(nn.Linear(n_emb, 4 * n_emb), nn.Mish(), nn.Linear(4 * n_emb, n_emb))
        layer = nn.TransformerDecoderLayer(
            d_model=n_emb, nhead=n_head, dim_feedforward=4 * n_emb, dropout=p_drop_attn,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, num_layers=n_layer)
        if causal_attn:
            # Float mask (0 / -inf) rather than bool: the fast path of nn.MultiheadAttention takes both,
            # and float keeps the same semantics under autocast.
            mask = torch.triu(torch.full((horizon, horizon), float("-inf")), diagonal=1)
            self.register_buffer("mask", mask, persistent=False)
        else:
            self.mask = None
        self.ln_f = nn.LayerNorm(n_emb)
        self.head = nn.Linear(n_emb, output_dim or input_dim)
        self.apply(self._init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.cond_pos_emb, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # diffusion_policy's (GPT-style) init: N(0, 0.02) weights, zero biases, unit LayerNorm.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                if getattr(module, name) is not None:
                    nn.init.normal_(getattr(module, name), std=0.02)
            if module.in_proj_bias is not None:
                nn.init.zeros_(module.in_proj_bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def obs_memory(self, cond: torch.Tensor) -> torch.Tensor:
        """Memory tokens of the observation steps: (B, To, cond_dim) -> (B, To, n_emb)."""
        if cond.dim() != 3 or cond.shape[1] != self.n_obs_steps:
            raise ValueError(f"cond must be (B, {self.n_obs_steps}, cond_dim), got {tuple(cond.shape)}.")
        return self.encoder(self.drop(self.cond_obs_emb(cond) + self.cond_pos_emb[:, 1:]))

    def denoise(self, x: torch.Tensor, k: torch.Tensor | float, memory: torch.Tensor) -> torch.Tensor:
        """x: (B, T, Da), k: (B,) or scalar step, memory: `obs_memory(cond)` -> (B, T, Da)."""
        B, T, _ = x.shape
        if T != self.horizon:
            raise ValueError(f"action chunk has {T} steps, but this transformer was built for horizon {self.horizon}.")
        k = torch.as_tensor(k, device=x.device)
        k = k.expand(B) if k.dim() == 0 else k
        time_token = self.encoder(self.drop(self.time_emb(k)[:, None] + self.cond_pos_emb[:, :1]))  # (B, 1, E)
        memory = torch.cat([time_token, memory.expand(B, -1, -1)], dim=1)
        h = self.drop(self.input_emb(x) + self.pos_emb)
        h = self.decoder(h, memory, tgt_mask=self.mask, tgt_is_causal=self.mask is not None)
        return self.head(self.ln_f(h))

    def forward(self, x: torch.Tensor, k: torch.Tensor | float, cond: torch.Tensor) -> torch.Tensor:
        return self.denoise(x, k, self.obs_memory(cond))
