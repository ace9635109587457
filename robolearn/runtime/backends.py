"""Inference backends: where a chunking policy runs, so that inference never runs inside a control tick.

The loop hands a backend a ``ChunkRequest`` (an observation stamped with its tick and with the number of
actions executed before it, plus the delay estimate and, for Real-Time Chunking, the frozen prefix) and
later polls it for ``ChunkResult``s. ``submit`` and ``poll`` return at once (except ``InlineBackend``,
which is synchronous on purpose): a slow or stalled policy never delays a tick. Every result carries its
timing on one monotonic clock, in integer nanoseconds: request, inference start, inference end, delivery
(the ``poll`` that handed it out).

- ``InlineBackend(policy)``: runs the policy inside ``submit`` (synchronous evaluation).
- ``ThreadBackend(policy)``: a worker thread runs the policy; requests are served in order.
- ``SimulatedLatencyBackend(policy, delay, clock)``: virtual time, the RTC paper's protocol: the policy runs
  inside ``submit`` (the simulation is paused meanwhile) and its result is delivered exactly ``D`` ticks
  after the request's tick, ``D`` an int or a function of the request (scripted latency, reproducible per
  seed).

A policy here is anything callable as ``policy(request) -> (T, Da)`` array (``ChunkPolicy``); adapting a
torch ``Policy`` (observation history, batching, the RTC guidance) lives with the policies. Requests and
results hold only arrays, ints and strings, so they map one to one onto a message (``wire.infer_body``): the
process backend (``process_backend.ProcessBackend``, the policy in a child process on its own cores) and the
ZeroMQ server's client (``server.ServerBackend``) implement the same ``submit``/``poll``/``close``.

Example::

    backend = ThreadBackend(policy)                      # policy(request) -> (T, Da)
    backend.submit(ChunkRequest(obs, tick=12, mark=10))
    ...                                                  # the loop keeps ticking
    for result in backend.poll():                        # [] until the chunk is ready
        scheduler.merge(result, tick)
    backend.close()
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "ChunkPolicy",
    "ChunkPrefix",
    "ChunkRequest",
    "ChunkResult",
    "InferenceBackend",
    "InlineBackend",
    "SimulatedLatencyBackend",
    "ThreadBackend",
]


@dataclass(frozen=True, slots=True)
class ChunkPrefix:
    """What a chunk joiner hands an inpainting policy (Real-Time Chunking): the frozen prefix.

    ``actions[i]`` is the action planned for execution index ``mark + i`` by the chunks already received:
    real planned actions, never padding. The first ``d`` of them will run while this inference does, so
    RTC freezes them (weight 1) and blends softly up to ``len(chunk) - s``.
    """

    actions: np.ndarray
    """(P, Da) actions planned from the request's mark on (P may be 0, e.g. from standstill)."""
    d: int
    """Delay estimate in executed actions, <= P: the prefix that executes during inference."""
    s: int
    """Execution horizon: actions executed from each chunk before the next request (the paper's s)."""
    hold: np.ndarray | None
    """(Da,) the last executed action (what the robot holds when the plan runs out); None before any."""

    def padded(self, length: int) -> np.ndarray:
        """``(length, Da)``: the prefix cut or extended with the hold action (never zeros, which would
        decode to the dataset mean)."""
        n = len(self.actions)
        if n >= length:
            return self.actions[:length]
        fill = self.hold if self.hold is not None else (self.actions[-1] if n else None)
        if fill is None:
            raise ValueError("ChunkPrefix.padded: no planned or executed action yet; run the policy unguided (d = 0)")
        pad = np.repeat(np.asarray(fill)[None], length - n, axis=0)
        return np.concatenate([self.actions, pad]) if n else pad


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    """One observation to compute a chunk from."""

    obs: Mapping[str, np.ndarray]
    """The policy's input (e.g. the stacked ``To`` last observations)."""
    tick: int
    """Tick at which ``obs`` was taken."""
    mark: int
    """Actions executed before ``obs`` was taken: ``chunk[i]`` is for execution index ``mark + i``."""
    seq: int = 0
    """Request number in the episode (results are matched and ordered by it)."""
    delay: int = 0
    """Delay estimate d (actions that will execute during inference), chosen before inference."""
    prefix: ChunkPrefix | None = None
    """The frozen prefix, for joiners that inpaint (RTC); None otherwise."""


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """A chunk computed for a request, with its timing on one monotonic clock (ns)."""

    request: ChunkRequest
    chunk: np.ndarray
    """(T, Da) actions; ``chunk[i]`` is for execution index ``request.mark + i``."""
    t_request: int
    t_infer_start: int
    t_infer_end: int
    t_delivered: int

    @property
    def inference_s(self) -> float:
        return (self.t_infer_end - self.t_infer_start) / 1e9

    @property
    def latency_s(self) -> float:
        """Request to delivery."""
        return (self.t_delivered - self.t_request) / 1e9


@runtime_checkable
class ChunkPolicy(Protocol):
    def __call__(self, request: ChunkRequest) -> np.ndarray:
        """The chunk ``(T, Da)`` for ``request``."""


@runtime_checkable
class InferenceBackend(Protocol):
    """Where chunks are computed; the loop only submits and polls."""

    def submit(self, request: ChunkRequest) -> None:
        """Queue ``request``; returns at once (InlineBackend: after computing it)."""

    def poll(self) -> list[ChunkResult]:
        """Results ready since the last poll, in request order; never blocks."""

    @property
    def pending(self) -> int:
        """Requests submitted and not yet returned by ``poll``."""

    def close(self) -> None:
        """Stop serving; idempotent."""


def _checked(chunk: Any, request: ChunkRequest) -> np.ndarray:
    chunk = np.asarray(chunk)
    if chunk.ndim != 2 or chunk.shape[0] == 0:
        raise ValueError(f"inference backend: the policy returned shape {chunk.shape} for request {request.seq}; "
                         "expected a chunk of shape (T, Da) with T >= 1")
    return chunk


def delivered(done: list[tuple[ChunkRequest, np.ndarray, int, int, int]], now: int) -> list[ChunkResult]:
    """``ChunkResult``s for finished ``(request, chunk, t_request, t_infer_start, t_infer_end)``, delivered at
    ``now``, in request order; empties ``done``."""
    out = [ChunkResult(r, c, a, b, e, now) for r, c, a, b, e in done]
    done.clear()
    out.sort(key=lambda res: res.request.seq)
    return out


class InlineBackend:
    """Synchronous: ``submit`` runs the policy; the next ``poll`` returns the result."""

    def __init__(self, policy: ChunkPolicy, *, time_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.policy = policy
        self._time_ns = time_ns
        self._ready: list[tuple[ChunkRequest, np.ndarray, int, int, int]] = []

    def submit(self, request: ChunkRequest) -> None:
        t_request = t_start = self._time_ns()
        chunk = _checked(self.policy(request), request)
        self._ready.append((request, chunk, t_request, t_start, self._time_ns()))

    def poll(self) -> list[ChunkResult]:
        if not self._ready:
            return []
        now = self._time_ns()
        out = [ChunkResult(r, c, a, b, e, now) for r, c, a, b, e in self._ready]
        self._ready.clear()
        return out

    @property
    def pending(self) -> int:
        return len(self._ready)

    def close(self) -> None:
        self._ready.clear()


class ThreadBackend:
    """A worker thread runs the policy on each request in turn; ``poll`` collects what it finished.

    A policy exception stops the worker and is raised (as a RuntimeError naming the request) by the next
    ``poll``, so the caller can hold and report it. ``cpus`` pins the worker thread (Linux) to those cores,
    away from the control loop's.
    """

    def __init__(self, policy: ChunkPolicy, *, time_ns: Callable[[], int] = time.monotonic_ns,
                 cpus: set[int] | None = None, name: str = "robolearn-inference") -> None:
        self.policy = policy
        self._time_ns = time_ns
        self._cpus = cpus
        self._cond = threading.Condition()
        self._requests: deque[tuple[ChunkRequest, int]] = deque()
        self._done: deque[tuple[ChunkRequest, np.ndarray, int, int, int]] = deque()
        self._error: BaseException | None = None
        self._failed: str | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: ChunkRequest) -> None:
        with self._cond:
            if self._failed is not None:
                raise RuntimeError(f"ThreadBackend: the worker stopped: {self._failed}")
            if self._closed:
                raise RuntimeError("ThreadBackend: submit after close()")
            self._requests.append((request, self._time_ns()))
            self._cond.notify()

    def poll(self) -> list[ChunkResult]:
        with self._cond:
            if self._error is not None:
                err, self._error = self._error, None
                raise RuntimeError(f"ThreadBackend: {self._failed}") from err
            if not self._done:
                return []
            done = list(self._done)
            self._done.clear()
        now = self._time_ns()
        return [ChunkResult(r, c, a, b, e, now) for r, c, a, b, e in done]

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._requests) + len(self._done) + int(self._busy)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the request it is computing (queued ones are dropped)."""
        with self._cond:
            self._closed = True
            self._requests.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> ThreadBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        if self._cpus:
            os.sched_setaffinity(threading.get_native_id(), self._cpus)
        while True:
            with self._cond:
                while not self._requests and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                request, t_request = self._requests.popleft()
                self._busy = True
            t_start = self._time_ns()
            try:
                chunk = _checked(self.policy(request), request)
            except BaseException as e:  # noqa: BLE001  (handed to the loop's thread by poll)
                with self._cond:
                    self._error, self._busy = e, False
                    self._failed = f"the policy raised on request {request.seq}: {e!r}"
                    self._requests.clear()
                return
            t_end = self._time_ns()
            with self._cond:
                self._done.append((request, chunk, t_request, t_start, t_end))
                self._busy = False


class SimulatedLatencyBackend:
    """Virtual time: a request made at tick ``k`` is delivered by the first ``poll`` at tick >= ``k + D``.

    The policy runs inside ``submit`` (the simulation waits, as in the RTC paper's protocol), so results
    depend on the seed only. Timestamps are virtual: tick * period.

    Args:
        policy: computes the chunk.
        delay: D in ticks (>= 0), or a function of the request giving each one's D (scripted latency).
        clock: the loop's clock; its ``tick`` (last tick returned) and ``period`` are read.
    """

    def __init__(self, policy: ChunkPolicy, delay: int | Callable[[ChunkRequest], int], clock: Any) -> None:
        if isinstance(delay, int) and delay < 0:
            raise ValueError(f"SimulatedLatencyBackend: delay must be >= 0 ticks, got {delay}")
        self.policy = policy
        self.delay = delay
        self.clock = clock
        self._period_ns = round(clock.period * 1e9)
        self._waiting: list[tuple[int, int, ChunkRequest, np.ndarray]] = []  # (due tick, seq, request, chunk)

    def submit(self, request: ChunkRequest) -> None:
        d = self.delay if isinstance(self.delay, int) else int(self.delay(request))
        if d < 0:
            raise ValueError(f"SimulatedLatencyBackend: the delay function gave {d} ticks for request "
                             f"{request.seq}; expected >= 0")
        chunk = _checked(self.policy(request), request)
        self._waiting.append((request.tick + d, request.seq, request, chunk))

    def poll(self) -> list[ChunkResult]:
        now = self.clock.tick
        due = sorted((w for w in self._waiting if w[0] <= now), key=lambda w: (w[0], w[1]))
        if not due:
            return []
        self._waiting = [w for w in self._waiting if w[0] > now]
        p = self._period_ns
        return [ChunkResult(r, c, r.tick * p, r.tick * p, t * p, now * p) for t, _, r, c in due]

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        self._waiting.clear()
