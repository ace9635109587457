"""Inference backends with a scripted-latency fake policy (no torch): submit/poll never block (except Inline),
timing stamps on one monotonic clock, errors surface at poll, and a real-time run through a worker thread
keeps ticking while the policy is slow (warm-up spike, stalls -> holds counted, contiguous execution)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from robolearn.runtime import RealClock, VirtualClock
from robolearn.runtime.backends import (
    ChunkRequest,
    InferenceBackend,
    InlineBackend,
    SimulatedLatencyBackend,
    ThreadBackend,
)
from robolearn.runtime.scheduler import ChunkScheduler, DelayEstimator, NaiveJoin

T, DA = 8, 2


def tag_chunk(request: ChunkRequest) -> np.ndarray:
    return np.stack([np.full(T, request.seq, np.float32), np.arange(T, dtype=np.float32)], 1)


class SleepyPolicy:
    """Sleeps a scripted time per request (seconds by request number), then returns the tagged chunk."""

    def __init__(self, latency_s) -> None:
        self.latency_s = latency_s
        self.calls = 0

    def __call__(self, request):
        self.calls += 1
        time.sleep(self.latency_s(request.seq))
        return tag_chunk(request)


def poll_until(backend, timeout_s: float = 5.0) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = backend.poll()
        if got:
            return got
        time.sleep(0.001)
    raise AssertionError(f"no result within {timeout_s} s")


def test_backends_satisfy_the_protocol():
    clock = VirtualClock(10)
    for backend in (InlineBackend(tag_chunk), SimulatedLatencyBackend(tag_chunk, 1, clock)):
        assert isinstance(backend, InferenceBackend)
    with ThreadBackend(tag_chunk) as tb:
        assert isinstance(tb, InferenceBackend)


def test_inline_backend_is_synchronous_with_ordered_stamps():
    backend = InlineBackend(tag_chunk)
    assert backend.poll() == []
    backend.submit(ChunkRequest({}, tick=3, mark=2, seq=5))
    assert backend.pending == 1
    (result,) = backend.poll()
    assert result.request.seq == 5 and result.chunk[:, 0].tolist() == [5] * T
    assert result.t_request <= result.t_infer_start <= result.t_infer_end <= result.t_delivered
    assert backend.poll() == [] and backend.pending == 0


def test_thread_backend_submit_and_poll_never_wait_for_the_policy():
    release = threading.Event()

    def blocked(request):
        assert release.wait(5.0)
        return tag_chunk(request)

    with ThreadBackend(blocked) as backend:
        t0 = time.monotonic()
        backend.submit(ChunkRequest({}, tick=0, mark=0, seq=0))
        backend.submit(ChunkRequest({}, tick=1, mark=1, seq=1))
        assert backend.poll() == [] and backend.pending == 2
        assert time.monotonic() - t0 < 1.0  # returned while the policy is still blocked
        release.set()
        results = poll_until(backend)
        if len(results) < 2:
            results += poll_until(backend)
        assert [r.request.seq for r in results] == [0, 1]  # in request order
        for r in results:
            assert r.t_request <= r.t_infer_start <= r.t_infer_end <= r.t_delivered
        assert results[1].t_infer_start >= results[0].t_infer_end  # one worker, one request at a time
        thread = backend._thread
    assert not thread.is_alive()


def test_thread_backend_raises_the_policy_error_at_poll_and_stops():
    def broken(request):
        if request.seq == 1:
            raise ValueError("no weights")
        return tag_chunk(request)

    with ThreadBackend(broken) as backend:
        backend.submit(ChunkRequest({}, tick=0, mark=0, seq=0))
        backend.submit(ChunkRequest({}, tick=0, mark=0, seq=1))
        deadline = time.monotonic() + 5
        with pytest.raises(RuntimeError, match=r"raised on request 1: ValueError\('no weights'\)"):
            while time.monotonic() < deadline:
                backend.poll()
                time.sleep(0.001)
        with pytest.raises(RuntimeError, match="the worker stopped"):
            backend.submit(ChunkRequest({}, tick=1, mark=0, seq=2))


def test_wrong_chunk_shape_is_named():
    backend = InlineBackend(lambda r: np.zeros(T))
    with pytest.raises(ValueError, match=r"shape \(8,\) for request 0; expected a chunk of shape \(T, Da\)"):
        backend.submit(ChunkRequest({}, tick=0, mark=0))


def test_simulated_latency_delivers_exactly_d_ticks_later_in_virtual_time():
    clock = VirtualClock(50)
    clock.start()
    script = {0: 3, 1: 0, 2: 5}
    backend = SimulatedLatencyBackend(tag_chunk, lambda r: script[r.seq], clock)
    delivered = {}
    for _ in range(10):
        tick = clock.wait_next_tick()
        if tick in (0, 1, 2):
            backend.submit(ChunkRequest({}, tick=tick, mark=tick, seq=tick))
        for r in backend.poll():
            delivered[r.request.seq] = (tick, r)
    assert {seq: t for seq, (t, _) in delivered.items()} == {0: 3, 1: 1, 2: 7}
    _, r = delivered[2]
    assert (r.t_request, r.t_infer_end, r.t_delivered) == (2 * 20_000_000, 7 * 20_000_000, 7 * 20_000_000)
    assert r.latency_s == pytest.approx(0.1)
    with pytest.raises(ValueError, match=">= 0 ticks"):
        SimulatedLatencyBackend(tag_chunk, -1, clock)


def test_real_time_loop_with_a_thread_backend_never_waits_for_inference():
    """200 Hz loop, policy ~12 ms per chunk with a 150 ms warm-up spike and a 120 ms stall: the loop keeps
    ticking and holds (counted) while starved; what executes is contiguous and placed at its mark."""
    latency = lambda seq: 0.15 if seq == 0 else (0.12 if seq == 6 else 0.012)  # noqa: E731
    sched = ChunkScheduler(NaiveJoin(), replan_every=4, horizon=T, delay=DelayEstimator(warmup=1))
    clock = RealClock(200)
    executed, body_s = [], []
    with ThreadBackend(SleepyPolicy(latency)) as backend:
        clock.start()
        while len([p for p in executed if p is not None]) < 60 and len(executed) < 2000:
            tick = clock.wait_next_tick()
            t0 = time.perf_counter()
            executed.append(sched.step(backend, {"tick": tick}, tick))
            body_s.append(time.perf_counter() - t0)
    done = [p for p in executed if p is not None]
    assert len(done) >= 60
    assert [p.index for p in done] == list(range(len(done)))
    for p in done:
        assert p.index == p.result.request.mark + p.offset and p.action.tolist() == [p.seq, p.offset]
    # Warm-up: the first 150 ms are holds (>= 20 ticks at 200 Hz, fewer only if ticks were missed under load).
    first = next(i for i, p in enumerate(executed) if p is not None)
    assert first + clock.missed_ticks >= 20 and executed[:first] == [None] * first
    assert sched.n_holds >= first and sched.n_holds == executed.count(None)
    assert done[0].offset == 0  # from standstill nothing is skipped
    # The 120 ms stall of request 6 outlasts the ~20 ms left in the queue: ~20 more ticks held.
    assert executed[first:].count(None) + clock.missed_ticks >= 10
    assert any(p.seq == 6 for p in done)
    # The loop body is polling only: far below the policy's 12 ms even on a busy machine.
    assert float(np.median(body_s)) < 0.002


def test_thread_backend_pins_its_worker():
    allowed = sorted(os.sched_getaffinity(0))
    seen = []

    def where(request):
        seen.append(os.sched_getaffinity(0))  # the calling thread's mask on Linux
        return tag_chunk(request)

    with ThreadBackend(where, cpus={allowed[-1]}) as backend:
        backend.submit(ChunkRequest({}, tick=0, mark=0))
        poll_until(backend)
    assert seen == [{allowed[-1]}]
    assert sorted(os.sched_getaffinity(0)) == allowed  # the caller's thread is not pinned


def test_the_parts_compose_into_a_deploy_tick():
    """Scheduler + simulated latency + safety filter + watchdog on virtual time: a policy that sometimes
    emits NaN and stalls once never sends NaN, holds (counted) while starved, and trips the watchdog."""
    from robolearn.runtime.safety import SafetyConfig, SafetyFilter
    from robolearn.runtime.watchdog import Watchdog

    class FakeNs:
        t = 0

        def __call__(self):
            return self.t

    def policy(request):
        chunk = tag_chunk(request) * 0.01
        if request.seq % 5 == 3:
            chunk[2, 1] = np.nan
        return chunk

    clock = VirtualClock(50)
    clock.start()
    now = FakeNs()
    backend = SimulatedLatencyBackend(policy, lambda r: 25 if r.seq == 8 else 2, clock)
    sched = ChunkScheduler(NaiveJoin(), replan_every=4, horizon=T, delay=DelayEstimator(initial=2))
    safety = SafetyFilter.from_config(SafetyConfig(max_relative_target=0.05), [-1.0] * DA, [1.0] * DA, 50)
    safety.reset(np.zeros(DA))
    watchdog = Watchdog(clock.period, timeout_periods=5, time_ns=now)
    watchdog.start()
    sent, trips_at, executed_at = [], [], []
    for _ in range(300):
        tick = clock.wait_next_tick()
        now.t = tick * 20_000_000
        planned = sched.step(backend, {"tick": tick}, tick)
        if planned is not None:
            watchdog.feed()
            executed_at.append(tick)
            action, report = safety.filter(planned.action)
        else:
            action, report = safety.hold("empty queue")
        if watchdog.check():
            trips_at.append(tick)
        sent.append(action)
    sent = np.stack(sent)
    assert np.all(np.isfinite(sent)) and np.abs(np.diff(sent, axis=0)).max() <= 0.05 + 1e-7
    assert safety.counts["nonfinite"] >= 5  # the NaN actions were held, not sent
    assert sched.n_holds >= 20 and watchdog.n_trips == 1  # the 25-tick stall: starved, then tripped once
    last_before = max(t for t in executed_at if t < trips_at[0])
    assert trips_at[0] - last_before == 5  # exactly N = 5 periods after the last executed action
    assert trips_at == list(range(trips_at[0], trips_at[-1] + 1))  # held until actions came back
