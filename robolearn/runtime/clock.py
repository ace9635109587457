"""Clocks that pace the control loop.

A clock hands out tick indices at a fixed rate. Tick ``k`` is due at ``t0 + k * period`` (absolute
deadlines, so oversleeping never accumulates). When the loop body overruns and one or more
deadlines have already passed, the clock jumps to the next future tick and counts the ticks it
skipped: it never fires a burst of late ticks to catch up (ros2_control's rule).

Two implementations share these tick semantics:

- ``RealClock(hz)`` sleeps on the monotonic clock until shortly before each deadline, then spins.
- ``VirtualClock(hz)`` never sleeps: each tick advances its time by exactly one period, so a
  simulator runs as fast as it can while seeing the same tick indices and timestamps it would see
  in real time.

Example::

    clock = RealClock(100)
    clock.start()
    for _ in range(300):
        tick = clock.wait_next_tick()   # 0, 1, 2, ... (gaps where ticks were missed)
        do_work(tick, clock.now())
    print(clock.stats())               # {"ticks": ..., "missed_ticks": ..., "lateness_p99_us": ...}
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Clock", "RealClock", "VirtualClock"]

_NS = 1_000_000_000


@runtime_checkable
class Clock(Protocol):
    """What the control loop needs from a clock."""

    period: float
    """Seconds between ticks (1 / hz)."""

    missed_ticks: int
    """Ticks skipped since ``start()`` because their deadline had passed."""

    def start(self) -> None:
        """Reset the counters and anchor tick 0 at the current time."""

    def wait_next_tick(self) -> int:
        """Block until the next tick is due and return its index (skipping, never bursting)."""

    def now(self) -> float:
        """Seconds since ``start()`` on this clock."""

    def stats(self) -> dict[str, float]:
        """Counters and lateness percentiles (µs) since ``start()``."""


def _summary(ticks: int, missed: int, lateness_ns: deque[int], span_s: float) -> dict[str, float]:
    if lateness_ns:
        late_us = np.asarray(lateness_ns, dtype=np.float64) / 1e3
        p50, p99, mx = np.percentile(late_us, 50), np.percentile(late_us, 99), late_us.max()
    else:
        p50 = p99 = mx = 0.0
    return {
        "ticks": ticks,
        "missed_ticks": missed,
        "lateness_p50_us": float(p50),
        "lateness_p99_us": float(p99),
        "lateness_max_us": float(mx),
        # Executed ticks per second between the first and the last executed tick.
        "achieved_hz": float((ticks - 1) / span_s) if ticks > 1 and span_s > 0 else 0.0,
    }


SPIN_MAX_S = 0.001        # the spin window before the wake-up error was measured, and its cap
SPIN_MAX_SHARE = 0.125    # ... and never more than this share of a period (a CPU budget: 250 us at 500 Hz)
SPIN_MIN_S = 0.00002      # never less: one time read and a branch cost a few hundred ns
SPIN_PERCENTILE = 99.9    # of the measured oversleeps the spin window covers
SPIN_MARGIN_S = 0.00002   # added to that oversleep
SPIN_WINDOW = 512         # sleeps the percentile looks back over
SPIN_WARMUP = 32          # sleeps measured before the window is first sized
SPIN_RESIZE_EVERY = 32


class RealClock:
    """Wall-clock pacing on absolute monotonic deadlines with sleep-then-spin.

    Args:
        hz: tick rate.
        spin_s: the last ``spin_s`` seconds before a deadline are busy-waited instead of slept,
            which trades CPU for wake-up precision (0 disables spinning). ``None`` (the default): sized from
            the measured wake-up error of this machine: the spin window is the 99.9th percentile (about the
            worst) of how late ``sleep`` returned over the last ``SPIN_WINDOW`` sleeps, plus ``SPIN_MARGIN_S``
            (a p99-sized window left the slowest 1% of wake-ups late by ~1 ms on a busy machine), clamped to
            [``SPIN_MIN_S``, min(``SPIN_MAX_S``, ``SPIN_MAX_SHARE`` x period)] (that cap until ``SPIN_WARMUP``
            sleeps were measured), so spinning never costs more than 1/8 of a core. A fixed 1 ms
            spin costs ~47% of a core at 500 Hz; a sized one costs what the OS's wake-up error needs. On this
            project's 2-vCPU VM the oversleep tail of a normal-priority thread reaches 1 ms, so there the window
            saturates at its cap; a SCHED_FIFO loop (``RealtimeLoop(rt_priority=...)``, ``deploy
            --rt-priority``) wakes within ~50-150 us and the window shrinks to that (pacing in
            benchmarks/results/deploy.json).
        time_ns: monotonic time source in integer nanoseconds (injectable for tests).
        sleep: sleep function taking seconds (injectable for tests).
        max_samples: how many recent lateness samples ``stats()`` summarises.
    """

    def __init__(
        self,
        hz: float,
        spin_s: float | None = None,
        *,
        time_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
        max_samples: int = 100_000,
    ) -> None:
        if not hz > 0:
            raise ValueError(f"RealClock: hz must be > 0, got {hz!r}")
        if spin_s is not None and spin_s < 0:
            raise ValueError(f"RealClock: spin_s must be >= 0 or None (sized from the wake-up error), got {spin_s!r}")
        self.hz = float(hz)
        self.period = 1.0 / self.hz
        self.adaptive = spin_s is None
        self._spin_cap_s = min(SPIN_MAX_S, SPIN_MAX_SHARE * self.period)
        self.spin_s = self._spin_cap_s if spin_s is None else float(spin_s)
        self._oversleep_ns: deque[int] = deque(maxlen=SPIN_WINDOW)
        self._measured = 0  # sleeps measured so far (the window keeps the last SPIN_WINDOW)
        self._resized_at = 0
        # Integer nanoseconds keep `deadline_k = t0 + k * period` exact for any k.
        self._period_ns = round(_NS / self.hz)
        self._spin_ns = round(self.spin_s * _NS)
        self._time_ns = time_ns
        self._sleep = sleep
        self._lateness_ns: deque[int] = deque(maxlen=max_samples)
        self._t0: int | None = None
        self._tick = -1
        self._ticks = 0
        self._first_wake: int | None = None
        self._last_wake: int | None = None
        self.missed_ticks = 0

    def start(self) -> None:
        self._t0 = self._time_ns()
        self._tick = -1
        self._ticks = 0
        self._first_wake = self._last_wake = None
        self._lateness_ns.clear()
        self.missed_ticks = 0

    def _deadline(self, k: int) -> int:
        assert self._t0 is not None
        return self._t0 + k * self._period_ns

    def _tick_at(self, t_ns: int) -> int:
        """Index of the tick whose period contains ``t_ns``."""
        assert self._t0 is not None
        return (t_ns - self._t0) // self._period_ns

    def wait_next_tick(self) -> int:
        if self._t0 is None:
            self.start()
        now = self._time_ns()
        target = self._tick + 1
        if target == 0:
            # Tick 0 is due at start(): fire it now unless whole periods have gone by since.
            target = max(0, self._tick_at(now))
            self.missed_ticks += target
        elif now > self._deadline(target):
            # Overrun: skip to the next tick still in the future, never catch up in a burst.
            nxt = self._tick_at(now) + 1
            self.missed_ticks += nxt - target
            target = nxt
        deadline = self._deadline(target)

        sleep_ns = deadline - self._spin_ns - now
        if sleep_ns > 0:
            self._sleep(sleep_ns / _NS)
            now = self._time_ns()
            if self.adaptive:
                self._oversleep_ns.append(max(now - (deadline - self._spin_ns), 0))
                self._measured += 1
        now = self._time_ns()
        while now < deadline:
            now = self._time_ns()

        self._lateness_ns.append(now - deadline)
        # Woke up so late that later deadlines passed too: we are now at a later tick.
        cur = self._tick_at(now)
        if cur > target:
            self.missed_ticks += cur - target
            target = cur
        self._tick = target
        self._ticks += 1
        if self._first_wake is None:
            self._first_wake = now
        self._last_wake = now
        m = self._measured
        if self.adaptive and m >= SPIN_WARMUP and m % SPIN_RESIZE_EVERY == 0 and m != self._resized_at:
            # After the deadline, not between the wake-up and it: the percentile costs ~0.1 ms of this tick's body.
            self._resize_spin()
        return target

    def _resize_spin(self) -> None:
        """Size the spin window from the recent oversleeps (every ``SPIN_RESIZE_EVERY`` measured sleeps)."""
        self._resized_at = self._measured
        worst = float(np.percentile(np.fromiter(self._oversleep_ns, np.int64, len(self._oversleep_ns)),
                                    SPIN_PERCENTILE)) / _NS
        self.spin_s = min(max(worst + SPIN_MARGIN_S, SPIN_MIN_S), self._spin_cap_s)
        self._spin_ns = round(self.spin_s * _NS)

    def now(self) -> float:
        if self._t0 is None:
            return 0.0
        return (self._time_ns() - self._t0) / _NS

    @property
    def tick(self) -> int:
        """Index of the last tick returned (-1 before the first)."""
        return self._tick

    def lateness_us(self) -> np.ndarray:
        """Wake-up lateness of each recent tick, in µs."""
        return np.asarray(self._lateness_ns, dtype=np.float64) / 1e3

    def stats(self) -> dict[str, float]:
        span = 0.0
        if self._first_wake is not None and self._last_wake is not None:
            span = (self._last_wake - self._first_wake) / _NS
        return _summary(self._ticks, self.missed_ticks, self._lateness_ns, span)

    def __repr__(self) -> str:
        return f"RealClock(hz={self.hz:g}, spin_s={'auto ' if self.adaptive else ''}{self.spin_s:g})"


class VirtualClock:
    """Simulated time: never sleeps, advances exactly one period per tick.

    ``now()`` is the time of the current tick (``tick * period``), so timestamps match what a
    ``RealClock`` at the same rate would produce with zero lateness.
    """

    def __init__(self, hz: float) -> None:
        if not hz > 0:
            raise ValueError(f"VirtualClock: hz must be > 0, got {hz!r}")
        self.hz = float(hz)
        self.period = 1.0 / self.hz
        self._tick = -1
        self.missed_ticks = 0

    def start(self) -> None:
        self._tick = -1
        self.missed_ticks = 0

    def wait_next_tick(self) -> int:
        self._tick += 1
        return self._tick

    def now(self) -> float:
        return max(self._tick, 0) * self.period

    @property
    def tick(self) -> int:
        """Index of the last tick returned (-1 before the first)."""
        return self._tick

    def stats(self) -> dict[str, float]:
        ticks = self._tick + 1
        out = _summary(ticks, 0, deque(), 0.0)
        out["achieved_hz"] = self.hz if ticks > 1 else 0.0
        return out

    def __repr__(self) -> str:
        return f"VirtualClock(hz={self.hz:g})"
