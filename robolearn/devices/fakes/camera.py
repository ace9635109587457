"""`FakeCamera`: synthetic frames with their frame number drawn in, a capture rate and a capture lag.

Frames are computed when read (no thread): a read at time ``t`` on the device's clock returns the newest
frame that has *arrived* by ``t``, a frame captured at ``t_c`` arriving at ``t_c + lag`` (exposure,
readout, USB). With ``fps`` set, frames are captured on the grid ``n / fps`` of the clock and frame
``n`` carries the number ``n``; with ``fps=None`` every read gets a fresh frame captured ``lag`` seconds
earlier, numbered by reads since ``connect()``. Either way ``Reading.t_capture`` is the capture time,
so a recorder stores the stamp of the light, not of the read.

Example::

    t = FakeTime(10.0)
    with FakeCamera("front", size=(48, 64), lag=0.03, clock=t) as cam:
        r = cam.read()      # r.values["images/front"]: (48, 64, 3) uint8 showing "0"; r.t_capture == 9.97
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading

__all__ = ["FakeCamera", "counter_frame"]

# 3x5 bitmaps of the digits 0-9, one string of 15 pixels per digit (rows top to bottom).
_FONT = ("111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
         "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111")
_GLYPHS = np.array([[int(c) for c in g] for g in _FONT], dtype=bool).reshape(10, 5, 3)
MAX_DIGITS = 8  # frame numbers are drawn modulo 10**8


def counter_frame(n: int, size: Sequence[int]) -> np.ndarray:
    """The (H, W, 3) uint8 frame numbered `n`: a colour that changes with `n`, the number in white on top."""
    h, w = int(size[0]), int(size[1])
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = ((37 * n) % 200 + 20, (91 * n) % 200 + 20, (53 * n) % 200 + 20)
    digits = str(int(n) % 10**MAX_DIGITS)
    scale = max(1, min((w - 2) // (4 * len(digits)), (h - 2) // 5))
    if scale * 5 > h or scale * (4 * len(digits) - 1) > w:
        return frame  # too small to draw into; the colour still changes per frame
    y0 = (h - 5 * scale) // 2
    x0 = (w - scale * (4 * len(digits) - 1)) // 2
    for i, d in enumerate(digits):
        glyph = np.kron(_GLYPHS[int(d)], np.ones((scale, scale), dtype=bool))
        x = x0 + i * 4 * scale
        frame[y0:y0 + 5 * scale, x:x + 3 * scale][glyph] = 255
    return frame


class FakeCamera(DeviceBase):
    """A `Camera` keyed ``images/<name>`` (module docstring).

    Args:
        name: camera name; the observation key is ``images/<name>``.
        size: frame (H, W).
        fps: capture rate (frames on the grid n / fps of the clock); None: a fresh frame per read.
        lag: seconds from capture to the frame being readable (>= 0).
        clock: monotonic seconds (default `time.monotonic`; `FakeTime` for deterministic tests).
    """

    def __init__(self, name: str = "front", size: Sequence[int] = (48, 64), fps: float | None = None,
                 lag: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, clock)
        try:
            h, w = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"FakeCamera: size={size!r}; expected (H, W), two positive integers.") from None
        if h < 1 or w < 1:
            raise ValueError(f"FakeCamera: size={size!r}; expected (H, W), two positive integers.")
        if fps is not None and not fps > 0:
            raise ValueError(f"FakeCamera: fps={fps!r}; expected a positive rate or None (a frame per read).")
        if not lag >= 0:
            raise ValueError(f"FakeCamera: lag={lag!r}; expected seconds >= 0.")
        self.size = (h, w)
        self.fps = None if fps is None else float(fps)
        self.lag = float(lag)
        self.key = spaces.image_key(name)
        self.observation_space = gym.spaces.Dict({self.key: gym.spaces.Box(0, 255, (h, w, 3), np.uint8)})
        self._reads = 0
        self._last = -math.inf

    def _open(self) -> None:
        self._reads = 0

    def read(self) -> Reading:
        self._require_connected("read()")
        now = float(self.clock())
        if self.fps is None:
            n, t_capture = self._reads, now - self.lag
        else:
            # The newest grid frame that has arrived: captured at n / fps <= now - lag (1e-9 absorbs rounding).
            n = math.floor((now - self.lag) * self.fps + 1e-9)
            t_capture = n / self.fps
        self._reads += 1
        t_capture = max(t_capture, self._last)  # a clock never runs backwards, a stamp neither
        self._last = t_capture
        return Reading({self.key: counter_frame(n, self.size)}, t_capture)
