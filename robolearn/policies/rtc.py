"""Real-Time Chunking (Black, Galliker, Levine 2025): guided inpainting of the frozen prefix, as a sampling
option of the flow and diffusion policies.

While a chunk is computed the robot keeps executing the previous plan, so the first ``d`` actions of the new
chunk are already decided. RTC samples the new chunk so that it agrees with that plan: at every denoising
step the prediction of the clean chunk is pulled toward the planned actions ``Y`` with weights ``W``,

    W_i = 1                                  for i < d             (frozen: executes during inference)
    W_i = c_i (e^{c_i} - 1) / (e - 1)        for d <= i < end       (soft exponential mask)
    W_i = 0                                  for i >= end,     c_i = (end - i) / (end - d + 1),

``end = T - s`` (``s`` the execution horizon), cut to the actions actually planned: weights never point at
padding. The guidance (PiGDM-style) adds to the flow velocity
``min(beta, (1 - tau) / tau * (tau^2 + (1 - tau)^2) / (1 - tau)^2) * VJP(A1_hat; W * (Y - A1_hat))`` with
``A1_hat = A_tau + (1 - tau) v``; ``beta`` (``max_guidance``) clips the weight, which matters with few steps.
The diffusion policy applies the same correction to its clean-sample prediction (`guided_epsilon`).

The prefix ``Y`` is always real planned actions (the scheduler's queue: `robolearn.runtime.ChunkPrefix`), in
env units; the policy normalizes it. Never zeros: normalized zeros decode to the dataset mean (LeRobot #4454).

Example::

    inpaint = Inpainting.from_plan(planned, d=2, s=4, horizon=16)          # planned: (P, Da) env units
    chunk = policy.predict_action_chunk(obs, generator=g, inpaint=inpaint)  # (1, 16, Da)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DEFAULT_MAX_GUIDANCE", "Inpainting", "guidance_weight", "guided_epsilon", "guided_velocity",
           "prefix_weights"]

DEFAULT_MAX_GUIDANCE = 5.0
"""beta: the RTC paper's Kinetix setting for 5 flow steps (LeRobot recommends 10 for 10-step policies)."""


def prefix_weights(d: int, end: int, horizon: int) -> torch.Tensor:
    """(T,) float32 soft exponential mask: 1 before ``d``, decaying to 0 at ``end``, 0 from ``end`` on
    (module doc; the paper's ``get_prefix_weights`` with the "exp" schedule)."""
    end = max(0, min(int(end), horizon))
    d = max(0, min(int(d), end))
    i = torch.arange(horizon, dtype=torch.float32)
    c = ((end - i) / (end - d + 1)).clamp(0.0, 1.0)
    w = torch.where(i < d, torch.ones_like(c), c * torch.expm1(c) / (math.e - 1.0))
    return torch.where(i >= end, torch.zeros_like(w), w)


@dataclass(frozen=True)
class Inpainting:
    """What RTC conditions a chunk on."""

    prefix: torch.Tensor
    """(B, T, Da) env units: ``prefix[:, i]`` is the action planned for index i of the new chunk."""
    weights: torch.Tensor
    """(T,) in [0, 1]: how strongly each index is pulled to the prefix (`prefix_weights`)."""
    max_guidance: float = DEFAULT_MAX_GUIDANCE
    """beta, the clip on the guidance weight."""

    @classmethod
    def from_plan(cls, planned: np.ndarray, d: int, s: int, horizon: int, hold: np.ndarray | None = None,
                  max_guidance: float = DEFAULT_MAX_GUIDANCE) -> Inpainting | None:
        """From the ``(P, Da)`` actions planned from the request's mark on: weights up to ``min(T - s, P)``
        (none on what is not planned), the prefix filled past ``P`` with the last planned action (or
        ``hold``; those indices weigh 0). None when nothing is planned: sample unguided."""
        planned = np.asarray(planned, dtype=np.float32)
        end = min(horizon - int(s), len(planned))
        if end <= 0:
            return None
        fill = planned[-1] if hold is None else np.asarray(hold, np.float32)
        prefix = np.concatenate([planned[:horizon], np.repeat(fill[None], max(0, horizon - len(planned)), 0)])
        return cls(torch.from_numpy(prefix)[None], prefix_weights(d, end, horizon), float(max_guidance))

    def to(self, like: torch.Tensor) -> Inpainting:
        return Inpainting(self.prefix.to(like), self.weights.to(like), self.max_guidance)


def guidance_weight(tau: float, max_guidance: float) -> float:
    """``min(beta, (1 - tau) / tau * (tau^2 + (1 - tau)^2) / (1 - tau)^2)`` for flow time ``tau`` in [0, 1)
    (0 = noise); ``beta`` at ``tau = 0``."""
    if tau <= 0.0:
        return float(max_guidance)
    inv_r2 = (tau * tau + (1.0 - tau) ** 2) / (1.0 - tau) ** 2
    return float(min(max_guidance, (1.0 - tau) / tau * inv_r2))


def _correction(x: torch.Tensor, clean_of: callable, target: torch.Tensor, weights: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean prediction, VJP of it with W * (target - clean)) at ``x``; ``clean_of(x) -> (clean, aux)``."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        clean, aux = clean_of(x)
        err = (target - clean) * weights[None, :, None]
        (vjp,) = torch.autograd.grad(clean, x, grad_outputs=err.detach())
    return aux.detach(), vjp.detach()


def guided_velocity(velocity: callable, x: torch.Tensor, tau: float, target: torch.Tensor,
                    inpaint: Inpainting) -> torch.Tensor:
    """The RTC-corrected flow velocity at ``x`` (normalized units), flow time ``tau``; ``target`` is the
    normalized prefix (B, T, Da)."""

    def clean_of(x_):
        v = velocity(x_)
        return x_ + (1.0 - tau) * v, v

    v, vjp = _correction(x, clean_of, target, inpaint.weights)
    return v + guidance_weight(tau, inpaint.max_guidance) * vjp


def guided_epsilon(model: callable, x: torch.Tensor, alpha_bar: float, target: torch.Tensor, inpaint: Inpainting,
                   prediction_type: str = "epsilon") -> torch.Tensor:
    """The RTC-corrected model output of a DDPM-trained denoiser at ``x = sqrt(a) x0 + sqrt(1 - a) eps``.

    The variance-preserving sample is a rescaled flow sample at ``tau = sqrt(a) / (sqrt(a) + sqrt(1 - a))``;
    moving the velocity by ``w g_flow`` moves the clean prediction by ``(1 - tau) w g_flow =
    sqrt(1 - a) w g`` (g the VJP in x's own scale), i.e. ``eps`` by ``-sqrt(a) w g``."""
    sa, s1a = math.sqrt(alpha_bar), math.sqrt(max(1.0 - alpha_bar, 0.0))
    tau = sa / (sa + s1a)

    def clean_of(x_):
        out = model(x_)
        clean = out if prediction_type == "sample" else (x_ - s1a * out) / sa
        return clean, out

    out, vjp = _correction(x, clean_of, target, inpaint.weights)
    w = guidance_weight(tau, inpaint.max_guidance)
    return out + s1a * w * vjp if prediction_type == "sample" else out - sa * w * vjp
