"""Pacing a command stream on a UR controller's own cycle: the robot clocks the loop.

A UR controller runs its control script once per cycle (2 ms on an e-Series): when a cycle starts, the script
reads the RTDE input registers once (the newest package wins: one written twice in a cycle is lost, and a cycle
with no new package re-runs the previous servo target), and the controller publishes that cycle's RTDE data
package, stamped with the cycle's time. A stream paced by the client's own clock (ur_rtde's
``initPeriod``/``waitPeriod``) has an arbitrary phase against those cycles; where the phase is near a cycle
start, wake-up jitter on either side puts two commands into one cycle and none into the next.

`CyclePacer` takes the phase from the controller: ``wait()`` returns as soon as the data package of the next
cycle is seen, so the command sent then arrives early in that cycle, with nearly a whole period to spare
before the next cycle reads it, and it can never reach the cycle it follows (that one has already read its
inputs: the package says so). UR's own client library clocks its control loop the same way (it blocks on the
next RTDE package, then writes the command). The wait sleeps until just before the package is due, then polls
the receive interface's ``timestamp`` every ``poll_s``; if no package comes within ``give_up`` of a period
after it was due, the cycle runs on the estimated clock (``Tick.synced`` False), so commands keep flowing.

When a package is due: ``offset`` (this clock's monotonic time minus the controller's timestamp) is the
smallest delay seen from a cycle's start to its package being visible here. A delay can only be longer than
the true one, so the estimate only falls to what is seen; it may rise by ``drift_s`` per cycle, enough to
follow a controller clock that runs slow against this one (crystals differ by tens of ppm).

Example::

    pacer = CyclePacer(0.002, recv.getTimestamp)
    while streaming:
        tick = pacer.wait()             # the package of a new cycle is here
        check_safety()                  # what it says (a protective stop, ...) is known within this cycle
        ctl.servoJ(target, 0, 0, 0.002, 0.1, 300)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CyclePacer", "Tick"]


@dataclass(frozen=True)
class Tick:
    """One cycle of a paced loop."""

    stamp: float
    """Controller timestamp (s) of the cycle this one follows (estimated when not ``synced``)."""
    t_seen: float
    """Monotonic time ``wait()`` returned."""
    synced: bool
    """The cycle's data package was seen; False: it did not come in time and the estimated clock paced it."""
    skipped: int
    """Controller cycles since the previous tick that this loop did not serve (it woke too late for them)."""


class CyclePacer:
    """Waits for each new controller cycle (module docstring).

    Args:
        period: the controller's cycle (s) as the data packages come (0.002 at 500 Hz).
        stamp: the newest data package's controller timestamp (s), e.g. ``RTDEReceiveInterface.getTimestamp``.
        now, sleep: the monotonic clock and its sleep (injectable for tests).
        poll_s: polling interval while the package is due.
        lead_s: how long before the package is due polling starts.
        give_up: fraction of a period after the due time when a cycle runs without its package.
        drift_s: how much the delay estimate may rise per cycle.
    """

    def __init__(self, period: float, stamp: Callable[[], float], *, now: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = 1e-4, lead_s: float = 3e-4,
                 give_up: float = 0.5, drift_s: float = 2e-6) -> None:
        if period <= 0:
            raise ValueError(f"period must be > 0 s, got {period}")
        self.period, self.stamp, self.now, self.sleep = period, stamp, now, sleep
        self.poll_s, self.lead_s, self.give_up, self.drift_s = poll_s, lead_s, give_up, drift_s
        self.offset: float | None = None
        """Smallest delay (s) seen from a cycle's start (controller time) to its package here (monotonic)."""
        self.last: float | None = None
        """Controller timestamp of the cycle the last tick followed."""

    def _new(self, s: float) -> bool:
        assert self.last is not None
        return s >= self.last + self.period / 2  # float stamps: anything past half a period is a later cycle

    def _poll_until(self, limit: float) -> float:
        s = self.stamp()
        while not self._new(s) and self.now() < limit:
            self.sleep(self.poll_s)
            s = self.stamp()
        return s

    def wait(self) -> Tick:
        """Return when the next cycle's data package is seen (or ``give_up`` of a period after it was due)."""
        p = self.period
        if self.last is None:  # the first tick: watch one package arrive, for the first delay estimate
            self.last = self.stamp()
            s = self._poll_until(self.now() + 3 * p)
            t = self.now()
            if not self._new(s):
                self.offset = t - self.last
                return Tick(self.last, t, False, 0)
            self.offset, self.last = t - s, s
            return Tick(s, t, True, 0)
        assert self.offset is not None
        due = self.last + p + self.offset
        start = due - self.lead_s
        if (left := start - self.now()) > 0:
            self.sleep(left)
        s = self._poll_until(due + self.give_up * p)
        t = self.now()
        if not self._new(s):
            self.last += p
            return Tick(self.last, t, False, 0)
        n = max(1, round((s - self.last) / p))
        self.offset = min(t - s, self.offset + self.drift_s * n)
        self.last = s
        return Tick(s, t, True, n - 1)
