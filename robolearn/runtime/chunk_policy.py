"""A trained policy as the deploy loop's chunk function: ``request -> (T, Da)``.

The deploy loop keeps the observation history (every tick's observation, the last ``To`` of them) and puts
the stack into each request, so a request computed at any tick sees consecutive observations however
sparse requests are: ``request.obs[key]`` is ``(To, ...)``. This adapter batches it (``(1, To, ...)``; uint8
images stay uint8, the rest float32, normalization is the policy's own), adds the task embedding of a
language-conditioned policy, samples with a generator seeded per episode, and for Real-Time Chunking passes
the request's frozen prefix to the policy's guided sampling (`robolearn.policies.rtc`): the prefix is the
actions the scheduler really has planned, never padding.

Example::

    chunks = ChunkPolicyAdapter(load("runs/reach"), task=env.unwrapped.task_description)
    chunks.reset(seed=0)
    chunk = chunks(ChunkRequest({"state": np.zeros((2, 6), np.float32)}, tick=0, mark=0))   # (T, Da)
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch

from robolearn.errors import InvalidValueError
from robolearn.runtime.backends import ChunkRequest
from robolearn.runtime.predictor import ChunkPredictor

__all__ = ["ChunkPolicyAdapter"]


class ChunkPolicyAdapter:
    """``request -> (T, Da)`` float32 for a `robolearn.policies.Policy` (module doc); a ``ChunkPredictor``
    whose history is each request's stack.

    Args:
        policy: the policy (eval mode, as `robolearn.policies.load` returns it).
        device: torch device of the batch.
        task: the instruction (required for a language-conditioned policy).
        max_guidance: RTC's beta, the clip on the guidance weight.
        vjp_steps: denoising steps RTC guides through the denoiser's VJP (`Inpainting.vjp_steps`; None: all).
    """

    def __init__(self, policy: Any, device: str | torch.device = "cpu", task: str | None = None,
                 max_guidance: float | None = None, vjp_steps: int | None = 0) -> None:
        from robolearn.policies.rtc import DEFAULT_MAX_GUIDANCE

        self.policy = policy
        self.predictor = ChunkPredictor(policy, device, task, owner="deploy")
        self.input_keys = self.predictor.input_keys
        self.n_obs_steps = self.predictor.n_obs_steps
        self.n_action_steps = self.predictor.n_action_steps
        self.horizon = int(policy.config.horizon)
        self.supports_inpainting = bool(policy.supports_inpainting)
        self.max_guidance = DEFAULT_MAX_GUIDANCE if max_guidance is None else float(max_guidance)
        self.vjp_steps = vjp_steps
        self._lock = threading.Lock()  # reset (loop thread) never races a chunk (inference thread)
        self.n_guided = 0
        """Chunks sampled with an RTC prefix since ``reset``."""

    @property
    def n_chunks(self) -> int:
        return self.predictor.n_chunks

    def reset(self, seed: int | None = None) -> None:
        with self._lock:
            self.policy.reset()
            self.predictor.reset(seed)
            self.n_guided = 0

    def __call__(self, request: ChunkRequest) -> np.ndarray:
        kwargs: dict[str, Any] = {}
        if request.prefix is not None:
            if not self.supports_inpainting:
                raise InvalidValueError(f"Real-Time Chunking needs a flow or diffusion policy; "
                                        f"{type(self.policy).__name__} cannot inpaint a prefix")
            from robolearn.policies.rtc import Inpainting

            p = request.prefix
            inpaint = Inpainting.from_plan(p.actions, p.d, p.s, self.horizon, p.hold, self.max_guidance,
                                           self.vjp_steps)
            if inpaint is not None:
                kwargs["inpaint"] = inpaint
        with self._lock:
            self.predictor.history.replace(request.obs)
            chunk = self.predictor.predict(**kwargs)
            self.n_guided += int("inpaint" in kwargs)
        return chunk
