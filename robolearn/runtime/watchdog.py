"""The command watchdog: hold when executable actions stop coming.

Rule: the loop ``feed``s the watchdog on every tick that executed an action. When the age of the last
executable action reaches ``timeout_periods`` control periods (the queue has been empty that long:
inference stalled, server gone), the watchdog *trips*: it signals hold until the next ``feed``. The
deadline is ``last_feed + timeout_periods * period`` on the monotonic clock (integer nanoseconds, as in
clock.py); the hold must follow within 2 periods + 5 ms of it.

A single empty tick already holds (the scheduler's empty-queue hold, counted there); the watchdog marks a
starvation that lasts, and counts each trip and its reaction time.

Two ways to run it:

- ``Watchdog.check()`` from the control loop, once per tick: reacts at the first tick at or after the
  deadline (within one period plus the clock's lateness).
- ``WatchdogThread(watchdog, on_trip)``: a thread of its own sleeps until the deadline and calls
  ``on_trip`` (e.g. a device's thread-safe ``hold()``) even while the loop thread itself is stuck.
  A dead control *process* is the devices' own watchdogs' job (#9/#10).

Example::

    watchdog = Watchdog(period_s=0.02, timeout_periods=3)
    watchdog.start()
    for tick in ...:
        planned = scheduler.step(backend, obs, tick)
        if planned is not None:
            watchdog.feed()
        if planned is None or watchdog.check():
            action, report = safety.hold("watchdog" if watchdog.tripped else "empty queue")

    with WatchdogThread(watchdog, on_trip=robot.hold):   # fires from its own thread
        ...
    watchdog.stats()           # {"trips": 1, "reaction_max_ms": 0.4, ...}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

__all__ = ["Watchdog", "WatchdogThread"]

_NS = 1_000_000_000


class Watchdog:
    """Trips when no action has executed for ``timeout_periods`` periods (module doc).

    Args:
        period_s: the control period.
        timeout_periods: N, periods without an executable action before it trips (>= 1).
        time_ns: monotonic time source in integer nanoseconds (injectable for tests).
    """

    def __init__(self, period_s: float, timeout_periods: int = 3, *,
                 time_ns: Callable[[], int] = time.monotonic_ns) -> None:
        if not period_s > 0:
            raise ValueError(f"Watchdog: period_s must be > 0, got {period_s!r}")
        if timeout_periods < 1:
            raise ValueError(f"Watchdog: timeout_periods must be >= 1, got {timeout_periods!r}")
        self.period_s = float(period_s)
        self.timeout_periods = int(timeout_periods)
        self.timeout_ns = round(self.timeout_periods * self.period_s * _NS)
        self._time_ns = time_ns
        self._lock = threading.Lock()
        self._last_feed: int | None = None
        self.tripped = False
        """True from a trip until the next ``feed``."""
        self.n_trips = 0
        self.reactions_ns: list[int] = []
        """Per trip: when it was detected minus the deadline."""

    def start(self) -> None:
        """Arm at the current time (the episode start counts as fed) and reset the counters."""
        with self._lock:
            self._last_feed = self._time_ns()
            self.tripped = False
            self.n_trips = 0
            self.reactions_ns = []

    def feed(self) -> None:
        """An action was executed now."""
        with self._lock:
            self._last_feed = self._time_ns()
            self.tripped = False

    @property
    def deadline_ns(self) -> int:
        """When the watchdog trips unless fed before (monotonic ns)."""
        if self._last_feed is None:
            raise RuntimeError("Watchdog: call start() first")
        return self._last_feed + self.timeout_ns

    def age_s(self) -> float:
        """Seconds since the last executable action."""
        return (self._time_ns() - self.deadline_ns + self.timeout_ns) / _NS

    def check(self) -> bool:
        """True (hold) once the deadline has passed; the first such check counts a trip."""
        with self._lock:
            now = self._time_ns()
            deadline = self.deadline_ns
            if now < deadline:
                return False
            if not self.tripped:
                self.tripped = True
                self.n_trips += 1
                self.reactions_ns.append(now - deadline)
            return True

    def stats(self) -> dict[str, float]:
        """Trips and reaction times (ms after the deadline)."""
        r = np.asarray(self.reactions_ns, dtype=np.float64) / 1e6
        return {"trips": self.n_trips, "timeout_ms": self.timeout_ns / 1e6,
                "reaction_p50_ms": float(np.median(r)) if len(r) else 0.0,
                "reaction_max_ms": float(r.max()) if len(r) else 0.0}


class WatchdogThread:
    """Runs ``watchdog.check()`` from a thread of its own, sleeping until each deadline; calls ``on_trip``
    once per trip (from that thread: it must be thread-safe, e.g. a device's ``hold()``).

    Use as a context manager, or ``start()``/``stop()``; ``start`` arms the watchdog."""

    def __init__(self, watchdog: Watchdog, on_trip: Callable[[], None], *, name: str = "robolearn-watchdog") -> None:
        self.watchdog = watchdog
        self.on_trip = on_trip
        self._stop = threading.Event()
        self._name = name
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        """An exception ``on_trip`` raised (the thread stops on it)."""

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("WatchdogThread: already started")
        self.watchdog.start()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> WatchdogThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        wd = self.watchdog
        fired_for: int | None = None  # the feed time whose deadline on_trip already answered
        while not self._stop.is_set():
            last_feed = wd._last_feed
            if last_feed == fired_for:
                self._stop.wait(wd.period_s)  # holding: look again each period for a feed that re-arms it
                continue
            wait_s = (wd.deadline_ns - wd._time_ns()) / _NS
            if wait_s > 0:
                self._stop.wait(wait_s)  # a feed meanwhile only moves the deadline later: recompute
                continue
            wd.check()  # counts the trip and its reaction unless the loop's own check got there first
            fired_for = last_feed
            try:
                self.on_trip()
            except BaseException as e:  # noqa: BLE001  (kept for the owner; the loop's hold still applies)
                self.error = e
                return
