"""`CyclePacer` against a simulated controller clock: the loop wakes once per controller cycle, right after that
cycle's data package, never before it; late wake-ups are counted as skipped cycles, missing packages do not stop
the loop, and the delay estimate follows a controller clock that runs slow."""

import math

import pytest

from robolearn_hardware.ur.pacing import CyclePacer

P = 0.002


class Clock:
    """This machine's monotonic clock (fake) and a controller whose cycle k starts at controller time k * P,
    i.e. at ``offset + k * P * rate`` here; its data package is visible here ``delay`` later."""

    def __init__(self, offset=50.0003, delay=0.00031, rate=1.0, overshoot=0.00002):
        self.t, self.offset, self.delay, self.rate, self.overshoot = 1000.0, offset, delay, rate, overshoot
        self.stopped_at: float | None = None

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s + self.overshoot

    def arrival(self, stamp: float) -> float:
        return self.offset + stamp * self.rate + self.delay

    def stamp(self) -> float:
        t = self.t if self.stopped_at is None else min(self.t, self.stopped_at)
        k = math.floor(((t - self.delay - self.offset) / self.rate) / P + 1e-9)
        return k * P


def pacer(clock: Clock) -> CyclePacer:
    return CyclePacer(P, clock.stamp, now=clock.now, sleep=clock.sleep)


def test_each_wait_returns_once_per_controller_cycle_right_after_its_package():
    clock = Clock()
    p = pacer(clock)
    ticks = [p.wait() for _ in range(500)]
    assert all(t.synced and t.skipped == 0 for t in ticks)
    assert all(b.stamp - a.stamp == pytest.approx(P) for a, b in zip(ticks, ticks[1:]))  # one command per cycle
    after = [t.t_seen - clock.arrival(t.stamp) for t in ticks]
    assert min(after) >= -1e-9  # never before the package: a command cannot reach the cycle it follows
    assert max(after[5:]) <= p.poll_s + clock.overshoot + 1e-9  # within one poll of it, with the cycle to spare
    assert p.offset == pytest.approx(clock.offset + clock.delay, abs=p.poll_s + clock.overshoot)


def test_a_late_wake_up_counts_the_cycles_it_missed_and_the_loop_resyncs():
    clock = Clock()
    p = pacer(clock)
    for _ in range(20):
        p.wait()
    clock.t += 3 * P  # descheduled for three periods: the two cycles before the newest package got no command
    late = p.wait()
    assert late.synced and late.skipped == 2
    nxt = p.wait()
    assert nxt.skipped == 0 and nxt.stamp == pytest.approx(late.stamp + P)


def test_without_packages_the_loop_keeps_the_estimated_cycle_and_syncs_when_they_return():
    clock = Clock()
    p = pacer(clock)
    for _ in range(20):
        last = p.wait()
    clock.stopped_at = clock.t  # the receive side hears nothing (network hiccup)
    blind = [p.wait() for _ in range(10)]
    assert not any(t.synced for t in blind)
    assert [t.stamp for t in blind] == pytest.approx([last.stamp + (i + 1) * P for i in range(10)])
    gaps = [b.t_seen - a.t_seen for a, b in zip(blind, blind[1:])]
    assert gaps == pytest.approx([P] * 9, abs=p.poll_s + clock.overshoot)  # still one command per period
    clock.stopped_at = None
    back = [p.wait() for _ in range(5)]
    assert all(t.synced for t in back[1:])


def test_the_delay_estimate_follows_a_controller_clock_that_runs_slow():
    clock = Clock(rate=1.0001)  # 100 ppm: the package comes 0.2 us later each cycle
    p = pacer(clock)
    ticks = [p.wait() for _ in range(20000)]  # 40 s of controller time: 4 ms of drift, two whole cycles
    assert all(t.synced and t.skipped == 0 for t in ticks[1:])
    after = [t.t_seen - clock.arrival(t.stamp) for t in ticks[-100:]]
    assert min(after) >= -1e-9 and max(after) <= p.poll_s + clock.overshoot + 1e-9


def test_a_period_must_be_positive():
    with pytest.raises(ValueError, match="period must be > 0 s, got 0"):
        CyclePacer(0.0, lambda: 0.0)
