import time

import numpy as np
import pytest

from robolearn.runtime import Clock, RealClock, VirtualClock


class FakeTime:
    """Injectable monotonic time: sleep advances it by the request plus an optional overshoot,
    every read advances it by 1 µs (so a spin loop terminates)."""

    def __init__(self, overshoot_s: float = 0.0) -> None:
        self.t = 1_000_000_000
        self.overshoot_ns = int(overshoot_s * 1e9)
        self.sleeps: list[float] = []

    def time_ns(self) -> int:
        self.t += 1_000
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += int(s * 1e9) + self.overshoot_ns

    def work(self, s: float) -> None:
        self.t += int(s * 1e9)


def test_clocks_satisfy_protocol():
    assert isinstance(RealClock(10), Clock)
    assert isinstance(VirtualClock(10), Clock)


def test_fake_time_ticks_are_on_absolute_deadlines():
    ft = FakeTime(overshoot_s=0.0003)  # every sleep oversleeps 0.3 ms: must not accumulate
    clock = RealClock(100, spin_s=0.001, time_ns=ft.time_ns, sleep=ft.sleep)
    clock.start()
    t0 = ft.t
    wakes = []
    for _ in range(50):
        assert clock.wait_next_tick() == len(wakes)
        wakes.append(ft.t - t0)
        ft.work(0.002)
    lateness_ms = (np.array(wakes) - np.arange(50) * 10_000_000) / 1e6
    assert lateness_ms.max() < 0.05  # woke 0.7 ms early (sleep), spun to the deadline
    assert clock.missed_ticks == 0
    # Slept until deadline - spin each time (first tick fires at once, no sleep).
    np.testing.assert_allclose(ft.sleeps, 0.010 - 0.002 - 0.001, atol=1e-5)


def test_auto_spin_is_sized_from_the_measured_oversleep():
    from robolearn.runtime.clock import SPIN_MARGIN_S, SPIN_MAX_S, SPIN_MAX_SHARE, SPIN_MIN_S, SPIN_WARMUP

    ft = FakeTime(overshoot_s=0.00015)  # this OS wakes every sleep 150 us late
    clock = RealClock(500, spin_s=None, time_ns=ft.time_ns, sleep=ft.sleep)
    assert clock.adaptive and clock.spin_s == SPIN_MAX_SHARE * 0.002  # the cap until measured: 1/8 of a period
    clock.start()
    for _ in range(SPIN_WARMUP * 4):
        clock.wait_next_tick()
        ft.work(0.0002)
    # 150 us late, measured (plus ~1 us per time read of the fake) -> spin ~ 150 us + margin, not 1 ms
    assert clock.spin_s == pytest.approx(0.00015 + SPIN_MARGIN_S, abs=5e-6)
    assert clock.missed_ticks == 0 and clock.stats()["lateness_max_us"] < 10  # still on time: the spin covers it
    # sleeps now aim at deadline - spin: period - work - spin
    assert ft.sleeps[-1] == pytest.approx(0.002 - 0.0002 - clock.spin_s, abs=1e-5)
    ft2 = FakeTime()
    quiet = RealClock(500, spin_s=None, time_ns=ft2.time_ns, sleep=ft2.sleep)
    quiet.start()
    for _ in range(SPIN_WARMUP * 2):
        quiet.wait_next_tick()
    assert quiet.spin_s == pytest.approx(SPIN_MIN_S + 0, abs=SPIN_MARGIN_S)  # a precise sleep: the floor
    assert "auto" in repr(quiet) and RealClock(100).adaptive and RealClock(100).spin_s == SPIN_MAX_S  # default: sized
    ft3 = FakeTime(overshoot_s=0.0012)  # a VM whose every wake-up is 1.2 ms late
    slow = RealClock(500, spin_s=None, time_ns=ft3.time_ns, sleep=ft3.sleep)
    slow.start()
    for _ in range(SPIN_WARMUP * 2):
        slow.wait_next_tick()
    assert slow.spin_s == pytest.approx(SPIN_MAX_SHARE * 0.002)  # capped: spinning never takes more than 1/8 of a core
    assert slow.stats()["lateness_p50_us"] == pytest.approx(1200 - 250, abs=20)  # the rest is lateness, said so


def test_fake_time_overrun_skips_to_next_future_tick_and_counts():
    ft = FakeTime()
    clock = RealClock(100, spin_s=0.0, time_ns=ft.time_ns, sleep=ft.sleep)
    clock.start()
    t0 = ft.t
    ticks, wakes = [], []
    for i in range(10):
        ticks.append(clock.wait_next_tick())
        wakes.append((ft.t - t0) / 1e6)
        ft.work(0.025 if i == 3 else 0.001)  # tick 3's body takes 2.5 periods
    # Tick 3 ran at 30 ms and ended at 55 ms: ticks 4 and 5 are skipped, tick 6 fires on time.
    assert ticks == [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]
    assert clock.missed_ticks == 2
    assert clock.stats()["missed_ticks"] == 2
    assert wakes[4] == pytest.approx(60.0, abs=0.01)
    assert np.diff(wakes).min() > 9.9  # never a burst of catch-up ticks


def test_fake_time_oversleep_past_next_deadline_counts_missed():
    ft = FakeTime(overshoot_s=0.015)  # the OS wakes us 1.5 periods late
    clock = RealClock(100, spin_s=0.0, time_ns=ft.time_ns, sleep=ft.sleep)
    clock.start()
    assert clock.wait_next_tick() == 0
    assert clock.wait_next_tick() == 2  # aimed at tick 1 (10 ms), woke at 25 ms: now at tick 2
    assert clock.missed_ticks == 1
    assert clock.stats()["lateness_max_us"] == pytest.approx(15_000, abs=20)


def test_realclock_100hz_keeps_rate():
    clock = RealClock(100)
    clock.start()
    wakes, ticks = [], []
    while len(ticks) < 30:
        ticks.append(clock.wait_next_tick())
        wakes.append(time.monotonic())
    assert ticks[0] == 0
    # Rate from a least-squares fit of wake times on tick index: one preempted wake (a few ms on
    # a shared VM) does not move it, a drift of 1 % does.
    slope = np.polyfit(ticks, wakes, 1)[0]
    assert 1.0 / slope == pytest.approx(100.0, rel=0.01)
    stats = clock.stats()
    assert stats["ticks"] == 30
    assert stats["lateness_p50_us"] < 1000.0
    assert set(stats) >= {"missed_ticks", "lateness_p50_us", "lateness_p99_us", "lateness_max_us", "achieved_hz"}


def test_realclock_counts_missed_ticks_when_body_sleeps_too_long():
    clock = RealClock(100)
    clock.start()
    ticks, wakes = [], []
    for i in range(12):
        ticks.append(clock.wait_next_tick())
        wakes.append(time.monotonic())
        if i == 4:
            time.sleep(0.035)  # 3.5 periods
    assert clock.missed_ticks >= 3
    assert clock.missed_ticks == ticks[-1] - (len(ticks) - 1)
    jump = ticks[5] - ticks[4]
    assert jump >= 4
    # No catch-up burst: after the stall, ticks are still about one period apart.
    assert np.diff(wakes[5:]).min() > 0.005
    assert np.all(np.diff(ticks[5:]) >= 1)


def test_virtualclock_never_sleeps(monkeypatch):
    def no_sleep(_):
        raise AssertionError("VirtualClock slept")

    monkeypatch.setattr(time, "sleep", no_sleep)
    clock = VirtualClock(50)
    clock.start()
    assert clock.now() == 0.0
    start = time.perf_counter()
    ticks = [clock.wait_next_tick() for _ in range(10_000)]
    assert time.perf_counter() - start < 0.5  # 200 s of simulated time
    assert ticks == list(range(10_000))
    assert clock.now() == pytest.approx(9_999 / 50)
    assert clock.missed_ticks == 0
    clock.start()
    assert clock.wait_next_tick() == 0


@pytest.mark.parametrize("cls", [RealClock, VirtualClock])
def test_rejects_bad_rate(cls):
    with pytest.raises(ValueError, match="hz must be > 0"):
        cls(0)


def test_auto_spin_is_resized_every_few_sleeps_even_once_its_window_is_full():
    from robolearn.runtime.clock import SPIN_RESIZE_EVERY, SPIN_WINDOW

    ft = FakeTime(overshoot_s=0.0001)
    clock = RealClock(500, spin_s=None, time_ns=ft.time_ns, sleep=ft.sleep)
    resizes = []
    resize = clock._resize_spin
    clock._resize_spin = lambda: (resizes.append(ft.t), resize())
    clock.start()
    n = SPIN_WINDOW * 3
    for _ in range(n):
        clock.wait_next_tick()
    # a full window once made it resize (a percentile over 512 samples) on every tick, between wake-up and deadline
    assert len(resizes) == (n - 1) // SPIN_RESIZE_EVERY  # tick 0 fires at start(), without a sleep
    assert clock.missed_ticks == 0 and clock.stats()["lateness_max_us"] < 10
