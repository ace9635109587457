"""Exponential moving average of a policy's weights (diffusion_policy's warm-up schedule)."""

from __future__ import annotations

import copy

import torch


class EMA:
    """`decay = min(max_decay, 1 - (1 + step) ** -power)`; buffers (normalizer) are copied, not averaged."""

    def __init__(self, model: torch.nn.Module, power: float = 0.75, max_decay: float = 0.9999):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power, self.max_decay, self.step = power, max_decay, 0

    def decay(self) -> float:
        return 0.0 if self.step == 0 else min(self.max_decay, 1.0 - (1.0 + self.step) ** -self.power)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.decay()
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.step += 1
