"""`RobotEnv`: a robot, its cameras and sensors plus a task, behind the same gymnasium.Env as its simulated twin.

The env owns the gymnasium surface (spaces, seeding, rendering, info) and the devices' lifecycle; a
`RobotTask` says what the episode means (reward, success, its instruction). The same split as
`robolearn_envs.mujoco.env.MujocoEnv` (a `Sim` plus a `Task`), with devices in place of the simulation.

Observation (gymnasium Dict): the union of the devices' ``observation_space`` keys, e.g.
    ``state``            the robot's (Do,) float32
    ``images/<camera>``  (H, W, 3) uint8, one per camera
    ``force``            (6,) float32 from a force/torque sensor
    ``tactile/<sensor>`` per tactile sensor
Action: the robot's ``action_space``; ``step(a)`` sends ``a`` and returns the newest observation.

Cameras that are `PairedCamera`s (threaded, at their own rate) are read with ``read_latest()``: a tick takes
the newest frame not older than the camera's ``max_age``, and a staler one raises (the camera stalled or is
gone); `camera_report()` gives each one's rule and frame counters, which a recorder keeps with the episode.

``info`` from reset and step: ``timestamps`` (observation key -> capture time, monotonic seconds, from the
device that produced it), ``action`` on step (what the robot really sent: what a recorder stores) and
``success`` where the task defines it. `step` never sleeps: the `ControlLoop`'s clock paces.

Hold (robolearn's one rule, `Robot.hold`): `hold_action()` is the last action sent. ``reset()`` starts the
episode with ``robot.hold()``: the measured position on a fresh connection; after an earlier episode, the
target the robot already holds (``reset()`` cannot teleport a real robot, so nothing else is true there).

Example::

    env = RobotEnv(FakeRobot(), cameras=[FakeCamera("front")], task=ReachJointsTask())
    obs, info = env.reset(seed=0)         # connects the devices; info["timestamps"]["images/front"]
    obs, reward, terminated, truncated, info = env.step(env.hold_action())
    env.close()                           # disconnects what reset connected
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.protocols import PairedCamera, Robot, Sensor

__all__ = ["FreeTask", "ReachJointsTask", "RobotEnv", "RobotTask"]

RENDER_SIZE = (96, 96)  # (H, W) of the joint-bar picture rendered when the env has no camera


class RobotTask(abc.ABC):
    """What a task adds to devices. Subclass once per task; the env calls these and nothing else."""

    description: ClassVar[str]
    """The language instruction (also `env.task_description`)."""

    def reset(self, rng: np.random.Generator, obs: dict[str, np.ndarray]) -> None:
        """A new episode starts at `obs` (the robot is not moved); draw randomness from `rng` only."""

    @abc.abstractmethod
    def reward(self, obs: dict[str, np.ndarray]) -> float: ...

    @abc.abstractmethod
    def success(self, obs: dict[str, np.ndarray]) -> bool | None:
        """True once the task is done; None when the task does not define success (e.g. free teleop)."""


class FreeTask(RobotTask):
    """No goal: reward 0, success undefined; for free teleoperation and data collection by hand."""

    description = "free teleoperation"

    def __init__(self, description: str | None = None) -> None:
        if description is not None:
            self.description = description

    def reward(self, obs: dict[str, np.ndarray]) -> float:
        return 0.0

    def success(self, obs: dict[str, np.ndarray]) -> bool | None:
        return None


class ReachJointsTask(RobotTask):
    """Reach a joint configuration drawn at each reset inside `low`..`high`.

    Success: every joint within `tolerance` (rad) of the goal. Reward: 1 on success, else minus the
    largest joint error.
    """

    description = "move the arm to the goal joint angles"

    def __init__(self, low: float | Sequence[float] = -1.0, high: float | Sequence[float] = 1.0,
                 tolerance: float = 0.05) -> None:
        self.low, self.high, self.tolerance = np.asarray(low, float), np.asarray(high, float), float(tolerance)
        self.goal: np.ndarray | None = None

    def reset(self, rng: np.random.Generator, obs: dict[str, np.ndarray]) -> None:
        shape = obs[spaces.STATE].shape
        self.goal = rng.uniform(np.broadcast_to(self.low, shape), np.broadcast_to(self.high, shape))

    def error(self, obs: dict[str, np.ndarray]) -> float:
        if self.goal is None:
            raise RuntimeError("ReachJointsTask: reset() before reward() or success().")
        return float(np.max(np.abs(obs[spaces.STATE] - self.goal)))

    def reward(self, obs: dict[str, np.ndarray]) -> float:
        return 1.0 if self.success(obs) else -self.error(obs)

    def success(self, obs: dict[str, np.ndarray]) -> bool:
        return self.error(obs) < self.tolerance


class RobotEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Devices plus a task behind gymnasium (module docstring); `terminated` is True on success.

    Args:
        robot: the `Robot` (its ``state`` and any other keys it reads; its action space is the env's).
        cameras: `Camera` devices (keys ``images/<name>``).
        sensors: other `Sensor` devices: force/torque (``force``), tactile (``tactile/<name>``).
        task: what the episode means (default: `FreeTask`).
        control_hz: the rate the env is meant to be stepped at (the loop's clock keeps it).
        render_camera: the camera `render()` shows (default: the first; with none, a joint-bar picture).
        render_mode: "rgb_array" or None.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10.0}

    def __init__(self, robot: Robot, cameras: Sequence[Sensor] = (), sensors: Sequence[Sensor] = (),
                 task: RobotTask | None = None, control_hz: float = 10.0, render_camera: str | None = None,
                 render_mode: str | None = "rgb_array") -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; accepted values: 'rgb_array', None.")
        if not control_hz > 0:
            raise ValueError(f"control_hz={control_hz!r}; expected a positive rate in Hz.")
        self.robot = robot
        self.cameras = tuple(cameras)
        self.sensors = tuple(sensors)
        self.devices: tuple[Sensor, ...] = (robot, *self.cameras, *self.sensors)
        self.task = task or FreeTask()
        self.task_description = self.task.description
        self.control_hz = float(control_hz)
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self.render_mode = render_mode

        owner: dict[str, str] = {}
        merged: dict[str, gym.Space] = {}
        for device in self.devices:
            for key, space in device.observation_space.spaces.items():
                if key in owner:
                    raise ValueError(f"observation key {key!r} comes from both {owner[key]!r} and {device.name!r}; "
                                     "give each device its own name.")
                owner[key], merged[key] = device.name, space
        if spaces.STATE not in merged:
            raise ValueError(f"robot {robot.name!r} reads no {spaces.STATE!r}; its observation_space keys are "
                             f"{sorted(robot.observation_space.spaces)}.")
        self.observation_space = gym.spaces.Dict(merged)
        self.action_space = robot.action_space
        self._camera_keys = {cam.name: key for cam in self.cameras for key in cam.observation_space.spaces
                             if key.startswith(spaces.IMAGES)}
        if render_camera is not None and render_camera not in self._camera_keys:
            raise ValueError(f"render_camera={render_camera!r} is not one of the cameras "
                             f"({', '.join(self._camera_keys) or 'none'}).")
        self.render_camera = render_camera or next(iter(self._camera_keys), None)
        # Threaded cameras are paired with the tick by their rule: the newest frame not older than max_age.
        self._paired = tuple(cam for cam in self.cameras if isinstance(cam, PairedCamera))
        self._connected_here: list[Sensor] = []
        self._obs: dict[str, np.ndarray] | None = None
        self._hold: np.ndarray | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect every device not connected yet (``reset()`` does this; `close()` undoes it)."""
        for device in self.devices:
            if not device.is_connected:
                try:
                    device.connect()
                except BaseException:
                    self.close()
                    raise
                self._connected_here.append(device)

    def close(self) -> None:
        """Disconnect the devices this env connected (devices connected by the caller stay connected)."""
        while self._connected_here:
            self._connected_here.pop().disconnect()
        self._obs = self._hold = None

    # ---- gymnasium API ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.connect()
        self._hold = np.asarray(self.robot.hold(), dtype=np.float32)  # the measured position, latched
        obs, stamps = self._read()
        self.task.reset(self.np_random, obs)
        return obs, self._info(obs, stamps)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._hold is None:
            raise RuntimeError("call reset() before step().")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}; expected {self.action_space.shape}.")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action {action.tolist()} contains NaN or inf; expected finite values inside "
                             f"{self.action_space}.")
        clock = getattr(self.robot, "clock", time.monotonic)  # devices without DeviceBase stamp on the host clock
        sent = np.asarray(self.robot.send_action(action), dtype=np.float32)
        t_sent = float(clock())
        self._hold = sent.copy()
        obs, stamps = self._read()
        stamps[spaces.ACTION] = t_sent  # the action's stamp: when it went to the robot, on the devices' clock
        info = self._info(obs, stamps)
        info["action"] = sent
        return obs, float(self.task.reward(obs)), bool(info.get("success", False)), False, info

    def render(self) -> np.ndarray | None:
        """The `render_camera`'s newest frame (H, W, 3) uint8, or joint bars when the env has no camera."""
        if self.render_mode is None:
            return None
        if self._obs is None:
            raise RuntimeError("call reset() before render().")
        if self.render_camera is not None:
            return self._obs[self._camera_keys[self.render_camera]].copy()
        return _joint_bars(self._obs[spaces.STATE], self.observation_space[spaces.STATE])

    # ---- robolearn extras ------------------------------------------------------------------------

    def hold_action(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The action that keeps the robot still: the last action sent (at episode start, what ``robot.hold()``
        latched: the measured position on a fresh connection)."""
        if self._hold is None:
            raise RuntimeError("call reset() before hold_action().")
        return self._hold.copy()

    def camera_report(self) -> dict[str, dict[str, dict]]:
        """Per `PairedCamera` (by name): ``pairing`` (its rule and settings) and ``counters`` (frames since
        connect: grabbed, dropped, read_twice, disconnects, reconnects)."""
        return {cam.name: {"pairing": cam.pairing(), "counters": cam.counters()} for cam in self._paired}

    def _read(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        obs: dict[str, np.ndarray] = {}
        stamps: dict[str, float] = {}
        for device in self.devices:
            reading = device.read_latest() if device in self._paired else device.read()
            for key, value in reading.values.items():
                obs[key] = np.asarray(value)
                stamps[key] = float(reading.t_capture)
        self._obs = obs
        return obs, stamps

    def _info(self, obs: dict[str, np.ndarray], stamps: dict[str, float]) -> dict[str, Any]:
        info: dict[str, Any] = {"timestamps": stamps}
        success = self.task.success(obs)
        if success is not None:
            info["success"] = bool(success)
        return info


def _joint_bars(state: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """One vertical bar per state entry, its height the entry's place between the space's bounds; an entry
    with an infinite bound (a servo arm's state is unbounded) is drawn on 0.5 + atan(x / 90) / pi, so 0 is the
    middle and +-90 (degrees) a quarter from either end."""
    h, w = RENDER_SIZE
    frame = np.full((h, w, 3), 30, np.uint8)
    n = max(state.shape[0], 1)
    state = np.nan_to_num(np.asarray(state, np.float64), nan=0.0)
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    bounded = np.isfinite(low) & np.isfinite(high) & (high > low)
    span = np.where(bounded, high - low, 1.0)
    linear = (state - np.where(bounded, low, 0.0)) / span
    level = np.clip(np.where(bounded, linear, 0.5 + np.arctan(state / 90.0) / np.pi), 0.0, 1.0)
    width = max(w // n, 1)
    for i, v in enumerate(level):
        top = h - int(round(v * (h - 1))) - 1
        frame[top:, i * width:(i + 1) * width - 1] = (80, 180, 255)
    return frame
