"""`FakeRobot`: a position-servo arm in a few lines of physics, for tests and for trying robolearn without one.

Each joint is a position servo that moves toward its target at no more than `max_speed` (rad/s), on
the device's clock: the motion between two calls is integrated over the time that really passed
(`FakeTime` makes it deterministic). Under gravity a proportional servo settles a little *below* its
target: joint i settles at ``target[i] - sag[i]`` (clipped to the joint limits). That is what makes the
hold rule matter: resending the last target keeps the arm where it is, while sending the measured
position as the new target walks it down by `sag` every time.

Before the first target after ``connect()`` the joints stay where they are (brakes on); ``hold()`` then
latches the measured position as the target.

Example::

    with FakeRobot(n_joints=3, sag=(0.0, 0.05, 0.02)) as robot:
        q = robot.read().values["state"]   # (3,) float32 joint positions, rad
        robot.send_action(q + 0.1)         # absolute joint targets, clipped to the limits
        robot.hold()                       # resends q + 0.1
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading

__all__ = ["FakeRobot"]

JOINT_LIMIT = 2.0  # rad, default symmetric limit of every joint
MAX_SPEED = 1.0  # rad/s, default servo speed limit


class FakeRobot(DeviceBase):
    """A `Robot` with `n_joints` position-servo joints (module docstring).

    Args:
        name: device name.
        n_joints: Da = Do.
        low, high: joint limits (rad), scalars or (n_joints,); also the action bounds.
        max_speed: servo speed limit (rad/s).
        sag: steady-state droop under gravity (rad, >= 0), scalar or (n_joints,); 0 = a perfect servo.
        start: joint positions at the first ``connect()`` (default: mid-range).
        clock: monotonic seconds (default `time.monotonic`; `FakeTime` for deterministic tests).
    """

    def __init__(self, name: str = "fake_arm", n_joints: int = 3, low: float | Sequence[float] = -JOINT_LIMIT,
                 high: float | Sequence[float] = JOINT_LIMIT, max_speed: float = MAX_SPEED,
                 sag: float | Sequence[float] = 0.0, start: Sequence[float] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, clock)
        if not (isinstance(n_joints, int) and n_joints >= 1):
            raise ValueError(f"FakeRobot: n_joints={n_joints!r}; expected an integer >= 1.")
        self.low = self._per_joint(low, n_joints, "low")
        self.high = self._per_joint(high, n_joints, "high")
        if not np.all(self.low < self.high):
            raise ValueError(f"FakeRobot: low {self.low.tolist()} must be below high {self.high.tolist()} for every joint.")
        if not max_speed > 0:
            raise ValueError(f"FakeRobot: max_speed={max_speed!r}; expected a positive speed in rad/s.")
        self.max_speed = float(max_speed)
        self.sag = self._per_joint(sag, n_joints, "sag")
        if np.any(self.sag < 0):
            raise ValueError(f"FakeRobot: sag={self.sag.tolist()}; expected droops >= 0 rad.")
        q0 = (self.low + self.high) / 2 if start is None else self._per_joint(start, n_joints, "start")
        self._q = np.clip(q0, self.low, self.high)
        self._target: np.ndarray | None = None
        self._t = 0.0
        box = gym.spaces.Box(self.low.astype(np.float32), self.high.astype(np.float32), dtype=np.float32)
        self.observation_space = gym.spaces.Dict({spaces.STATE: box})
        self.action_space = gym.spaces.Box(self.low.astype(np.float32), self.high.astype(np.float32), dtype=np.float32)

    @staticmethod
    def _per_joint(value: float | Sequence[float], n: int, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        arr = np.full(n, float(arr)) if arr.ndim == 0 else arr
        if arr.shape != (n,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"FakeRobot: {what}={value!r}; expected a finite scalar or {n} values (one per joint).")
        return arr.copy()

    # ---- physics ---------------------------------------------------------------------------------

    def _advance(self) -> float:
        now = float(self.clock())
        dt = max(now - self._t, 0.0)
        self._t = max(now, self._t)
        if self._target is not None and dt > 0:
            goal = np.clip(self._target - self.sag, self.low, self.high)
            reach = self.max_speed * dt
            self._q = self._q + np.clip(goal - self._q, -reach, reach)
        return self._t

    @property
    def position(self) -> np.ndarray:
        """The joint positions (rad) now, without a read (for tests)."""
        self._advance()
        return self._q.copy()

    @property
    def target(self) -> np.ndarray | None:
        """The last target sent since ``connect()`` (None before any)."""
        return None if self._target is None else self._target.copy()

    # ---- the Robot contract ----------------------------------------------------------------------

    def _open(self) -> None:
        self._t = float(self.clock())
        self._target = None

    def _close(self) -> None:
        self._advance()
        self._target = None  # torque off: the arm rests where it is until the next target

    def read(self) -> Reading:
        self._require_connected("read()")
        t = self._advance()
        return Reading({spaces.STATE: np.clip(self._q, self.low, self.high).astype(np.float32)}, t)

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._require_connected("send_action()")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"FakeRobot {self.name!r}: action has shape {action.shape}; expected "
                             f"{self.action_space.shape} (one target per joint, rad).")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"FakeRobot {self.name!r}: action {action.tolist()} contains NaN or inf; expected "
                             "finite joint targets.")
        self._advance()  # the motion so far followed the previous target
        sent = np.clip(action, self.action_space.low, self.action_space.high).astype(np.float32)
        self._target = sent.astype(np.float64)
        return sent.copy()

    def hold(self) -> np.ndarray:
        self._require_connected("hold()")
        if self._target is None:
            self._advance()
            return self.send_action(self._q.astype(np.float32))
        return self.send_action(self._target.astype(np.float32))
