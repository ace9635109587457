"""`GelSightSensor`: a camera looking at a marked gel -> the marker displacement field ``tactile/<name>``.

The camera is any robolearn `Camera` (a GelSight Mini or DIGIT is a UVC camera: ``opencv_camera(index)``; tests
and demos use a ``ThreadedCamera(SyntheticGelSource(...))``). ``connect()`` connects the camera and takes
the reference (the gel at rest) from its first frame, or from the ``reference`` image given; ``read()``
tracks the markers in the newest frame and returns their displacement from the reference, (rows, cols, 2)
float32 (dx, dy in pixels, clipped to ``max_displacement``), stamped with the frame's capture time.
``rereference()`` takes the present frame as the new rest state (the gel relaxed after a long press).

Example::

    with GelSightSensor("left", opencv_camera(2, name="left_cam", size=(240, 320)), grid=(7, 9)) as pad:
        pad.read().values["tactile/left"]            # (7, 9, 2) float32 pixels
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading
from robolearn.errors import InvalidValueError

from .markers import MarkerTracker

__all__ = ["GelSightSensor"]


class GelSightSensor(DeviceBase):
    """A `TactileSensor` keyed ``tactile/<name>`` (module docstring).

    Args:
        name: sensor name; the key is ``tactile/<name>``.
        camera: the camera that sees the gel (connected and disconnected with the sensor).
        grid: (rows, cols) of markers on the gel; the space's shape is (rows, cols, 2).
        max_displacement: the space's bound (pixels); larger displacements saturate there.
        reference: the gel at rest (an image); None: the first frame after ``connect()``.
        detect: keyword arguments of `detect_markers` (threshold, areas, background_sigma).
    """

    def __init__(self, name: str, camera, grid: Sequence[int], max_displacement: float = 20.0,
                 reference: np.ndarray | None = None, **detect) -> None:
        super().__init__(name)
        try:
            rows, cols = (int(v) for v in grid)
        except (TypeError, ValueError):
            raise InvalidValueError(f"GelSightSensor {name!r}: grid={grid!r}; expected (rows, cols) of markers.") \
                from None
        if rows < 1 or cols < 1 or not max_displacement > 0:
            raise InvalidValueError(f"GelSightSensor {name!r}: grid={grid!r}, max_displacement={max_displacement!r}; "
                                    "expected positive values.")
        self.camera = camera
        self.grid = (rows, cols)
        self.max_displacement = float(max_displacement)
        self.reference_image = reference
        self.detect = detect
        self.key = spaces.tactile_key(name)
        self.observation_space = gym.spaces.Dict({self.key: gym.spaces.Box(
            -self.max_displacement, self.max_displacement, (rows, cols, 2), np.float32)})
        self.tracker: MarkerTracker | None = None
        self._lock = threading.Lock()

    def _frame(self) -> tuple[np.ndarray, float]:
        reading = self.camera.read()
        (frame,) = reading.values.values()
        return frame, reading.t_capture

    def _open(self) -> None:
        self.camera.connect()
        try:
            reference = self.reference_image if self.reference_image is not None else self._frame()[0]
            self.tracker = MarkerTracker(reference, *self.grid, **self.detect)
        except Exception:
            self.camera.disconnect()
            raise

    def _close(self) -> None:
        self.tracker = None
        self.camera.disconnect()

    def rereference(self) -> None:
        """Take the present frame as the gel at rest."""
        self._require_connected("rereference()")
        with self._lock:
            self.tracker = MarkerTracker(self._frame()[0], *self.grid, **self.detect)

    def read(self) -> Reading:
        self._require_connected("read()")
        frame, t = self._frame()
        with self._lock:
            field = self.tracker.update(frame)
        return Reading({self.key: np.clip(field, -self.max_displacement, self.max_displacement)}, float(t))

    @property
    def missed(self) -> int:
        """Markers not found in the last frame (they keep their last place)."""
        return self.tracker.missed if self.tracker is not None else 0
