"""A torch policy as a chunk function: observation history, batching and seeded sampling, in one place.

Every path that runs a policy on live observations goes through here: ``PolicySource`` (inference inside
the tick, eval), the inference backends (``ChunkPredictor`` is a ``ChunkPolicy``: ``request -> (T, Da)``)
and the policy server (one ``ChunkPredictor`` per client, so each robot has its own history and noise).

- ``ObservationHistory(input_keys, To)``: the last ``To`` observations of the keys a policy reads (the
  first observation of an episode fills the window), stacked into a batch of one:
  ``{"state": (1, To, Do) float32, "images/<cam>": (1, To, H, W, 3) uint8, ...}``. Normalisation is the
  policy's own (its ``Normalizer`` runs inside ``predict_action_chunk``), so values go in in env units.
- ``ChunkPredictor(policy, device, task)``: observes ``request.obs`` and returns the policy's chunk
  ``(T, Da)`` float32 for it, ``chunk[0]`` for the request's tick.

Example::

    predictor = ChunkPredictor(policy, device="cpu")
    predictor.reset(seed=0)
    chunk = predictor(ChunkRequest(obs, tick=0, mark=0))   # (T, Da) float32
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from robolearn.spaces import TASK_EMBEDDING

__all__ = ["ChunkPredictor", "ObservationHistory"]


class ObservationHistory:
    """The last ``n_obs_steps`` observations of ``input_keys``, as a batch of one.

    ``add`` copies the arrays (hardware envs may hand out buffers they overwrite on the next read) and
    raises a KeyError naming the keys an observation lacks.
    """

    def __init__(self, input_keys: list[str], n_obs_steps: int, owner: str = "policy") -> None:
        self.input_keys = list(input_keys)
        self.n_obs_steps = int(n_obs_steps)
        self._owner = owner
        self._frames: deque[dict[str, np.ndarray]] = deque(maxlen=self.n_obs_steps)

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        self._frames.clear()

    def add(self, obs: Mapping[str, Any]) -> None:
        missing = [k for k in self.input_keys if k not in obs]
        if missing:
            raise KeyError(f"{self._owner}: observation lacks {missing} that the policy needs; "
                           f"observation keys: {sorted(obs)}")
        frame = {k: np.array(obs[k], copy=True) for k in self.input_keys}
        if not self._frames:
            self._frames.extend([frame] * self.n_obs_steps)
        else:
            self._frames.append(frame)

    def replace(self, stacked: Mapping[str, Any]) -> None:
        """Take the window from ``{key: (To, ...)}`` (a deploy request's ``obs``: the loop keeps the history)."""
        missing = [k for k in self.input_keys if k not in stacked]
        if missing:
            raise KeyError(f"{self._owner}: the request lacks {missing} that the policy needs; it has {sorted(stacked)}")
        arrays = {k: np.asarray(stacked[k]) for k in self.input_keys}
        for k, v in arrays.items():
            if v.ndim == 0 or v.shape[0] != self.n_obs_steps:
                raise ValueError(f"{self._owner}: request obs {k!r} has shape {v.shape}; expected the "
                                 f"{self.n_obs_steps} last observations stacked on axis 0")
        self._frames.clear()
        self._frames.extend({k: v[i] for k, v in arrays.items()} for i in range(self.n_obs_steps))

    def stacked(self) -> dict[str, np.ndarray]:
        """``{key: (To, ...)}``: what a deploy request carries (``ChunkRequest.obs``)."""
        if not self._frames:
            raise RuntimeError(f"{self._owner}: no observation yet; add() one before asking for a batch")
        return {key: np.stack([frame[key] for frame in self._frames]) for key in self.input_keys}

    def batch(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """``{key: (1, To, ...)}``: uint8 images stay uint8 (the policy scales them), the rest float32."""
        out: dict[str, torch.Tensor] = {}
        for key, stacked in self.stacked().items():
            tensor = torch.from_numpy(stacked[None])  # (1, To, ...)
            out[key] = (tensor if stacked.dtype == np.uint8 else tensor.to(torch.float32)).to(device)
        return out


class ChunkPredictor:
    """Runs ``policy.predict_action_chunk`` on the history of the observations it was handed.

    Sampling noise: if ``predict_action_chunk`` takes a ``generator``, it gets one seeded by
    ``reset(seed)``; otherwise ``reset(seed)`` seeds torch's global generator. ``reset`` does not call
    ``policy.reset()``: the policy object may be shared (the server holds one per process, a predictor per
    client), so its owner resets it.

    Args:
        policy: a `robolearn.policies.Policy`, or an object with its acting hooks: ``config``
            (``n_obs_steps``, ``n_action_steps``), ``input_keys``, ``uses_language`` and
            ``predict_action_chunk(obs[, generator]) -> (B, T, Da)``.
        device: torch device the observation batch is moved to.
        task: the instruction, required for a language-conditioned policy.
        owner: name used in error messages.
    """

    def __init__(self, policy: Any, device: str | torch.device = "cpu", task: str | None = None,
                 owner: str = "ChunkPredictor") -> None:
        config = policy.config
        self.policy = policy
        self.device = torch.device(device)
        self.owner = owner
        self.n_obs_steps = int(config.n_obs_steps)
        self.n_action_steps = int(config.n_action_steps)
        self.input_keys = list(policy.input_keys)
        if not self.input_keys:
            raise ValueError(f"{owner}: {type(policy).__name__}.input_keys is empty; the policy must read "
                             "at least one observation key")
        self.history = ObservationHistory(self.input_keys, self.n_obs_steps, owner)
        # Language-conditioned policies get the task's embedding with every chunk request.
        self._task_embedding: torch.Tensor | None = None
        if policy.uses_language:
            if not task:
                raise ValueError(f"{owner}: this policy is language-conditioned; pass task= (the instruction)")
            from robolearn.language import default_embedder

            # One embedder per process: MiniLM loads once, whatever the number of tasks evaluated.
            self._task_embedding = torch.from_numpy(default_embedder().embed([task])).to(self.device)
        try:
            params = inspect.signature(policy.predict_action_chunk).parameters
        except (TypeError, ValueError):
            params = {}
        # Seeded per episode in reset(): sampling noise is reproducible without touching the
        # global torch RNG (policies that take no generator get torch.manual_seed instead).
        self._generator = torch.Generator(device=self.device) if "generator" in params else None
        self.n_chunks = 0
        """predict_action_chunk calls since reset()."""

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            if self._generator is not None:
                self._generator.manual_seed(seed)
            else:
                torch.manual_seed(seed)
        self.history.clear()
        self.n_chunks = 0

    def observe(self, obs: Mapping[str, Any]) -> None:
        self.history.add(obs)

    def predict(self, **kwargs: Any) -> np.ndarray:
        """The chunk ``(T, Da)`` float32 for the newest observation; ``kwargs`` go to ``predict_action_chunk``
        (e.g. ``inpaint=``). Under ``no_grad``, never ``inference_mode``: Real-Time Chunking's guidance
        differentiates through the denoiser, and a policy compiled for inference (``compile_for_inference``,
        under ``no_grad``) would see inference tensors fail its guards and recompile, without frozen weights."""
        batch = self.history.batch(self.device)
        if self._task_embedding is not None:
            batch[TASK_EMBEDDING] = self._task_embedding  # (1, D)
        if self._generator is not None:
            kwargs["generator"] = self._generator
        with torch.no_grad():
            chunk = self.policy.predict_action_chunk(batch, **kwargs)
        chunk = chunk.detach().to("cpu", torch.float32).numpy()
        if chunk.ndim != 3 or chunk.shape[0] != 1 or chunk.shape[1] == 0:
            raise ValueError(f"{self.owner}: predict_action_chunk must return (1, T, Da), got {chunk.shape}")
        self.n_chunks += 1
        return chunk[0]

    def __call__(self, request: Any) -> np.ndarray:
        """``ChunkPolicy``: observe ``request.obs`` (the observation at ``request.tick``), return its chunk."""
        self.observe(request.obs)
        return self.predict()
