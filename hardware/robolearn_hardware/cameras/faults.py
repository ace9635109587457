"""`FaultySource`: wraps any `FrameSource` and injects the faults a real camera shows, seeded.

- stall: no frame for ``stall_s`` seconds (a USB hiccup, an auto-exposure pause);
- drop: a grabbed frame is thrown away (rate per frame);
- black: a frame comes back all zeros (rate per frame; a covered lens, a bad first frame);
- disconnect: the device is gone for ``disconnect_s`` seconds (grab raises `SourceDisconnected` and reopening
  fails until then), then comes back.

Rates draw from ``numpy.random.default_rng(seed)``, once per grab; ``stall(s)`` and ``unplug(s)`` trigger a
fault now (tests). ``counts`` says how many of each were injected.

Example::

    src = FaultySource(SyntheticSource(fps=30), drop=0.1, black=0.05, seed=0)
    with ThreadedCamera("front", src) as cam:
        src.stall(0.5)      # read_latest(0.1) raises StaleFrameError for ~0.5 s, then recovers
"""

from __future__ import annotations

import threading
import time

import numpy as np

from robolearn.errors import InvalidValueError

from .reader import FrameSource, SourceDisconnected

__all__ = ["FaultySource"]


class FaultySource(FrameSource):
    """Faults around ``source`` (module docstring).

    Args:
        source: the wrapped `FrameSource`.
        drop, black, stall_rate, disconnect_rate: probabilities per grab, each in [0, 1].
        stall_s: length of a random stall (seconds).
        disconnect_s: how long a random disconnect lasts (seconds).
        seed: seed of the fault draws.
    """

    def __init__(self, source: FrameSource, drop: float = 0.0, black: float = 0.0, stall_rate: float = 0.0,
                 stall_s: float = 0.5, disconnect_rate: float = 0.0, disconnect_s: float = 0.5, seed: int = 0) -> None:
        for key, p in (("drop", drop), ("black", black), ("stall_rate", stall_rate),
                       ("disconnect_rate", disconnect_rate)):
            if not 0.0 <= p <= 1.0:
                raise InvalidValueError(f"FaultySource: {key}={p!r}; expected a probability in [0, 1].")
        self.source = source
        self.size, self.fps, self.self_paced = source.size, source.fps, source.self_paced
        self.drop, self.black, self.stall_rate, self.disconnect_rate = drop, black, stall_rate, disconnect_rate
        self.stall_s, self.disconnect_s = float(stall_s), float(disconnect_s)
        self.rng = np.random.default_rng(seed)
        self.counts = dict(stalls=0, drops=0, blacks=0, disconnects=0)
        self._lock = threading.Lock()  # stall()/unplug() come from the test thread
        self._stalled_until = -np.inf
        self._unplugged_until = -np.inf

    def stall(self, seconds: float) -> None:
        """Deliver no frame for ``seconds`` from now."""
        with self._lock:
            self._stalled_until = time.monotonic() + float(seconds)
            self.counts["stalls"] += 1

    def unplug(self, seconds: float) -> None:
        """Disconnect now; reopening fails for ``seconds``."""
        with self._lock:
            self._unplugged_until = time.monotonic() + float(seconds)
            self.counts["disconnects"] += 1

    def open(self) -> None:
        if time.monotonic() < self._unplugged_until:
            raise SourceDisconnected("FaultySource: the camera is unplugged (injected).")
        self.source.open()

    def close(self) -> None:
        self.source.close()

    def grab(self) -> np.ndarray | None:
        now = time.monotonic()
        u_stall, u_disc, u_drop, u_black = self.rng.random(4)
        if u_disc < self.disconnect_rate:
            self.unplug(self.disconnect_s)
        if u_stall < self.stall_rate:
            self.stall(self.stall_s)
        if now < self._unplugged_until:
            raise SourceDisconnected("FaultySource: the camera is unplugged (injected).")
        if now < self._stalled_until:
            return None
        frame = self.source.grab()
        if frame is None:
            return None
        if u_drop < self.drop:
            self.counts["drops"] += 1
            return None
        if u_black < self.black:
            self.counts["blacks"] += 1
            return np.zeros_like(frame)
        return frame
