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

from collections import deque
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from robolearn.errors import InvalidValueError
from robolearn.runtime.predictor import ChunkPredictor
from robolearn.runtime.scheduler import ActionScheduler

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
    once it is ready). A tick with no action available (after missed ticks) returns None: the loop sends the
    env's hold (the last target sent; never a repeated delta) and counts it.

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
        self.policy = policy
        self.predictor = ChunkPredictor(policy, device, task, owner="PolicySource")
        self.device = self.predictor.device
        self.n_obs_steps = self.predictor.n_obs_steps
        self.n_action_steps = self.predictor.n_action_steps
        self.input_keys = self.predictor.input_keys
        if not 0 <= int(latency_ticks) < self.n_action_steps:
            raise InvalidValueError(
                f"PolicySource: latency_ticks must be in [0, n_action_steps={self.n_action_steps}), "
                f"got {latency_ticks}"
            )
        self.latency_ticks = int(latency_ticks)
        self.scheduler = ActionScheduler()
        # Chunks computed but not yet delivered: (available_at_tick, start_tick, actions (Ta, Da)).
        self._in_flight: deque[tuple[int, int, np.ndarray]] = deque()
        self._started = False  # the first chunk of the episode was delivered
        self.n_holds = 0
        """Ticks where no scheduled action was available (the loop held)."""

    @property
    def n_chunks(self) -> int:
        """predict_action_chunk calls since reset()."""
        return self.predictor.n_chunks

    @property
    def n_stale(self) -> int:
        """Actions dropped because they arrived after their tick."""
        return self.scheduler.n_stale

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset()
        self.predictor.reset(seed)
        self.scheduler.clear()
        self._in_flight.clear()
        self._started = False
        self.n_holds = 0

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        self._observe(obs)
        self._deliver(tick)
        if not self._in_flight and self.scheduler.remaining(tick) <= self.latency_ticks:
            actions = self._predict()
            # The first chunk of an episode is awaited; later ones arrive L ticks late.
            available = tick if not self._started else tick + self.latency_ticks
            self._started = True
            self._in_flight.append((available, tick, actions))
            self._deliver(tick)
        action = self.scheduler.pop(tick)
        if action is None:
            self.n_holds += 1  # None: the loop sends the env's hold
        return action

    def _observe(self, obs: dict[str, np.ndarray]) -> None:
        self.predictor.observe(obs)

    def _deliver(self, tick: int) -> None:
        while self._in_flight and self._in_flight[0][0] <= tick:
            _, start, actions = self._in_flight.popleft()
            self.scheduler.add_chunk(start, actions)

    def _predict(self) -> np.ndarray:
        return self.predictor.predict()[: self.n_action_steps]  # (Ta, Da)
