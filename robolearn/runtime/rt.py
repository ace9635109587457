"""Real-time hygiene for the process that runs the control loop: its core, its scheduling class, the garbage
collector and the threads of the libraries it hosts.

- ``split_cores()``: the loop's core and the inference cores, from the cores this process may use (one core:
  nothing pinned, and a note says so).
- ``thread_env(n)``: an environment whose OpenMP/MKL/OpenBLAS pools have ``n`` threads (the inference child's).
- ``RealtimeLoop``: a context manager for the loop's thread. On entry it pins the thread to its cores
  (``os.sched_setaffinity``; threads started later inherit it) and, when asked, moves it to ``SCHED_FIFO`` at
  a priority (with SCHED_RESET_ON_FORK: threads and processes the loop starts run at normal priority);
  ``freeze_gc()`` (call it after warm-up) moves every object alive into the permanent generation (``gc.freeze``), so a collection during an episode walks only what the episode allocated. On exit it
  undoes all three, so a library caller (or a test process) gets its thread back as it was.

SCHED_FIFO needs ``CAP_SYS_NICE`` or an ``rtprio`` limit (``/etc/security/limits.conf``). Without either,
``RealtimeLoop`` prints one sentence and runs at normal priority, or, with ``require=True``, refuses
(``CannotCompleteError``).

Example::

    loop_cpus, inference_cpus, note = split_cores()
    with RealtimeLoop(loop_cpus, rt_priority=50) as rt:       # the calling thread: pinned, SCHED_FIFO 50
        backend = ProcessBackend(..., cpus=inference_cpus)   # inference on the other cores
        rt.freeze_gc()                                       # after warm-up
        ...                                                  # the episodes
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterable, Mapping

from robolearn.errors import CannotCompleteError, InvalidValueError

__all__ = ["RT_SWITCH_INTERVAL_S", "THREAD_ENV", "RealtimeLoop", "check_rt_priority", "split_cores", "thread_env"]

RT_SWITCH_INTERVAL_S = 0.0002
"""The interpreter's thread switch interval while a SCHED_FIFO loop runs (CPython's default: 5 ms)."""

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Variables that size the native thread pools (torch's intra-op pool follows OMP_NUM_THREADS)."""


def split_cores(available: Iterable[int] | None = None) -> tuple[set[int] | None, set[int] | None, str | None]:
    """``(loop cores, inference cores, note)``: the lowest core for the loop, the others for inference; with
    fewer than two cores ``(None, None, why nothing is pinned)``."""
    cores = sorted(os.sched_getaffinity(0) if available is None else available)
    if len(cores) < 2:
        return None, None, (f"only core {cores} is available: the loop and inference share it (nothing pinned)"
                            if cores else "no core is available to pin (nothing pinned)")
    return {cores[0]}, set(cores[1:]), None


def thread_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with every ``THREAD_ENV`` variable set to ``threads``."""
    if threads < 1:
        raise InvalidValueError(f"threads must be >= 1, got {threads}")
    env = dict(os.environ if base is None else base)
    env.update({name: str(threads) for name in THREAD_ENV})
    return env


def check_rt_priority(priority: int) -> int:
    """``priority`` if SCHED_FIFO accepts it (1..99 on Linux), else a one-sentence InvalidValueError."""
    if not hasattr(os, "SCHED_FIFO"):
        raise InvalidValueError("--rt-priority needs SCHED_FIFO, which this platform does not offer (Linux does)")
    lo, hi = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if not lo <= priority <= hi:
        raise InvalidValueError(f"--rt-priority {priority} is outside SCHED_FIFO's range; use {lo}..{hi}")
    return priority


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class RealtimeLoop:
    """Pins the calling thread, optionally at SCHED_FIFO, and freezes the GC after warm-up (module doc).

    Args:
        cpus: the loop's cores (None: leave the affinity alone).
        rt_priority: SCHED_FIFO priority (None: stay in the normal scheduling class). While a FIFO loop runs, the
            interpreter's thread switch interval is ``RT_SWITCH_INTERVAL_S`` (``sys.setswitchinterval``): a
            thread of the loop's process that holds the GIL gives it up within that time, not CPython's 5 ms
            (a UR stream thread woke on time, then waited up to 5 ms for a busy main thread).
        require: refuse (``CannotCompleteError``) when SCHED_FIFO is not permitted, instead of a note.
        announce: where the notes go (one line each; default stderr).
    """

    def __init__(self, cpus: set[int] | None = None, rt_priority: int | None = None, *, require: bool = False,
                 announce: Callable[[str], None] = _say) -> None:
        self.cpus = set(cpus) if cpus else None
        self.rt_priority = None if rt_priority is None else check_rt_priority(int(rt_priority))
        self.require = require
        self.announce = announce
        self.sched_fifo = False
        """Whether the thread runs at SCHED_FIFO now."""
        self.gc_frozen = False
        self.notes: list[str] = []
        self._affinity: set[int] | None = None
        self._sched: tuple[int, int] | None = None
        self._switch: float | None = None

    def __enter__(self) -> RealtimeLoop:
        try:
            if self.cpus is not None:
                self._affinity = os.sched_getaffinity(0)
                os.sched_setaffinity(0, self.cpus)
            if self.rt_priority is not None:
                self._enter_fifo(self.rt_priority)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _enter_fifo(self, priority: int) -> None:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
        try:
            # Reset on fork: threads and processes started from the loop (an inference child, a library's worker
            # thread) begin at normal priority. A CPU-bound child at SCHED_FIFO took its core from everything
            # else and ate the RT time budget the loop shares with it (the loop woke ~230 us late at p50).
            os.sched_setscheduler(0, os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0), os.sched_param(priority))
        except PermissionError:
            why = (f"SCHED_FIFO priority {priority} is not permitted for this user (it needs CAP_SYS_NICE or an "
                   "rtprio limit in /etc/security/limits.conf)")
            if self.require:
                raise CannotCompleteError(f"{why}; grant one, or drop --require-rt to run at normal priority"
                                          ) from None
            self.note(f"{why}: the loop runs at normal priority")
            return
        self._sched = (policy, param)
        self.sched_fifo = True
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, RT_SWITCH_INTERVAL_S))

    def note(self, line: str) -> None:
        """Announce ``line`` and keep it for ``report()``."""
        self.notes.append(line)
        self.announce(f"robolearn: {line}")

    def freeze_gc(self) -> None:
        """Collect once, then keep every object alive now out of later collections (``gc.freeze``)."""
        gc.collect()
        gc.freeze()
        self.gc_frozen = True

    def __exit__(self, *exc: object) -> None:
        if self.gc_frozen:
            gc.unfreeze()
            self.gc_frozen = False
        if self._switch is not None:
            sys.setswitchinterval(self._switch)
            self._switch = None
        if self._sched is not None:
            policy, param = self._sched
            os.sched_setscheduler(0, policy, os.sched_param(param))
            self._sched, self.sched_fifo = None, False
        if self._affinity is not None:
            os.sched_setaffinity(0, self._affinity)
            self._affinity = None

    def report(self) -> dict:
        """What is in force, for the run summary."""
        return {"loop_cpus": sorted(self.cpus) if self.cpus else None, "rt_priority": self.rt_priority,
                "sched_fifo": self.sched_fifo, "gc_frozen": self.gc_frozen, "notes": list(self.notes)}
