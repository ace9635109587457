"""`ThreadedCamera`: a background thread grabs frames from a `FrameSource` at the camera's own rate; the
caller reads the newest one without ever waiting on the camera.

Camera rate, control rate and recording rate are separate settings. The rule that pairs a control tick with
a frame (`PAIRING_RULE`): **a tick takes the newest frame grabbed, provided it is not older than
``max_age`` seconds** (its age is the tick's ``time.monotonic()`` minus the frame's capture stamp, taken at
grab); ``read_latest(max_age)`` enforces it and raises `StaleFrameError` otherwise, ``read()`` returns the
newest frame whatever its age. ``pairing()`` gives the rule and its settings as a dict to record with the
episode.

Counters (``counters()``): ``grabbed`` frames stored, ``read_twice`` reads that got the same frame as the
read before (the tick got no new frame), ``dropped`` frames overwritten before any read, ``disconnects`` and
``reconnects`` of the source. ``read()`` holds a lock only for a reference swap: a stalled or unplugged
camera never blocks the control loop.

Example::

    with ThreadedCamera("front", SyntheticSource(size=(48, 64), fps=30)) as cam:
        frame = cam.read_latest(max_age=0.1).values["images/front"]   # (H, W, 3) uint8
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import DeviceFaultError, Reading
from robolearn.errors import UserError

__all__ = ["PAIRING_RULE", "CameraError", "Captured", "EndOfSource", "FrameSource", "SourceDisconnected",
           "StaleFrameError", "ThreadedCamera"]

PAIRING_RULE = "newest frame not older than max_age"
"""How a control tick is paired with a camera frame (module docstring); recorded with the episode."""


class StaleFrameError(UserError, DeviceFaultError):
    """The newest frame of a camera is older than the ``max_age`` a tick accepts (recording aborts the episode)."""


class CameraError(UserError, RuntimeError):
    """A camera cannot be opened or delivers frames that do not match its declared space."""


class SourceDisconnected(ConnectionError):
    """A source lost its device (unplugged); the reader closes it and reopens it until it comes back."""


class EndOfSource(Exception):
    """A finite source (a file that does not loop) has no more frames."""


@dataclass(frozen=True)
class Captured:
    """What a device tells about a frame besides its pixels (a ``grab()`` may return one instead of the frame)."""

    color: np.ndarray
    """(H, W, 3) uint8 RGB."""
    depth: np.ndarray | None = None
    """(H, W) float32 metres, aligned to ``color`` (0: no depth); a source with ``has_depth`` gives one always."""
    t_capture: float | None = None
    """When the device captured it, on ``time.monotonic()``'s clock; None: stamped when grabbed."""


class FrameSource:
    """Where frames come from: opened and grabbed only by a `ThreadedCamera`'s thread.

    ``grab()`` returns one (H, W, 3) uint8 RGB frame of ``size`` (or a `Captured`: with a depth image, or the
    device's own capture time), or None when the source delivered nothing this time; it raises
    `SourceDisconnected` when the device is gone and `EndOfSource` at the end of a file. A ``self_paced`` source
    blocks in ``grab()`` until the next frame (a device); otherwise the reader calls ``grab()`` at ``fps``.
    """

    size: tuple[int, int]
    """Frame (H, W); known before ``open()``."""
    fps: float
    """Frames per second the source delivers."""
    self_paced: bool = False
    has_depth: bool = False
    """Every grab gives a `Captured` with ``depth``: the camera also reads ``depth/<name>``."""

    def open(self) -> None:
        """Open the device or file (raise `SourceDisconnected` when it is not there yet)."""

    def grab(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file; safe to call when not open."""


class ThreadedCamera(DeviceBase):
    """A `Camera` keyed ``images/<name>`` whose frames a background thread grabs (module docstring).

    Args:
        name: camera name; the observation key is ``images/<name>``.
        source: the `FrameSource` the thread grabs from.
        max_age: default ``max_age`` (seconds) of ``read_latest()``.
        first_frame_timeout: seconds ``connect()`` waits for the first frame before raising `CameraError`.
        retry_s: seconds between reopen attempts after the source disconnected.
    """

    def __init__(self, name: str, source: FrameSource, max_age: float = 0.1, first_frame_timeout: float = 5.0,
                 retry_s: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, clock)
        if not max_age > 0:
            raise CameraError(f"camera {name!r}: max_age={max_age!r}; expected seconds > 0.")
        self.source = source
        self.max_age = float(max_age)
        self.first_frame_timeout = float(first_frame_timeout)
        self.retry_s = float(retry_s)
        self.key = spaces.image_key(name)
        self.depth_key = spaces.depth_key(name) if source.has_depth else None
        h, w = source.size
        space = {self.key: gym.spaces.Box(0, 255, (h, w, 3), np.uint8)}
        if self.depth_key is not None:
            space[self.depth_key] = gym.spaces.Box(0.0, np.inf, (h, w), np.float32)
        self.observation_space = gym.spaces.Dict(space)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._frame: np.ndarray | None = None
        self._depth: np.ndarray | None = None
        self._t = -np.inf
        self._n = -1              # number of the newest frame (0-based since connect)
        self._n_read = -1         # number of the frame the last read returned
        self._newest_read = True  # whether the newest frame has been read
        self._counts = dict(grabbed=0, read_twice=0, dropped=0, disconnects=0, reconnects=0)
        self.ended = False
        self.error: BaseException | None = None

    # lifecycle ------------------------------------------------------------------------------------------
    def _open(self) -> None:
        self._reset_state()
        self._stop.clear()
        self.source.open()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.first_frame_timeout
        while self._n < 0 and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.002)
        if self._n < 0:
            self._shutdown()
            why = f": {self.error}" if self.error else ""
            raise CameraError(f"camera {self.name!r} delivered no frame within {self.first_frame_timeout} s of "
                              f"connect(){why}; check that the device or file is there and streams.")

    def _close(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.source.close()

    # the grabbing thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        src = self.source
        period = 1.0 / src.fps if src.fps and not src.self_paced else 0.0
        next_t = time.monotonic()
        while not self._stop.is_set():
            if period:
                delay = next_t - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                next_t = max(next_t + period, time.monotonic() - period)  # behind by > a frame: resync
            try:
                frame = src.grab()
            except SourceDisconnected:
                if not self._reconnect():
                    return
                next_t = time.monotonic()
                continue
            except EndOfSource:
                self.ended = True
                return
            except Exception as e:  # noqa: BLE001 - kept for the caller: read_latest names it
                self.error = e
                return
            if frame is None:
                continue
            depth, t = None, None
            if isinstance(frame, Captured):
                frame, depth, t = frame.color, frame.depth, frame.t_capture
            t = float(self.clock()) if t is None else float(t)
            with self._lock:
                if not self._newest_read:
                    self._counts["dropped"] += 1
                self._frame, self._depth, self._t, self._n, self._newest_read = frame, depth, t, self._n + 1, False
                self._counts["grabbed"] += 1

    def _reconnect(self) -> bool:
        """Reopen the source every ``retry_s`` until it is back (True) or the camera stops (False)."""
        with self._lock:
            self._counts["disconnects"] += 1
        self.source.close()
        while not self._stop.wait(self.retry_s):
            try:
                self.source.open()
            except SourceDisconnected:
                continue
            except Exception as e:  # noqa: BLE001 - kept for the caller: read_latest names it
                self.error = e
                return False
            with self._lock:
                self._counts["reconnects"] += 1
            return True
        return False

    # reading --------------------------------------------------------------------------------------------
    def read(self) -> Reading:
        """The newest frame whatever its age, stamped with its capture time (never waits on the camera)."""
        self._require_connected("read()")
        with self._lock:
            frame, depth, t, n = self._frame, self._depth, self._t, self._n
            if n == self._n_read:
                self._counts["read_twice"] += 1
            self._n_read, self._newest_read = n, True
        values = {self.key: frame.copy()}
        if self.depth_key is not None:
            values[self.depth_key] = depth.copy()
        return Reading(values, t)

    def read_latest(self, max_age: float | None = None) -> Reading:
        """The newest frame if it is not older than ``max_age`` seconds (default: the camera's), else
        `StaleFrameError` naming the camera, the frame's age and ``max_age``."""
        self._require_connected("read_latest()")
        max_age = self.max_age if max_age is None else float(max_age)
        with self._lock:
            t = self._t
        age = float(self.clock()) - t
        if age > max_age:
            why = " (the file ended)" if self.ended else f" (grab thread stopped: {self.error})" if self.error else ""
            raise StaleFrameError(f"camera {self.name!r}: newest frame is {age * 1e3:.1f} ms old, older than "
                                  f"max_age={max_age * 1e3:.1f} ms{why}; the camera stalled or was unplugged, or "
                                  "max_age is below the camera's frame period.")
        return self.read()

    @property
    def frame_number(self) -> int:
        """Number of the newest frame grabbed since ``connect()`` (-1 before any)."""
        return self._n

    def counters(self) -> dict[str, int]:
        """grabbed, read_twice, dropped, disconnects, reconnects since ``connect()`` (module docstring)."""
        with self._lock:
            return dict(self._counts)

    def pairing(self) -> dict[str, object]:
        """The tick/frame pairing rule and its settings, to record with an episode."""
        return {"rule": PAIRING_RULE, "max_age_s": self.max_age, "camera_fps": float(self.source.fps)}
