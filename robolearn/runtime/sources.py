"""Action sources: what decides the action at each tick of the control loop.

The loop asks its source for one action per tick: ``source.act(obs, tick)``. The same loop records
demonstrations (a scripted expert or a teleop device), deploys a policy and evaluates it; only the
source changes.

- ``ExpertSource(expert)`` wraps an object with ``reset()`` and ``act(obs)``, such as a simulator's
  scripted expert (``env.unwrapped.get_expert()``).
- ``PolicySource(policy)`` runs a chunking policy through an ``ActionScheduler``: it keeps the last
  ``To`` observations, predicts a chunk ``(T, Da)`` when the scheduled actions run out, and executes
  the first ``Ta`` of them, one per tick.

Example::

    source = PolicySource(policy, device="cpu", latency_ticks=2)
    source.reset(seed=0)
    action = source.act(obs, tick=0)     # (Da,) float32
"""

from __future__ import annotations

import inspect
from collections import deque
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from robolearn.errors import InvalidValueError
from robolearn.runtime.scheduler import ActionScheduler
from robolearn.spaces import TASK_EMBEDDING

__all__ = ["ActionSource", "ExpertSource", "PolicySource"]


@runtime_checkable
class ActionSource(Protocol):
    """Decides the action for each tick."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (``seed`` makes stochastic sources reproducible)."""

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        """The action ``(Da,)`` to apply at ``tick``, given the observation taken at that tick; None when the
        source has no command this tick (the loop then holds: ``robolearn.runtime.hold_action``)."""


class ExpertSource:
    """Adapts a scripted expert (``reset()``, ``act(obs) -> action``) to ``ActionSource``."""

    def __init__(self, expert: Any) -> None:
        for name in ("reset", "act"):
            if not callable(getattr(expert, name, None)):
                raise TypeError(f"ExpertSource: {type(expert).__name__} has no method {name}()")
        self.expert = expert

    def reset(self, seed: int | None = None) -> None:
        self.expert.reset()

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        action = self.expert.act(obs)
        return None if action is None else np.asarray(action)  # None: no command, the loop holds


class PolicySource:
    """Runs a chunking policy, one action per tick, through an ``ActionScheduler``.

    At each tick the observation joins a history of the last ``To = config.n_obs_steps``
    observations (the first observation of an episode is repeated to fill it). When at most
    ``latency_ticks`` scheduled actions remain, the history is stacked into a batch of one,
    ``{"state": (1, To, Do) float32, "images/<cam>": (1, To, H, W, 3) uint8, ...}`` (the input keys
    of ``config.features``), and ``policy.predict_action_chunk`` returns ``(1, T, Da)``. The first
    ``Ta = config.n_action_steps`` actions are scheduled at ticks ``k .. k + Ta - 1``.

    Latency: with ``latency_ticks = L`` a chunk computed from the observation at tick ``k`` only
    becomes available at tick ``k + L``; its actions for ticks before ``k + L`` are dropped as
    stale, so each chunk executes ``Ta - L`` actions, and the next chunk is requested ``L`` ticks
    before the current one runs out. The first chunk of an episode is awaited (the robot starts
    once it is ready). A tick with no action available (after missed ticks) repeats the last action.

    Sampling noise: if ``predict_action_chunk`` takes a ``generator``, it gets one seeded by
    ``reset(seed)``; otherwise ``reset(seed)`` seeds torch's global generator.

    Args:
        policy: a `robolearn.policies.Policy`, or an object with its acting hooks: ``config``
            (``n_obs_steps``, ``n_action_steps``), ``input_keys`` (the observation keys it consumes),
            ``uses_language``, ``predict_action_chunk(obs[, generator]) -> (B, T, Da)`` and ``reset()``.
        device: torch device the observation batch is moved to.
        latency_ticks: simulated inference latency ``L`` in ticks, ``0 <= L < Ta``.
    """

    def __init__(self, policy: Any, device: str | torch.device = "cpu", latency_ticks: int = 0,
                 task: str | None = None) -> None:
        config = policy.config
        self.policy = policy
        self.device = torch.device(device)
        self.n_obs_steps = int(config.n_obs_steps)
        self.n_action_steps = int(config.n_action_steps)
        # Policies list what they consume (e.g. "state" + images, not "force").
        self.input_keys = list(policy.input_keys)
        if not self.input_keys:
            raise ValueError(f"PolicySource: {type(policy).__name__}.input_keys is empty; the policy must read "
                             "at least one observation key")
        if not 0 <= int(latency_ticks) < self.n_action_steps:
            raise InvalidValueError(
                f"PolicySource: latency_ticks must be in [0, n_action_steps={self.n_action_steps}), "
                f"got {latency_ticks}"
            )
        self.latency_ticks = int(latency_ticks)
        # Language-conditioned policies get the task's embedding with every chunk request.
        self._task_embedding: torch.Tensor | None = None
        if policy.uses_language:
            if not task:
                raise ValueError("PolicySource: this policy is language-conditioned; pass task= (the instruction)")
            from robolearn.policies.language import default_embedder

            # One embedder per process: MiniLM loads once, whatever the number of tasks evaluated.
            self._task_embedding = torch.from_numpy(default_embedder().embed([task])).to(self.device)
        self.scheduler = ActionScheduler()
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=self.n_obs_steps)
        # Chunks computed but not yet delivered: (available_at_tick, start_tick, actions (Ta, Da)).
        self._in_flight: deque[tuple[int, int, np.ndarray]] = deque()
        self._last_action: np.ndarray | None = None
        try:
            params = inspect.signature(policy.predict_action_chunk).parameters
        except (TypeError, ValueError):
            params = {}
        # Seeded per episode in reset(): sampling noise is reproducible without touching the
        # global torch RNG (policies that take no generator get torch.manual_seed instead).
        self._generator = torch.Generator(device=self.device) if "generator" in params else None
        self.n_chunks = 0
        """predict_action_chunk calls since reset()."""
        self.n_holds = 0
        """Ticks where no scheduled action was available and the last one was repeated."""

    @property
    def n_stale(self) -> int:
        """Actions dropped because they arrived after their tick."""
        return self.scheduler.n_stale

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset()
        if seed is not None:
            if self._generator is not None:
                self._generator.manual_seed(seed)
            else:
                torch.manual_seed(seed)
        self.scheduler.clear()
        self._history.clear()
        self._in_flight.clear()
        self._last_action = None
        self.n_chunks = 0
        self.n_holds = 0

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray:
        self._observe(obs)
        self._deliver(tick)
        if not self._in_flight and self.scheduler.remaining(tick) <= self.latency_ticks:
            actions = self._predict()
            # The first chunk of an episode is awaited; later ones arrive L ticks late.
            available = tick if self._last_action is None else tick + self.latency_ticks
            self._in_flight.append((available, tick, actions))
            self._deliver(tick)
        action = self.scheduler.pop(tick)
        if action is None:
            self.n_holds += 1
            if self._last_action is None:  # unreachable: the first chunk is always delivered
                raise RuntimeError("PolicySource: no action available at the first tick")
            action = self._last_action
        self._last_action = action
        return action

    def _observe(self, obs: dict[str, np.ndarray]) -> None:
        missing = [k for k in self.input_keys if k not in obs]
        if missing:
            raise KeyError(
                f"PolicySource: observation lacks {missing} that the policy needs; "
                f"observation keys: {sorted(obs)}"
            )
        # Copy: hardware envs may hand out buffers they overwrite on the next read.
        frame = {k: np.array(obs[k], copy=True) for k in self.input_keys}
        if not self._history:
            self._history.extend([frame] * self.n_obs_steps)
        else:
            self._history.append(frame)

    def _deliver(self, tick: int) -> None:
        while self._in_flight and self._in_flight[0][0] <= tick:
            _, start, actions = self._in_flight.popleft()
            self.scheduler.add_chunk(start, actions)

    def _predict(self) -> np.ndarray:
        batch: dict[str, torch.Tensor] = {}
        for key in self.input_keys:
            stacked = np.stack([frame[key] for frame in self._history])[None]  # (1, To, ...)
            tensor = torch.from_numpy(stacked)
            if stacked.dtype != np.uint8:
                tensor = tensor.to(torch.float32)
            batch[key] = tensor.to(self.device)
        if self._task_embedding is not None:
            batch[TASK_EMBEDDING] = self._task_embedding  # (1, D)
        with torch.inference_mode():
            if self._generator is not None:
                chunk = self.policy.predict_action_chunk(batch, generator=self._generator)
            else:
                chunk = self.policy.predict_action_chunk(batch)
        chunk = chunk.detach().to("cpu", torch.float32).numpy()
        if chunk.ndim != 3 or chunk.shape[0] != 1 or chunk.shape[1] == 0:
            raise ValueError(
                f"PolicySource: predict_action_chunk must return (1, T, Da), got {chunk.shape}"
            )
        self.n_chunks += 1
        return chunk[0, : self.n_action_steps]  # (Ta, Da)
