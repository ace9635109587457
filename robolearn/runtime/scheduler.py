"""Timestamped action chunks.

A policy predicts a chunk of actions ``(T, Da)`` from the observation at some tick; each action is
meant for one specific tick. The scheduler keeps them keyed by tick, hands out the one for the
current tick, and drops (and counts) those whose tick has already passed, so a late chunk never
replays stale commands. When chunks overlap, the newest one wins.

Example::

    sched = ActionScheduler()
    sched.add_chunk(10, actions)      # actions[i] is for tick 10 + i
    sched.pop(12)                     # -> actions[2]; actions[0], actions[1] dropped as stale
    sched.n_stale                     # 2
"""

from __future__ import annotations

import numpy as np

__all__ = ["ActionScheduler"]


class ActionScheduler:
    """Actions keyed by the tick they are due at."""

    def __init__(self) -> None:
        self._actions: dict[int, np.ndarray] = {}
        self.n_stale = 0
        """Actions dropped because their tick had passed when they were popped."""
        self.n_overwritten = 0
        """Actions replaced by a newer chunk before their tick came."""

    def add_chunk(self, start_tick: int, actions: np.ndarray) -> None:
        """Schedule ``actions[i]`` (shape ``(T, Da)``) at tick ``start_tick + i``; newest wins."""
        actions = np.asarray(actions)
        if actions.ndim != 2:
            raise ValueError(
                f"ActionScheduler.add_chunk: expected actions of shape (T, Da), got {actions.shape}"
            )
        for i, action in enumerate(actions):
            tick = int(start_tick) + i
            if tick in self._actions:
                self.n_overwritten += 1
            self._actions[tick] = action

    def pop(self, tick: int) -> np.ndarray | None:
        """The action due at ``tick`` (or None); entries before ``tick`` are dropped as stale."""
        stale = [t for t in self._actions if t < tick]
        for t in stale:
            del self._actions[t]
        self.n_stale += len(stale)
        return self._actions.pop(tick, None)

    def remaining(self, tick: int) -> int:
        """How many actions are scheduled at ``tick`` or later."""
        return sum(1 for t in self._actions if t >= tick)

    def clear(self) -> None:
        """Forget every scheduled action and reset the counters."""
        self._actions.clear()
        self.n_stale = 0
        self.n_overwritten = 0

    def __len__(self) -> int:
        return len(self._actions)

    def __repr__(self) -> str:
        ticks = sorted(self._actions)
        span = f"{ticks[0]}..{ticks[-1]}" if ticks else "empty"
        return f"ActionScheduler({span}, n_stale={self.n_stale})"
