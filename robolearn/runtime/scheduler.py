"""Action scheduling: which action of which chunk runs at each tick.

Two schedulers:

``ActionScheduler`` keys actions by the tick they are due at (the synchronous ``PolicySource``): it hands
out the one for the current tick and drops (and counts) those whose tick has passed; newest chunk wins.

``ChunkScheduler`` accounts by what was executed (asynchronous inference). Rules:

- Execution indices count the actions executed in the episode: 0, 1, 2, ... (a hold executes nothing).
- A chunk computed from the observation taken when ``mark`` actions had executed is placed at ``mark``:
  ``chunk[i]`` is for execution index ``mark + i``. On arrival, the ``n_executed - mark`` actions already
  executed meanwhile are skipped by count, so no action is ever executed twice or skipped unexecuted.
- The delay ``d`` a request is conditioned on is chosen *before* inference: ``DelayEstimator`` (a windowed
  high percentile of recent latencies in ticks, warm-up excluded), capped at the actions queued (no more
  can execute meanwhile). When the real delay exceeds it, the excess is skipped and counted.
- A chunk is usable for its first ``horizon`` actions; one that arrives after all of them were overtaken
  is dropped and counted, as is one older than a chunk already merged.
- An empty queue returns None: the caller holds (#7's hold) and it is counted.
- Chunks join through a ``ChunkJoiner``: ``NaiveJoin`` (switch to the new chunk), ``EnsembleJoin`` (ACT's
  temporal ensembling, w_i = exp(-m * i), i = 0 the oldest prediction) or ``RTCJoin`` (switch; requests
  carry the frozen prefix ``ChunkPrefix`` so an inpainting policy makes the switch seamless).

Example::

    sched = ActionScheduler()
    sched.add_chunk(10, actions)      # actions[i] is for tick 10 + i
    sched.pop(12)                     # -> actions[2]; actions[0], actions[1] dropped as stale
    sched.n_stale                     # 2

    sched = ChunkScheduler(NaiveJoin(), replan_every=4, horizon=8)
    backend = SimulatedLatencyBackend(policy, delay=3, clock=clock)
    for _ in range(100):
        tick = clock.wait_next_tick()
        planned = sched.step(backend, obs, tick)   # poll + merge, maybe submit, then pop
        action = hold if planned is None else planned.action
    sched.stats()                     # {"executed": ..., "holds": ..., "dropped_late": ..., ...}
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robolearn.runtime.backends import ChunkPrefix, ChunkRequest, ChunkResult, InferenceBackend

__all__ = [
    "ActionScheduler",
    "ChunkJoiner",
    "ChunkScheduler",
    "DelayEstimator",
    "EnsembleJoin",
    "NaiveJoin",
    "PlannedAction",
    "RTCJoin",
]


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


class DelayEstimator:
    """The delay d to condition the next request on: a high percentile of recent latencies, in ticks.

    Args:
        window: how many recent latencies count.
        quantile: the percentile taken (0.95: d covers 19 of 20 recent requests).
        warmup: first latencies of the episode ignored (compilation, caches: #4223's 0.7 s first call).
        initial: the estimate before any latency counts.
    """

    def __init__(self, window: int = 32, quantile: float = 0.95, warmup: int = 1, initial: int = 0) -> None:
        if window < 1 or not 0.0 < quantile <= 1.0 or warmup < 0 or initial < 0:
            raise ValueError(f"DelayEstimator: need window >= 1, 0 < quantile <= 1, warmup >= 0, initial >= 0; "
                             f"got {window}, {quantile}, {warmup}, {initial}")
        self.window, self.quantile, self.warmup, self.initial = window, quantile, warmup, initial
        self._latencies: deque[int] = deque(maxlen=window)
        self._seen = 0

    def add(self, latency_ticks: int) -> None:
        """Record one request's latency (ticks from its observation to its merge)."""
        self._seen += 1
        if self._seen > self.warmup:
            self._latencies.append(int(latency_ticks))

    def estimate(self) -> int:
        if not self._latencies:
            return self.initial
        ordered = sorted(self._latencies)
        return ordered[max(0, math.ceil(self.quantile * len(ordered)) - 1)]

    def reset(self) -> None:
        self._latencies.clear()
        self._seen = 0


@dataclass(slots=True)
class PlannedAction:
    """An action queued for one execution index, tagged with the chunk that planned it."""

    action: np.ndarray
    """(Da,)"""
    index: int
    """Execution index it is planned for."""
    seq: int
    """Request number of the (newest) chunk that planned it."""
    offset: int
    """Its index in that chunk: ``index - mark``."""
    result: ChunkResult | None = None
    """That chunk's result (timing stamps)."""
    weight: float = 1.0
    """Sum of the ensembling weights averaged into ``action``."""
    n: int = 1
    """Predictions averaged into ``action``."""


class ChunkJoiner(Protocol):
    """How an arriving chunk joins the queue."""

    name: str
    needs_prefix: bool
    """True when requests must carry the frozen prefix (inpainting policies)."""

    def join(self, queued: list[PlannedAction], new: list[PlannedAction]) -> list[PlannedAction]:
        """The queue to execute; ``queued`` and ``new`` both start at the next execution index."""


class NaiveJoin:
    """Switch to the new chunk at once."""

    name = "naive"
    needs_prefix = False

    def join(self, queued, new):
        return new


class RTCJoin(NaiveJoin):
    """Switch to the new chunk; requests carry the frozen prefix, which the policy inpaints (RTC), so the new
    chunk starts where the old plan was going."""

    name = "rtc"
    needs_prefix = True


class EnsembleJoin:
    """ACT's temporal ensembling: each index averages every chunk's prediction for it with weights
    ``exp(-m * i)``, ``i = 0`` the oldest (m = 0.01, ACT's default, weighs old and new nearly alike)."""

    name = "ensemble"
    needs_prefix = False

    def __init__(self, m: float = 0.01) -> None:
        self.m = float(m)

    def join(self, queued, new):
        out = []
        for i, p in enumerate(new):
            if i < len(queued):
                old = queued[i]
                w = math.exp(-self.m * old.n)
                total = old.weight + w
                p.action = (old.action * old.weight + p.action * w) / total
                p.weight, p.n = total, old.n + 1
            out.append(p)
        return out


class ChunkScheduler:
    """Delay accounting by what was executed (module doc).

    Args:
        joiner: how chunks join (``NaiveJoin``, ``EnsembleJoin``, ``RTCJoin``).
        replan_every: s, the actions executed between requests (a request also goes out when the queue
            holds no more than the delay estimate, so it would run dry before the answer came).
        horizon: actions of each chunk that may execute (e.g. DP's Ta); None: the whole chunk.
        delay: the delay estimator (default ``DelayEstimator()``).
        max_in_flight: requests that may be outstanding at once.
    """

    def __init__(self, joiner: ChunkJoiner | None = None, *, replan_every: int = 1, horizon: int | None = None,
                 delay: DelayEstimator | None = None, max_in_flight: int = 1) -> None:
        if replan_every < 1 or (horizon is not None and horizon < 1) or max_in_flight < 1:
            raise ValueError(f"ChunkScheduler: replan_every, horizon and max_in_flight must be >= 1; got "
                             f"{replan_every}, {horizon}, {max_in_flight}")
        self.joiner = joiner if joiner is not None else NaiveJoin()
        self.replan_every = int(replan_every)
        self.horizon = horizon
        self.delay = delay if delay is not None else DelayEstimator()
        self.max_in_flight = int(max_in_flight)
        self._queue: deque[PlannedAction] = deque()
        self._next_seq = 0
        self.reset()

    def reset(self) -> None:
        """Start an episode: empty queue, counters at zero; results of earlier requests will be dropped."""
        self._queue.clear()
        self.delay.reset()
        self._seq_start = self._next_seq  # request numbers keep growing across episodes
        self._newest_merged = -1
        self._last_request_mark: int | None = None
        self._request_ticks: dict[int, int] = {}
        self.last: PlannedAction | None = None
        """The last action executed."""
        self.n_executed = 0
        """Actions executed: the execution index of the next one."""
        self.n_requests = self.n_merged = self.n_holds = 0
        self.n_dropped_late = self.n_dropped_superseded = self.n_dropped_stale = 0
        self.n_skipped = 0
        """Actions of arriving chunks skipped because they were already executed (from earlier chunks)."""
        self.n_excess_chunks = self.n_excess_actions = 0
        """Chunks whose real delay exceeded the estimate they were conditioned on, and the actions beyond it."""

    def restart(self) -> None:
        """Plan afresh from the next observation, mid-episode (a person hands control back after a takeover):
        every planned action and every request in flight is dropped -- their results are counted as
        ``dropped_stale`` when they arrive -- so nothing planned from before is executed. The counters, the
        execution index and the delay estimate are kept."""
        self._queue.clear()
        self._seq_start = self._next_seq
        self._newest_merged = -1
        self._last_request_mark = None
        self._request_ticks.clear()
        self.last = None

    @property
    def in_flight(self) -> int:
        return len(self._request_ticks)

    def queued(self) -> int:
        """Actions planned from the next execution index on."""
        return len(self._queue)

    def wants_request(self) -> bool:
        """True when a request should go out now (see ``replan_every``)."""
        if self.in_flight >= self.max_in_flight:
            return False
        if self._last_request_mark is None:
            return True
        return (self.n_executed - self._last_request_mark >= self.replan_every
                or len(self._queue) <= self.delay.estimate())

    def request(self, obs: Mapping[str, np.ndarray], tick: int) -> ChunkRequest:
        """A request for the observation taken at ``tick``, with its mark, delay and (RTC) prefix."""
        d = min(self.delay.estimate(), len(self._queue))
        prefix = None
        if self.joiner.needs_prefix:
            hold = None if self.last is None else self.last.action
            da = 0 if hold is None else len(hold)
            actions = np.stack([p.action for p in self._queue]) if self._queue else np.zeros((0, da), np.float32)
            prefix = ChunkPrefix(actions, d, self.replan_every, hold)
        seq = self._next_seq
        self._next_seq += 1
        self._request_ticks[seq] = int(tick)
        self._last_request_mark = self.n_executed
        self.n_requests += 1
        return ChunkRequest(obs, int(tick), self.n_executed, seq, d, prefix)

    def merge(self, result: ChunkResult, tick: int) -> str:
        """Join an arriving chunk at ``tick``; returns "merged", "late", "superseded" or "stale"."""
        req = result.request
        sent_at = self._request_ticks.pop(req.seq, None)
        if sent_at is None or req.seq < self._seq_start:
            self.n_dropped_stale += 1  # from an earlier episode, or never requested here
            return "stale"
        self.delay.add(int(tick) - sent_at)
        if req.seq < self._newest_merged:
            self.n_dropped_superseded += 1
            return "superseded"
        skip = self.n_executed - req.mark
        usable = len(result.chunk) if self.horizon is None else min(self.horizon, len(result.chunk))
        if skip >= usable:
            self.n_dropped_late += 1
            return "late"
        if skip > req.delay:
            self.n_excess_chunks += 1
            self.n_excess_actions += skip - req.delay
        self.n_skipped += skip
        chunk = result.chunk
        new = [PlannedAction(chunk[i], req.mark + i, req.seq, i, result) for i in range(skip, usable)]
        self._queue = deque(self.joiner.join(list(self._queue), new))
        self._newest_merged = req.seq
        self.n_merged += 1
        return "merged"

    def pop(self) -> PlannedAction | None:
        """The action to execute now, or None (the caller holds; counted)."""
        if not self._queue:
            self.n_holds += 1
            return None
        planned = self._queue.popleft()
        if planned.index != self.n_executed:
            raise AssertionError(f"ChunkScheduler: planned index {planned.index} != next execution index "
                                 f"{self.n_executed} (a joiner broke the queue's order)")
        self.n_executed += 1
        self.last = planned
        return planned

    def step(self, backend: InferenceBackend, obs: Mapping[str, np.ndarray] | Any, tick: int
             ) -> PlannedAction | None:
        """One tick: merge what ``backend`` delivered, submit a request if due (and merge at once what a
        synchronous backend answered: zero delay), then ``pop``."""
        for result in backend.poll():
            self.merge(result, tick)
        if self.wants_request():
            backend.submit(self.request(obs, tick))
            for result in backend.poll():
                self.merge(result, tick)
        return self.pop()

    def stats(self) -> dict[str, int]:
        return {"executed": self.n_executed, "holds": self.n_holds, "requests": self.n_requests,
                "merged": self.n_merged, "skipped_executed": self.n_skipped, "excess_chunks": self.n_excess_chunks,
                "excess_actions": self.n_excess_actions, "dropped_late": self.n_dropped_late,
                "dropped_superseded": self.n_dropped_superseded, "dropped_stale": self.n_dropped_stale,
                "delay_estimate": self.delay.estimate()}

    def __repr__(self) -> str:
        return (f"ChunkScheduler({self.joiner.name}, next={self.n_executed}, queued={len(self._queue)}, "
                f"in_flight={self.in_flight})")
