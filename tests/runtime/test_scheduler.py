"""ChunkScheduler: delay accounting by what was executed, the delay estimate, late/superseded chunks, holds,
and the joiners (naive, ACT ensembling, RTC prefix). Virtual time with a scripted-latency fake policy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robolearn.runtime import VirtualClock
from robolearn.runtime.backends import ChunkPrefix, ChunkResult, SimulatedLatencyBackend
from robolearn.runtime.scheduler import (
    ActionScheduler,
    ChunkScheduler,
    DelayEstimator,
    EnsembleJoin,
    NaiveJoin,
    RTCJoin,
)


class TagPolicy:
    """chunk[i] = (seq, i): every executed action names the chunk and offset it came from."""

    def __init__(self, T: int = 8) -> None:
        self.T = T
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        return np.stack([np.full(self.T, request.seq, np.float32), np.arange(self.T, dtype=np.float32)], 1)


def run(sched: ChunkScheduler, delay, ticks: int, T: int = 8):
    """Drive the scheduler for `ticks` virtual ticks; returns (executed PlannedAction or None per tick, policy)."""
    clock = VirtualClock(30)
    clock.start()
    policy = TagPolicy(T)
    backend = SimulatedLatencyBackend(policy, delay, clock)
    out = []
    for _ in range(ticks):
        tick = clock.wait_next_tick()
        out.append(sched.step(backend, {"tick": tick}, tick))
    return out, policy


def assert_contiguous(executed) -> list:
    done = [p for p in executed if p is not None]
    assert [p.index for p in done] == list(range(len(done)))  # never twice, never a gap
    for p in done:
        assert p.index == p.result.request.mark + p.offset  # placed at its observation's mark
        assert p.action.tolist() == [p.seq, p.offset]
    return done


def make_result(request, chunk, tick_ns: int = 0):
    return ChunkResult(request, np.asarray(chunk, np.float32), tick_ns, tick_ns, tick_ns, tick_ns)


def test_10k_merges_with_random_latency_execute_every_action_once_in_order():
    rng = np.random.default_rng(7)
    delays = rng.integers(0, 7, size=20_000)
    sched = ChunkScheduler(NaiveJoin(), replan_every=3, horizon=10, delay=DelayEstimator(window=16))
    executed, policy = run(sched, lambda r: int(delays[r.seq]), 40_000, T=12)
    done = assert_contiguous(executed)
    stats = sched.stats()
    assert stats["merged"] >= 10_000 and stats["dropped_late"] == 0
    assert stats["executed"] == len(done) and stats["holds"] == executed.count(None)
    # Each chunk skipped exactly the actions executed between its observation and its arrival.
    executed_before = np.concatenate([[0], np.cumsum([p is not None for p in executed])])
    first = {}
    for p in done:
        first.setdefault(p.seq, p)
    excess = 0
    for r in policy.requests:
        arrival = r.tick + int(delays[r.seq])
        if arrival < len(executed):
            skip = int(executed_before[arrival]) - r.mark
            if r.seq in first:  # (a chunk replaced by a fresher one in its own tick executes nothing)
                assert first[r.seq].offset == skip
            excess += max(0, skip - r.delay)
    assert stats["excess_actions"] == excess > 0 and stats["excess_chunks"] > 0
    # Reproducible per seed: the same script gives the same execution, action for action.
    again, _ = run(ChunkScheduler(NaiveJoin(), replan_every=3, horizon=10, delay=DelayEstimator(window=16)),
                   lambda r: int(delays[r.seq]), 40_000, T=12)
    assert [(p.index, p.seq, p.offset) if p else None for p in again] == \
        [(p.index, p.seq, p.offset) if p else None for p in executed]


def test_constant_delay_is_estimated_exactly_and_never_starves():
    sched = ChunkScheduler(NaiveJoin(), replan_every=4, horizon=8, delay=DelayEstimator(initial=3))
    executed, policy = run(sched, 3, 400)
    assert_contiguous(executed)
    # The first chunk is awaited (3 holds), then it never runs dry: 3 <= s = 4 <= T - 3.
    assert [p is None for p in executed[:4]] == [True, True, True, False]
    assert sched.n_holds == 3 and sched.stats()["delay_estimate"] == 3
    assert sched.n_excess_chunks == 0 and sched.n_dropped_late == 0
    assert all(r.delay == 3 for r in policy.requests[1:])
    # Without an initial estimate, only the request made before any latency counted misjudges d.
    default = ChunkScheduler(NaiveJoin(), replan_every=4, horizon=8)
    run(default, 3, 400)
    assert default.n_excess_chunks == 1 and default.n_excess_actions == 3


def test_warmup_spike_neither_skips_from_standstill_nor_inflates_the_estimate():
    # LeRobot #4223: a 0.7 s first inference made the first chunk skip 21 of 30 actions from standstill.
    sched = ChunkScheduler(NaiveJoin(), replan_every=4, horizon=8, delay=DelayEstimator(warmup=1))
    executed, policy = run(sched, lambda r: 20 if r.seq == 0 else 2, 200)
    done = assert_contiguous(executed)
    assert executed[:20] == [None] * 20 and sched.n_holds == 20  # held, counted
    assert (done[0].seq, done[0].offset) == (0, 0)                # starts at its first action
    assert sched.delay.estimate() == 2                            # the spike is excluded
    assert all(r.delay <= 2 for r in policy.requests)
    # Counted, the spike would have conditioned the next request on freezing its whole queue.
    unguarded = ChunkScheduler(NaiveJoin(), replan_every=4, horizon=8, delay=DelayEstimator(warmup=0))
    _, unguarded_policy = run(unguarded, lambda r: 20 if r.seq == 0 else 2, 30)
    assert unguarded_policy.requests[1].delay == 8 and policy.requests[1].delay == 0


def test_stall_holds_counted_and_the_excess_is_skipped_by_count():
    sched = ChunkScheduler(NaiveJoin(), replan_every=4, horizon=8)
    executed, policy = run(sched, lambda r: 30 if r.seq == 5 else 2, 200)
    assert_contiguous(executed)
    stalled = policy.requests[5]
    # It was conditioned on d = 2; while it computed, the rest of the queue ran and the robot held.
    assert stalled.delay == 2 and sched.n_holds > 20
    queued_then = 8 - 4  # an 8-action chunk, requested again after 4 executed
    assert sched.n_excess_chunks >= 1 and sched.n_excess_actions >= queued_then - 2
    first_of_stalled = next(p for p in executed if p is not None and p.seq == 5)
    assert first_of_stalled.offset == queued_then  # skipped exactly what was executed meanwhile


def test_late_chunk_dropped_superseded_dropped_empty_queue_holds():
    sched = ChunkScheduler(NaiveJoin(), horizon=4)
    r0 = sched.request({}, 0)
    assert sched.merge(make_result(r0, np.zeros((8, 2))), 0) == "merged" and sched.queued() == 4
    r1 = sched.request({}, 0)  # same mark 0; arrives after all 4 usable actions ran
    for _ in range(4):
        assert sched.pop() is not None
    assert sched.merge(make_result(r1, np.ones((8, 2))), 4) == "late" and sched.n_dropped_late == 1
    assert sched.pop() is None and sched.n_holds == 1
    r2, r3 = sched.request({}, 5), sched.request({}, 5)
    assert sched.merge(make_result(r3, np.full((8, 2), 3.0)), 6) == "merged"
    assert sched.merge(make_result(r2, np.full((8, 2), 2.0)), 6) == "superseded"
    assert sched.pop().action.tolist() == [3.0, 3.0] and sched.n_dropped_superseded == 1
    sched.reset()
    assert sched.merge(make_result(r3, np.zeros((8, 2))), 7) == "stale" and sched.queued() == 0


def test_excess_over_the_estimate_is_counted():
    sched = ChunkScheduler(NaiveJoin(), delay=DelayEstimator(initial=1))
    r0 = sched.request({}, 0)
    sched.merge(make_result(r0, np.zeros((8, 2))), 0)
    r1 = sched.request({}, 0)
    assert r1.delay == 1 and r1.mark == 0
    for _ in range(3):
        sched.pop()
    sched.merge(make_result(r1, np.arange(16).reshape(8, 2)), 3)
    assert (sched.n_excess_chunks, sched.n_excess_actions, sched.n_skipped) == (1, 2, 3)
    assert sched.pop().action.tolist() == [6, 7]  # chunk index 3 = execution index 3


def test_delay_is_capped_at_what_is_queued():
    sched = ChunkScheduler(NaiveJoin(), delay=DelayEstimator(initial=5))
    assert sched.request({}, 0).delay == 0  # nothing queued: nothing can execute meanwhile


def test_delay_estimator_windowed_percentile():
    est = DelayEstimator(window=4, quantile=0.75, warmup=2, initial=3)
    assert est.estimate() == 3
    for lat in (50, 40, 1, 2, 9, 3):
        est.add(lat)
    assert est.estimate() == 3  # window [1, 2, 9, 3]: 75th percentile = 3
    est.add(10)
    assert est.estimate() == 9  # window [2, 9, 3, 10]
    with pytest.raises(ValueError, match="quantile"):
        DelayEstimator(quantile=0.0)


def test_replan_every_s_actions():
    sched = ChunkScheduler(NaiveJoin(), replan_every=3, horizon=16)
    executed, policy = run(sched, 0, 30, T=16)
    assert_contiguous(executed)
    assert [r.mark for r in policy.requests] == list(range(0, 30, 3))
    assert sched.n_holds == 0  # zero delay: synchronous, each chunk is used at the tick it was asked for


def test_ensemble_join_uses_act_weights():
    m = 0.5
    sched = ChunkScheduler(EnsembleJoin(m))
    for k, value in enumerate((0.0, 1.0, 2.0)):
        r = sched.request({}, 0)
        sched.merge(make_result(r, np.full((4, 1), value)), 0)
    w = [math.exp(-m * i) for i in range(3)]
    expected = (0 * w[0] + 1 * w[1] + 2 * w[2]) / sum(w)
    p = sched.pop()
    assert p.action[0] == pytest.approx(expected) and p.n == 3 and p.seq == 2


def test_ensemble_every_tick_stays_contiguous_and_blends():
    sched = ChunkScheduler(EnsembleJoin(0.01), replan_every=1)
    executed, _ = run(sched, 2, 100)
    done = [p for p in executed if p is not None]
    assert [p.index for p in done] == list(range(len(done)))
    assert max(p.n for p in done) >= 3  # with d = 2 each action averages several chunks' predictions


def test_rtc_requests_carry_the_frozen_prefix_of_real_actions():
    sched = ChunkScheduler(RTCJoin(), replan_every=3, delay=DelayEstimator(initial=2))
    r0 = sched.request({}, 0)
    assert r0.prefix.actions.shape == (0, 0) and r0.prefix.d == 0 and r0.prefix.hold is None
    sched.merge(make_result(r0, np.arange(16).reshape(8, 2)), 0)
    for _ in range(3):
        sched.pop()
    r1 = sched.request({}, 3)
    prefix = r1.prefix
    assert isinstance(prefix, ChunkPrefix) and (prefix.d, prefix.s, r1.delay) == (2, 3, 2)
    np.testing.assert_array_equal(prefix.actions, np.arange(6, 16).reshape(5, 2))  # planned, from the mark
    np.testing.assert_array_equal(prefix.hold, [4, 5])  # the last executed action
    padded = prefix.padded(8)
    np.testing.assert_array_equal(padded[5:], [[4, 5]] * 3)  # padded with the hold, never zeros/mean
    np.testing.assert_array_equal(prefix.padded(3), prefix.actions[:3])
    with pytest.raises(ValueError, match="unguided"):
        r0.prefix.padded(4)


def test_action_scheduler_by_tick_still_works():
    s = ActionScheduler()
    s.add_chunk(10, np.arange(8).reshape(4, 2))
    assert s.pop(12).tolist() == [4, 5] and s.n_stale == 2
