"""`FakeForceTorqueSensor` and `FakeTactileSensor`: signals that are functions of capture time.

Both compute their value when read: what the sensor saw at ``t_capture = clock() - lag``, plus seeded
Gaussian noise (the same seed gives the same noise sequence). Values are clipped into their spaces, as
a real sensor saturates at its range.

Example::

    with FakeForceTorqueSensor(wrench=(0, 0, -5, 0, 0, 0), noise=0.1) as ft:
        ft.read().values["force"]        # (6,) float32, about -5 N along z
    with FakeTactileSensor("left_finger", shape=(4, 4)) as pad:
        pad.read().values["tactile/left_finger"]   # (4, 4) float32 pressures in [0, 1]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading

__all__ = ["FakeForceTorqueSensor", "FakeTactileSensor"]

FORCE_RANGE = 100.0  # N, saturation of fx, fy, fz
TORQUE_RANGE = 10.0  # N m, saturation of tx, ty, tz


class _Capture:
    """What both fake sensors share (a component): capture time = clock() - lag, never earlier than the
    previous one; a seeded noise stream, restarted at each connect; values clipped into their space."""

    def __init__(self, owner: str, lag: float, noise: float, seed: int) -> None:
        if not lag >= 0:
            raise ValueError(f"{owner}: lag={lag!r}; expected seconds >= 0.")
        if not noise >= 0:
            raise ValueError(f"{owner}: noise={noise!r}; expected a standard deviation >= 0.")
        self.lag, self.noise, self.seed = float(lag), float(noise), int(seed)
        self.restart()

    def restart(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._last = -np.inf

    def stamp(self, now: float) -> float:
        self._last = max(float(now) - self.lag, self._last)
        return self._last

    def measure(self, value: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64).reshape(space.shape)
        if self.noise:
            value = value + self._rng.normal(0.0, self.noise, value.shape)
        return np.clip(value, space.low, space.high).astype(np.float32)


class FakeForceTorqueSensor(DeviceBase):
    """A `ForceTorqueSensor` (key ``force``, (6,) float32: N and N m).

    Args:
        name: device name.
        wrench: a constant (6,) wrench, or a function of capture time returning one (default: zeros).
        noise: standard deviation of the added noise (N / N m).
        lag: capture-to-read delay (s).
        seed: noise seed.
        clock: monotonic seconds.
    """

    def __init__(self, name: str = "ft", wrench: Sequence[float] | Callable[[float], Sequence[float]] | None = None,
                 noise: float = 0.0, lag: float = 0.0, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, clock)
        self.capture = _Capture(type(self).__name__, lag, noise, seed)
        limit = np.array([FORCE_RANGE] * 3 + [TORQUE_RANGE] * 3, np.float32)
        self.observation_space = gym.spaces.Dict({spaces.FORCE: gym.spaces.Box(-limit, limit, dtype=np.float32)})
        if wrench is not None and not callable(wrench):
            constant = np.asarray(wrench, dtype=np.float64)
            if constant.shape != (6,) or not np.all(np.isfinite(constant)):
                raise ValueError(f"FakeForceTorqueSensor: wrench={wrench!r}; expected 6 finite values "
                                 "(fx, fy, fz, tx, ty, tz) or a function of time.")
            wrench = lambda t, c=constant: c  # noqa: E731
        self.wrench = wrench or (lambda t: np.zeros(6))

    def _open(self) -> None:
        self.capture.restart()

    def read(self) -> Reading:
        self._require_connected("read()")
        t = self.capture.stamp(self.clock())
        return Reading({spaces.FORCE: self.capture.measure(self.wrench(t), self.observation_space[spaces.FORCE])}, t)


class FakeTactileSensor(DeviceBase):
    """A `TactileSensor` (key ``tactile/<name>``, (rows, cols) float32 pressures in [0, max_pressure]).

    A pressure blob circles the pad once every `period` seconds.

    Args:
        name: sensor name; the key is ``tactile/<name>``.
        shape: taxel grid (rows, cols).
        max_pressure: the sensor's range (pressures saturate there).
        period: seconds per turn of the blob.
        noise, lag, seed, clock: as for `FakeForceTorqueSensor`.
    """

    def __init__(self, name: str = "finger", shape: Sequence[int] = (4, 4), max_pressure: float = 1.0,
                 period: float = 2.0, noise: float = 0.0, lag: float = 0.0, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, clock)
        try:
            rows, cols = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise ValueError(f"FakeTactileSensor: shape={shape!r}; expected (rows, cols), two positive integers.") from None
        if rows < 1 or cols < 1 or not max_pressure > 0 or not period > 0:
            raise ValueError(f"FakeTactileSensor: shape={shape!r}, max_pressure={max_pressure!r}, period={period!r}; "
                             "expected positive values.")
        self.capture = _Capture(type(self).__name__, lag, noise, seed)
        self.shape, self.max_pressure, self.period = (rows, cols), float(max_pressure), float(period)
        self.key = spaces.tactile_key(name)
        self.observation_space = gym.spaces.Dict({self.key: gym.spaces.Box(0.0, self.max_pressure, (rows, cols),
                                                                           np.float32)})

    def _open(self) -> None:
        self.capture.restart()

    def pressure(self, t: float) -> np.ndarray:
        """The noiseless pressure image (rows, cols) at time `t`."""
        rows, cols = self.shape
        angle = 2 * np.pi * t / self.period
        cy, cx = (rows - 1) / 2 * (1 + 0.6 * np.sin(angle)), (cols - 1) / 2 * (1 + 0.6 * np.cos(angle))
        y, x = np.mgrid[0:rows, 0:cols]
        return self.max_pressure * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 2.0)

    def read(self) -> Reading:
        self._require_connected("read()")
        t = self.capture.stamp(self.clock())
        return Reading({self.key: self.capture.measure(self.pressure(t), self.observation_space[self.key])}, t)
