"""The deploy loop: a chunking policy runs in a backend while the `ControlLoop` ticks, in sim or on a robot.

One ``ControlLoop`` (the same one that records and evaluates) with a ``ChunkedSource`` and a ``SafetyFilter``:

    tick = clock.wait_next_tick()
    source.act(obs, tick):   history.add(obs)                         # the To last observations, every tick
                             merge what the backend delivered         # never waits for it
                             submit a request if due                  # stamped with its tick and mark
                             planned = scheduler.pop()                # None: nothing to execute
                             watchdog.feed() / watchdog.check()
    loop: safety.filter(planned) or safety.hold()  ->  env.step(sent)  # every action, holds counted

Inference never runs inside a tick except with the ``InlineBackend`` (synchronous inference, on purpose).
``action`` (sent) and ``action_commanded`` are in each ``StepRecord``; so is ``timing``: per executed action,
on one clock, the stages (``TIMING_STAGES``) of the chunk that planned it -- when its observation was
captured, requested, inference start and end, delivery -- and when the action was applied; NaN for a stage
that did not happen (a hold has only ``applied``).

Clocks: in virtual time (``VirtualClock`` + ``SimulatedLatencyBackend``) every stamp is tick time (s since
the episode start), the observation taken after the step at tick k counts as captured at tick k + 1, and a
run is reproducible per seed. In real time (``RealClock``) stamps are ``time.monotonic()`` seconds.

Example::

    policy = ChunkPolicyAdapter(load("runs/reach"))               # request -> (T, Da)
    clock = VirtualClock(env.unwrapped.control_hz)
    deploy = DeployLoop(env, policy, clock, lambda: SimulatedLatencyBackend(policy, 2, clock),
                        ChunkScheduler(NaiveJoin(), replan_every=8), SafetyFilter.for_env(env, config))
    result = deploy.run_episode(seed=0)      # DeployResult: episode, scheduler/safety/watchdog counters, latency
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from robolearn.runtime.backends import ChunkRequest, InferenceBackend
from robolearn.runtime.clock import Clock, VirtualClock
from robolearn.runtime.hold import hold_action
from robolearn.runtime.loop import ControlLoop, EpisodeResult, StepRecord
from robolearn.runtime.predictor import ObservationHistory
from robolearn.runtime.safety import SafetyFilter
from robolearn.runtime.scheduler import ChunkScheduler
from robolearn.runtime.takeover import Takeover, TakeoverSource
from robolearn.runtime.watchdog import Watchdog

__all__ = ["TIMING_STAGES", "ChunkedSource", "DeployLoop", "DeployPolicy", "DeployResult", "clock_ns", "latency_summary"]

TIMING_STAGES = ("obs_capture", "request", "inference_start", "inference_end", "delivery", "applied")
"""The per-action stages recorded as ``timing/<stage>`` (seconds on the loop's clock)."""

_NS = 1_000_000_000


def clock_ns(clock: Clock) -> Callable[[], int]:
    """The loop's time in integer ns, for the watchdog and the backends' stamps: the current tick's time
    for a ``VirtualClock`` (what ``SimulatedLatencyBackend`` stamps), ``time.monotonic_ns`` otherwise."""
    if isinstance(clock, VirtualClock):
        period_ns = round(clock.period * _NS)
        return lambda: max(clock.tick, 0) * period_ns
    return time.monotonic_ns


class DeployPolicy(Protocol):
    """What the deploy loop needs from a policy: a ``ChunkPolicy`` plus what its requests must hold."""

    input_keys: list[str]
    """Observation keys the policy reads."""
    n_obs_steps: int
    """To: observations stacked into each request (``request.obs[key]``: (To, ...))."""

    def reset(self, seed: int | None = None) -> None:
        """Start an episode (seeds the sampling noise)."""

    def __call__(self, request: ChunkRequest) -> np.ndarray:
        """(T, Da) actions for ``request``."""


class ChunkedSource:
    """The ``ActionSource`` of the deploy loop: history, scheduler, backend and watchdog (module doc).

    ``time_ns`` is the loop's clock in integer ns; the backend must stamp on the same clock.
    """

    def __init__(self, policy: DeployPolicy, scheduler: ChunkScheduler, backend: Callable[[], InferenceBackend],
                 watchdog: Watchdog, time_ns: Callable[[], int]) -> None:
        self.policy, self.scheduler, self.make_backend, self.watchdog = policy, scheduler, backend, watchdog
        self.time_ns = time_ns
        self.history = ObservationHistory(policy.input_keys, policy.n_obs_steps, owner="deploy")
        self.backend: InferenceBackend | None = None
        self._captured: dict[int, int] = {}  # tick -> capture time of the observation taken at that tick
        self.capture_ns: int | None = None
        """When the observation the next ``act`` sees was captured (set by the loop after each step; None:
        the reset observation, stamped at the first tick)."""
        self.timing: dict[str, float] = {}
        """Stages of the last ``act`` (seconds), for the StepRecord."""
        self.latencies_ns: list[int] = []
        """Per executed action: applied minus the capture time of the observation it was computed from."""
        self.chunks: dict[int, Any] = {}
        """seq -> ChunkResult of every chunk an executed action came from."""

    def reset(self, seed: int | None = None) -> None:
        self.close()
        self.policy.reset(seed)
        self.scheduler.reset()
        self.history.clear()
        self._captured.clear()
        self.latencies_ns, self.chunks, self.timing = [], {}, {}
        self.capture_ns = None
        self.backend = self.make_backend()  # fresh per episode: nothing of the last one can arrive

    def act(self, obs: Mapping[str, np.ndarray], tick: int) -> np.ndarray | None:
        self.history.add(obs)
        if self.capture_ns is None:  # first tick: the clock runs from here (virtual time restarts at 0)
            self.capture_ns = self.time_ns()
            self.watchdog.start()
        self._captured[tick] = self.capture_ns
        planned = self.scheduler.step(self.backend, _LazyStack(self.history), tick)
        if planned is not None:
            self.watchdog.feed()
        else:
            self.watchdog.check()  # counts a trip once the queue has been empty N periods
        applied = self.time_ns()
        if planned is None:
            self.timing = {"applied": applied / _NS}
            return None
        r = planned.result
        captured = self._captured.get(r.request.tick, applied)
        self.chunks[r.request.seq] = r
        self.latencies_ns.append(applied - captured)
        self.timing = {"obs_capture": captured / _NS, "request": r.t_request / _NS,
                       "inference_start": r.t_infer_start / _NS, "inference_end": r.t_infer_end / _NS,
                       "delivery": r.t_delivered / _NS, "applied": applied / _NS}
        for old in [t for t in self._captured if t < tick - 4096]:  # bounded: no request is older
            del self._captured[old]
        return planned.action

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


class _LazyStack(Mapping):
    """``request.obs``: the stacked history, built only when a request goes out."""

    def __init__(self, history: ObservationHistory) -> None:
        self._history, self._stacked = history, None

    def _get(self) -> dict[str, np.ndarray]:
        if self._stacked is None:
            self._stacked = self._history.stacked()
        return self._stacked

    def __getitem__(self, key):
        return self._get()[key]

    def __iter__(self):
        return iter(self._history.input_keys)

    def __len__(self):
        return len(self._history.input_keys)


@dataclass
class DeployResult:
    """One deployed episode."""

    episode: EpisodeResult
    scheduler: dict[str, int]
    """``ChunkScheduler.stats()``: executed, holds, merged, skipped_executed, excess_*, dropped_*, ..."""
    safety: dict[str, float]
    """``SafetyFilter.stats()``: calls, holds, clipped_<rule>."""
    watchdog: dict[str, float]
    """``Watchdog.stats()``: trips, reaction times."""
    latency_ms: dict[str, float] = field(default_factory=dict)
    """p50/p99 of observation-to-action latency (per executed action) and of the stages (per chunk)."""
    takeover: dict[str, Any] = field(default_factory=dict)
    """``TakeoverSource.stats()`` when a person could take over (takeovers, intervention_steps, ...); else {}."""

    def to_json(self) -> dict[str, Any]:
        e = self.episode
        return {"seed": e.seed, "success": bool(e.success), "steps": e.steps, "reward": e.total_reward,
                "holds": e.holds, "missed_ticks": e.missed_ticks, "duration_s": e.duration_s,
                "scheduler": self.scheduler, "safety": self.safety, "watchdog": self.watchdog,
                "latency_ms": self.latency_ms, "clock": e.clock_stats,
                **({"takeover": self.takeover} if self.takeover else {})}


def _percentiles(name: str, values_ns: list[int] | np.ndarray) -> dict[str, float]:
    if len(values_ns) == 0:
        return {}
    v = np.asarray(values_ns, dtype=np.float64) / 1e6
    return {f"{name}_p50": float(np.percentile(v, 50)), f"{name}_p99": float(np.percentile(v, 99))}


def latency_summary(latencies_ns: list[int], chunks: Mapping[int, Any]) -> dict[str, float]:
    """p50/p99 in ms: observation-to-action per executed action; queue wait (request to inference start),
    inference and delivery wait (inference end to delivery) per chunk that was executed from."""
    rs = list(chunks.values())
    return {**_percentiles("obs_to_action", latencies_ns),
            **_percentiles("queue", [r.t_infer_start - r.t_request for r in rs]),
            **_percentiles("inference", [r.t_infer_end - r.t_infer_start for r in rs]),
            **_percentiles("delivery", [r.t_delivered - r.t_infer_end for r in rs])}


class DeployLoop:
    """A ``ControlLoop`` whose source is a chunking policy behind a backend (module doc).

    Args:
        env: the env (sim or ``RobotEnv``).
        policy: request -> (T, Da), with its history needs (``DeployPolicy``).
        clock: ``VirtualClock`` (pair it with ``SimulatedLatencyBackend`` or ``InlineBackend``) or ``RealClock``.
        backend: makes the episode's backend (called at each episode start; the last one is closed).
        scheduler: delay accounting and chunk joining.
        safety: the filter every action passes (``SafetyFilter.for_env``).
        watchdog_periods: N, periods without an executed action before the watchdog trips.
        on_step: gets each ``StepRecord`` with its ``timing`` (e.g. ``Recorder.add_step``).
        max_steps: stop an episode after this many steps (None: the env decides).
        stop_when: asked before each tick; True ends the episode there (``ControlLoop``'s ``stop_when``).
        takeover: a person may take over with a teleop device (`robolearn.runtime.takeover`); the ticks they
            drive reach ``on_step`` with ``intervention=True``.
    """

    def __init__(self, env: gym.Env, policy: DeployPolicy, clock: Clock, backend: Callable[[], InferenceBackend],
                 scheduler: ChunkScheduler, safety: SafetyFilter, *, watchdog_periods: int = 3,
                 on_step: Callable[[StepRecord], None] | None = None, max_steps: int | None = None,
                 stop_when: Callable[[], bool] | None = None, takeover: Takeover | None = None) -> None:
        self.clock = clock
        self.virtual = isinstance(clock, VirtualClock)
        self._period_ns = round(clock.period * _NS)
        time_ns = clock_ns(clock)
        self.watchdog = Watchdog(clock.period, watchdog_periods, time_ns=time_ns)
        self.source = ChunkedSource(policy, scheduler, backend, self.watchdog, time_ns)
        self.takeover = None if takeover is None else TakeoverSource(
            self.source, takeover, env.action_space, lambda: hold_action(env), time_ns)
        self.safety = safety
        self.on_step = on_step
        self.loop = ControlLoop(env, self.takeover or self.source, clock, self._stepped, max_steps, safety=safety,
                                stop_when=stop_when)

    def _captured_ns(self) -> int:
        # Virtual: the observation after the step at tick k is the sim's state at tick k + 1.
        return (self.clock.tick + 1) * self._period_ns if self.virtual else time.monotonic_ns()

    def _stepped(self, rec: StepRecord) -> None:
        self.source.capture_ns = self._captured_ns()
        if self.on_step is not None:
            t = self.takeover
            self.on_step(dataclasses.replace(rec, timing=self.source.timing if t is None else t.timing,
                                             intervention=t is not None and t.intervention))

    def run_episode(self, seed: int | None = None) -> DeployResult:
        try:
            episode = self.loop.run_episode(seed)
        finally:
            self.source.close()
        src = self.source
        return DeployResult(episode, src.scheduler.stats(), self.safety.stats(), self.watchdog.stats(),
                            latency_summary(src.latencies_ns, src.chunks),
                            {} if self.takeover is None else self.takeover.stats())

    def close(self) -> None:
        self.source.close()
