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

import inspect
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from robolearn.errors import InvalidValueError
from robolearn.runtime.backends import ChunkRequest
from robolearn.spaces import TASK_EMBEDDING

__all__ = ["ChunkPolicyAdapter"]


class ChunkPolicyAdapter:
    """``request -> (T, Da)`` float32 for a `robolearn.policies.Policy` (module doc).

    Args:
        policy: the policy (eval mode, as `robolearn.policies.load` returns it).
        device: torch device of the batch.
        task: the instruction (required for a language-conditioned policy).
        max_guidance: RTC's beta, the clip on the guidance weight.
    """

    def __init__(self, policy: Any, device: str | torch.device = "cpu", task: str | None = None,
                 max_guidance: float | None = None) -> None:
        from robolearn.policies.rtc import DEFAULT_MAX_GUIDANCE

        self.policy = policy
        self.device = torch.device(device)
        self.input_keys = list(policy.input_keys)
        self.n_obs_steps = int(policy.config.n_obs_steps)
        self.n_action_steps = int(policy.config.n_action_steps)
        self.horizon = int(policy.config.horizon)
        self.supports_inpainting = bool(policy.supports_inpainting)
        self.max_guidance = DEFAULT_MAX_GUIDANCE if max_guidance is None else float(max_guidance)
        self._embedding: torch.Tensor | None = None
        if policy.uses_language:
            if not task:
                raise InvalidValueError("this policy is language-conditioned; the env gives no task_description "
                                        "to condition it on")
            from robolearn.policies.language import default_embedder

            self._embedding = torch.from_numpy(default_embedder().embed([task])).to(self.device)
        params = inspect.signature(policy.predict_action_chunk).parameters
        self._generator = torch.Generator(device=self.device) if "generator" in params else None
        self._lock = threading.Lock()  # reset (loop thread) never races a chunk (inference thread)
        self.n_chunks = 0
        self.n_guided = 0
        """Chunks sampled with an RTC prefix."""

    def reset(self, seed: int | None = None) -> None:
        with self._lock:
            self.policy.reset()
            if seed is not None:
                if self._generator is not None:
                    self._generator.manual_seed(seed)
                else:
                    torch.manual_seed(seed)
            self.n_chunks = self.n_guided = 0

    def batch(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """``{key: (1, To, ...)}`` from a request's ``{key: (To, ...)}``."""
        out = {}
        for key in self.input_keys:
            x = np.asarray(obs[key])
            if x.ndim == 0 or x.shape[0] != self.n_obs_steps:
                raise ValueError(f"ChunkPolicyAdapter: request obs {key!r} has shape {x.shape}; expected the "
                                 f"{self.n_obs_steps} last observations stacked on axis 0")
            t = torch.from_numpy(np.ascontiguousarray(x))[None]
            out[key] = (t if x.dtype == np.uint8 else t.to(torch.float32)).to(self.device)
        if self._embedding is not None:
            out[TASK_EMBEDDING] = self._embedding
        return out

    def __call__(self, request: ChunkRequest) -> np.ndarray:
        kwargs: dict[str, Any] = {}
        inpaint = None
        if request.prefix is not None:
            if not self.supports_inpainting:
                raise InvalidValueError(f"Real-Time Chunking needs a flow or diffusion policy; "
                                        f"{type(self.policy).__name__} cannot inpaint a prefix")
            from robolearn.policies.rtc import Inpainting

            p = request.prefix
            inpaint = Inpainting.from_plan(p.actions, p.d, p.s, self.horizon, p.hold, self.max_guidance)
            if inpaint is not None:
                kwargs["inpaint"] = inpaint.to(torch.empty(0, device=self.device))
        with self._lock:
            batch = self.batch(request.obs)
            if self._generator is not None:
                kwargs["generator"] = self._generator
            # Guidance differentiates through the denoiser: no inference_mode tensors then.
            with torch.no_grad() if inpaint is not None else torch.inference_mode():
                chunk = self.policy.predict_action_chunk(batch, **kwargs)
            self.n_chunks += 1
            self.n_guided += int(inpaint is not None)
        chunk = chunk.detach().to("cpu", torch.float32).numpy()
        if chunk.ndim != 3 or chunk.shape[0] != 1 or chunk.shape[1] == 0:
            raise ValueError(f"ChunkPolicyAdapter: predict_action_chunk must return (1, T, Da), got {chunk.shape}")
        return chunk[0]
