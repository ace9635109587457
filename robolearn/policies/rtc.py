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

The clip and the step size. A step of flow time ``dtau`` moves the clean prediction by ``w * dtau`` of the
residual (low-noise Jacobian), so ``w <= 1 / dtau`` is what keeps a step from overshooting; the paper's beta = 5
is exactly that bound for its 5 flow steps (LeRobot recommends 10 for 10-step policies: the same rule). A
fixed beta on finer steps switches guidance nearly off: DDIM-10's last step sits at tau ~ 0.975 with
``dtau ~ 0.025``, where beta = 5 corrects only 1/8 of the residual, and the planned prefix was followed to
0.017 (median, env units) instead of flow's 0.009. The clip on a step is therefore ``max(beta, 1 / dtau)``
(`guidance_weight`'s ``dtau``; both policies pass their step): beta where steps are coarse, the step's own
bound where they are fine. On planar-catch at D = 4 (400 episodes, the same DDIM weights) the prefix is then
followed to 0.0004, the seam ratio falls from 2.61 to 1.82 at the same success (0.985 vs 0.99); flow with 4
steps is unchanged (1 / dtau = 4 < 5).

Cost. The VJP is a backward pass through the denoiser, about one more forward: guiding every step that way
(``vjp_steps=None``) doubles a chunk (+101..115% on CPU, benchmarks/results/rtc_overhead.json). By default
(``DEFAULT_VJP_STEPS = 0``) the Jacobian ``d A1_hat / d A_tau = I + (1 - tau) dv/dA_tau`` is taken as its
low-noise limit, the identity (the VJP through the output layer only, ``v`` held fixed): the correction
becomes ``w(tau) * W * (Y - A1_hat)``, one forward per step and nothing more. On a briefly trained flow
(4 steps) and diffusion policy (DDIM-10) (the benchmark's quality part, with the step-bound clip) it
followed the frozen prefix more closely than the full VJP (mean error 0.035 / 0.002 vs 0.22 / 0.073, unguided
0.33 / 0.47), with seam jumps p50 1.1 / 0.55 vs 1.4 / 1.2 and p90 1.7 / 1.0 vs 4.1 / 2.7 median steps, at ~0
cost (-1..+5% CPU per chunk vs +98..193% over two runs); ``vjp_steps=k`` differentiates the first ``k`` steps
only (k = 1: +12..46%).

The prefix ``Y`` is always real planned actions (the scheduler's queue: `robolearn.runtime.ChunkPrefix`), in
env units; the policy normalizes it. Never zeros: normalized zeros decode to the dataset mean (LeRobot #4454).

Training-time RTC (Black, Ren, Equi, Levine 2025; the policies' ``rtc_training_max_delay``): the policy is
trained with simulated delays instead. Each training sample draws ``d ~ U{0..d_max}``; its first ``d``
actions enter the denoiser clean (flow time 1 / every noise level), a per-position flag (an extra input
channel, `flag_frozen`) tells the denoiser which positions are frozen, and the loss covers the rest only
(`sample_frozen`). At inference the same ``inpaint=`` fixes the first ``Inpainting.n_frozen`` actions to the
prefix exactly (`freeze`) and generates the rest conditioned on them: no guidance, no backward pass. A policy
says which variant it runs in ``Policy.rtc_variant``.

Example::

    inpaint = Inpainting.from_plan(planned, d=2, s=4, horizon=16)          # planned: (P, Da) env units
    chunk = policy.predict_action_chunk(obs, generator=g, inpaint=inpaint)  # (1, 16, Da)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DEFAULT_MAX_GUIDANCE", "DEFAULT_VJP_STEPS", "Inpainting", "check_guidance", "flag_frozen", "flow_time",
           "freeze", "frozen_mask", "guidance_weight", "guided_epsilon", "guided_velocity", "hard_prefix",
           "parse_vjp_steps", "prefix_weights", "sample_frozen"]

DEFAULT_MAX_GUIDANCE = 5.0
"""beta: the RTC paper's Kinetix setting for 5 flow steps (LeRobot recommends 10 for 10-step policies); a finer
step may go up to ``1 / dtau`` (module doc, "The clip and the step size")."""

DEFAULT_VJP_STEPS: int | None = 0
"""Denoising steps guided through the denoiser's VJP before the low-noise Jacobian takes over (`Inpainting`):
none by default (module doc, "Cost"); None guides every step through the VJP, as the paper does."""


def check_guidance(max_guidance: float | None, vjp_steps: int | None) -> None:
    """Refuse guidance settings `Inpainting` cannot use, in one sentence naming the flag (`robolearn deploy` and
    `robolearn serve` share them): ``max_guidance`` a finite number > 0 or None (the default), ``vjp_steps`` an
    integer >= 0 or None (every step)."""
    from robolearn.errors import InvalidValueError

    if max_guidance is not None and (isinstance(max_guidance, bool) or not isinstance(max_guidance, (int, float))
                                     or not math.isfinite(max_guidance) or max_guidance <= 0):
        raise InvalidValueError(f"--max-guidance {max_guidance!r} is not accepted; use a finite number > 0 (the "
                                f"clip on RTC's guidance weight, default {DEFAULT_MAX_GUIDANCE})")
    if vjp_steps is not None and (isinstance(vjp_steps, bool) or not isinstance(vjp_steps, int) or vjp_steps < 0):
        raise InvalidValueError(f"--rtc-vjp-steps {vjp_steps!r} is not accepted; use an integer >= 0 (denoising "
                                "steps guided through the denoiser's VJP) or 'all'")


def parse_vjp_steps(text: str) -> int | None:
    """``--rtc-vjp-steps`` as `Inpainting.vjp_steps`: ``"all"`` -> None, ``"2"`` -> 2; a one-sentence error
    otherwise."""
    value = str(text).strip().lower()
    if value == "all":
        return None
    try:
        steps = int(value)
    except ValueError:
        steps = text  # not a number: refused below with the value as given
    check_guidance(None, steps)
    return steps


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
    """beta, the clip on the guidance weight (raised to ``1 / dtau`` on finer steps: `guidance_weight`)."""
    vjp_steps: int | None = DEFAULT_VJP_STEPS
    """How many leading denoising steps differentiate the denoiser (a backward pass, about the cost of one
    more forward); the later steps take its low-noise Jacobian, at no extra cost (module doc). None: every
    step (the paper's guidance)."""

    def uses_vjp(self, step: int) -> bool:
        """Whether denoising step ``step`` (0 first) differentiates the denoiser."""
        return self.vjp_steps is None or step < self.vjp_steps

    @classmethod
    def from_plan(cls, planned: np.ndarray, d: int, s: int, horizon: int, hold: np.ndarray | None = None,
                  max_guidance: float = DEFAULT_MAX_GUIDANCE, vjp_steps: int | None = DEFAULT_VJP_STEPS
                  ) -> Inpainting | None:
        """From the ``(P, Da)`` actions planned from the request's mark on: weights up to ``min(T - s, P)``
        (none on what is not planned), the prefix filled past ``P`` with the last planned action (or
        ``hold``; those indices weigh 0). None when nothing is planned: sample unguided."""
        planned = np.asarray(planned, dtype=np.float32)
        end = min(horizon - int(s), len(planned))
        if end <= 0:
            return None
        fill = planned[-1] if hold is None else np.asarray(hold, np.float32)
        prefix = np.concatenate([planned[:horizon], np.repeat(fill[None], max(0, horizon - len(planned)), 0)])
        return cls(torch.from_numpy(prefix)[None], prefix_weights(d, end, horizon), float(max_guidance), vjp_steps)

    def to(self, like: torch.Tensor) -> Inpainting:
        return dataclasses.replace(self, prefix=self.prefix.to(like), weights=self.weights.to(like))

    @property
    def n_frozen(self) -> int:
        """d: the leading indices of weight 1, which execute while the chunk is computed (the soft region
        after them weighs < 1)."""
        below = torch.nonzero(self.weights < 1.0)
        return int(below[0, 0]) if len(below) else int(self.weights.numel())


def frozen_mask(d: torch.Tensor, horizon: int) -> torch.Tensor:
    """(B, T) bool, True at indices ``i < d[b]`` for the (B,) frozen counts ``d``."""
    return torch.arange(horizon, device=d.device)[None] < d[:, None]


def sample_frozen(batch_size: int, horizon: int, max_delay: int, device: torch.device | str) -> torch.Tensor:
    """Training-time RTC's simulated delays: (B, T) bool, the first ``d ~ U{0..max_delay}`` indices of each
    sample frozen (drawn from torch's global generator, like the training noise)."""
    d = torch.randint(0, int(max_delay) + 1, (batch_size,), device=device)
    return frozen_mask(d, horizon)


def flag_frozen(x: torch.Tensor, frozen: torch.Tensor) -> torch.Tensor:
    """The denoiser input of a prefix-trained policy: (B, T, Da) and (B, T) bool -> (B, T, Da + 1), the last
    channel 1 where the position is frozen."""
    return torch.cat([x, frozen[..., None].to(x.dtype)], dim=-1)


def freeze(x: torch.Tensor, clean: torch.Tensor, frozen: torch.Tensor) -> torch.Tensor:
    """``x`` with the frozen positions set to ``clean`` ((B, T, Da), ``clean`` may have batch 1; ``frozen``
    (B, T) bool)."""
    return torch.where(frozen[..., None], clean, x)


def hard_prefix(inpaint: Inpainting | None, x: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-time RTC at inference, for the chunk ``x`` (B, T, Da) being sampled: the (B, T) frozen mask
    (the first ``inpaint.n_frozen`` indices; none without a prefix) and the normalized prefix to fix there."""
    B, T, _ = x.shape
    d = 0 if inpaint is None else inpaint.n_frozen
    frozen = frozen_mask(torch.full((B,), d, device=x.device), T)
    return frozen, (x if inpaint is None else normalize(inpaint.prefix.to(x)))


def guidance_weight(tau: float, max_guidance: float, dtau: float | None = None) -> float:
    """``min(clip, (1 - tau) / tau * (tau^2 + (1 - tau)^2) / (1 - tau)^2)`` for flow time ``tau`` in [0, 1)
    (0 = noise), ``clip`` at ``tau = 0``; ``clip = max(beta, 1 / dtau)`` for a step of flow time ``dtau``
    (module doc), ``beta`` without one."""
    clip = float(max_guidance) if dtau is None or dtau <= 0.0 else max(float(max_guidance), 1.0 / dtau)
    if tau <= 0.0:
        return clip
    inv_r2 = (tau * tau + (1.0 - tau) ** 2) / (1.0 - tau) ** 2
    return float(min(clip, (1.0 - tau) / tau * inv_r2))


def flow_time(alpha_bar: float) -> float:
    """The flow time of a variance-preserving sample ``sqrt(a) x0 + sqrt(1 - a) eps`` (`guided_epsilon`); 1 at
    ``a = 1`` (clean)."""
    sa, s1a = math.sqrt(alpha_bar), math.sqrt(max(1.0 - alpha_bar, 0.0))
    return sa / (sa + s1a)


def _correction(x: torch.Tensor, clean_of: callable, target: torch.Tensor, weights: torch.Tensor,
                low_noise_jacobian: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(denoiser output, VJP of the clean prediction with W * (target - clean)) at ``x``, where
    ``clean_of(x) -> (clean, output)``. One forward pass either way: with ``low_noise_jacobian`` the Jacobian
    is taken as that scalar times the identity (no backward pass), else the forward records the graph that
    the backward pass reuses."""
    if low_noise_jacobian is not None:
        clean, out = clean_of(x)
        return out, (target - clean) * weights[None, :, None] * low_noise_jacobian
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        clean, out = clean_of(x)
        err = (target - clean) * weights[None, :, None]
        (vjp,) = torch.autograd.grad(clean, x, grad_outputs=err.detach())
    return out.detach(), vjp.detach()


def guided_velocity(velocity: callable, x: torch.Tensor, tau: float, target: torch.Tensor,
                    inpaint: Inpainting, step: int = 0, dtau: float | None = None) -> torch.Tensor:
    """The RTC-corrected flow velocity at ``x`` (normalized units), flow time ``tau``, denoising step
    ``step`` (0 first) of flow time ``dtau`` (the weight's clip: `guidance_weight`); ``target`` is the
    normalized prefix (B, T, Da). Past ``inpaint.vjp_steps`` the Jacobian of ``x + (1 - tau) v`` is taken as its
    low-noise limit, the identity (module doc)."""

    def clean_of(x_):
        v = velocity(x_)
        return x_ + (1.0 - tau) * v, v

    v, vjp = _correction(x, clean_of, target, inpaint.weights, None if inpaint.uses_vjp(step) else 1.0)
    return v + guidance_weight(tau, inpaint.max_guidance, dtau) * vjp


def guided_epsilon(model: callable, x: torch.Tensor, alpha_bar: float, target: torch.Tensor, inpaint: Inpainting,
                   prediction_type: str = "epsilon", step: int = 0, next_alpha_bar: float | None = None
                   ) -> torch.Tensor:
    """The RTC-corrected model output of a DDPM-trained denoiser at ``x = sqrt(a) x0 + sqrt(1 - a) eps``,
    denoising step ``step`` (0 first), which goes to ``next_alpha_bar`` (its flow-time step clips the weight:
    `guidance_weight`).

    The variance-preserving sample is a rescaled flow sample at ``tau = sqrt(a) / (sqrt(a) + sqrt(1 - a))``;
    moving the velocity by ``w g_flow`` moves the clean prediction by ``(1 - tau) w g_flow =
    sqrt(1 - a) w g`` (g the VJP in x's own scale), i.e. ``eps`` by ``-sqrt(a) w g``. Past
    ``inpaint.vjp_steps`` the Jacobian of the clean prediction is the flow's low-noise one (the identity in
    flow units), ``I / (sqrt(a) + sqrt(1 - a))`` in x's: the same move of the clean prediction as the flow's."""
    sa, s1a = math.sqrt(alpha_bar), math.sqrt(max(1.0 - alpha_bar, 0.0))
    tau = flow_time(alpha_bar)
    dtau = None if next_alpha_bar is None else flow_time(next_alpha_bar) - tau

    def clean_of(x_):
        out = model(x_)
        clean = out if prediction_type == "sample" else (x_ - s1a * out) / sa
        return clean, out

    out, vjp = _correction(x, clean_of, target, inpaint.weights,
                          None if inpaint.uses_vjp(step) else 1.0 / (sa + s1a))
    w = guidance_weight(tau, inpaint.max_guidance, dtau)
    return out + s1a * w * vjp if prediction_type == "sample" else out - sa * w * vjp
