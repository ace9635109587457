"""The device contract: what a robot, a camera, a sensor or a teleop device promises robolearn.

Every device has an explicit lifecycle (LeRobot's `robots/robot.py` is the model):

- ``connect()`` / ``disconnect()``, both idempotent, or a ``with`` block (which disconnects on the way
  out, also on an exception); ``is_connected`` says which state the device is in;
- its spaces are plain attributes, readable while disconnected (a config can be checked, a store
  created, a policy matched, before any hardware is touched);
- used while disconnected it raises `DeviceNotConnectedError` (one sentence naming the device).

Sensors (robots included) declare ``observation_space``: a `gymnasium.spaces.Dict` keyed by the
feature vocabulary of `robolearn.spaces` (``state``, ``images/<camera>``, ``depth/<camera>``,
``tactile/<sensor>``, ``force``), and ``read()`` returns a `Reading`: those values plus the monotonic
time they were captured (a camera frame's exposure, not the moment ``read()`` returned). A `RobotEnv`
merges the readings of its devices into one observation, and their capture times into
``info["timestamps"]``.

A `Robot` also takes commands: ``send_action(a)`` clips ``a`` to ``action_space`` (and whatever else
the driver enforces) and returns what it really sent, which is what gets recorded; ``hold()`` keeps the
robot still (see `Robot.hold`: the last target sent, never a fresh reading of the measured position).

Example::

    with FakeRobot() as robot, FakeCamera("front") as cam:
        reading = robot.read()                      # Reading(values={"state": (Do,)}, t_capture=...)
        sent = robot.send_action(np.ones(robot.action_space.shape, np.float32))  # clipped, as sent
        frame = cam.read().values["images/front"]   # (H, W, 3) uint8
        robot.hold()                                 # resends `sent`
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

__all__ = ["EVENTS", "TAKEOVER", "Camera", "Device", "DeviceFaultError", "DeviceNotConnectedError", "DrivableTeleop",
           "ForceTorqueSensor", "PairedCamera", "Reading", "Robot", "Sensor", "TactileSensor", "Teleop"]

TAKEOVER = "takeover"
"""The key that hands control between the policy and the teleop device during ``robolearn deploy --teleop``
(`robolearn.runtime.takeover`); recording ignores it."""
EVENTS = ("save", "discard", "rerecord", "quit", TAKEOVER)
"""Episode keys a teleop device reports through ``events()``."""


class DeviceNotConnectedError(RuntimeError):
    """A device was used while disconnected (or connected while it cannot be)."""


class DeviceFaultError(RuntimeError):
    """A connected device stopped delivering (a camera gone or stalled past its ``max_age``).

    Recording ends the episode in progress as ``aborted`` on this and on any ``OSError`` (a servo bus that
    stops answering, a serial port that vanished): `robolearn.record.robot.DEVICE_FAULTS`."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What one ``read()`` returns: values keyed as in the device's ``observation_space``, and when
    they were captured (monotonic seconds on the device's clock)."""

    values: dict[str, np.ndarray]
    t_capture: float


@runtime_checkable
class Device(Protocol):
    """The lifecycle every device shares."""

    name: str
    """Short name (a camera's name becomes its key ``images/<name>``)."""

    @property
    def is_connected(self) -> bool: ...

    def connect(self) -> None:
        """Open the device; calling it again while connected does nothing."""

    def disconnect(self) -> None:
        """Release the device; calling it again while disconnected does nothing."""

    def __enter__(self) -> Device: ...

    def __exit__(self, *exc: object) -> None:
        """Disconnect, also when the block raised (the exception propagates)."""


@runtime_checkable
class Sensor(Device, Protocol):
    """A device that is read: a camera, a force/torque sensor, a tactile sensor (and every robot)."""

    observation_space: gym.spaces.Dict
    """Keys from `robolearn.spaces`, each a Box with a fixed dtype and shape; readable while disconnected."""

    def read(self) -> Reading:
        """The newest values (inside ``observation_space``) with their capture time; never blocks for long."""


@runtime_checkable
class Camera(Sensor, Protocol):
    """A camera: ``observation_space`` holds ``images/<name>`` (H, W, 3) uint8 (and ``depth/<name>``
    float32 (H, W) for a depth camera); ``read()`` returns the newest frame, stamped with its capture time."""


@runtime_checkable
class PairedCamera(Camera, Protocol):
    """A camera read by its own thread at its own rate, paired with control ticks by a stated rule.

    A `RobotEnv` reads such a camera with ``read_latest()``: the newest frame not older than the camera's
    ``max_age`` (else it raises a `DeviceFaultError`), and records ``pairing()`` and ``counters()`` with
    each episode (robolearn-hardware's ``ThreadedCamera`` is one)."""

    def read_latest(self, max_age: float | None = None) -> Reading:
        """The newest frame if it is not older than ``max_age`` seconds (default: the camera's own)."""

    def pairing(self) -> dict[str, object]:
        """The tick/frame pairing rule and its settings (rule, max_age_s, camera_fps)."""

    def counters(self) -> dict[str, int]:
        """Frame counters since ``connect()`` (grabbed, dropped, read_twice, disconnects, reconnects)."""


@runtime_checkable
class ForceTorqueSensor(Sensor, Protocol):
    """A wrench sensor: ``observation_space`` holds ``force``, float32 (6,) (fx, fy, fz in N, tx, ty, tz in N m)."""


@runtime_checkable
class TactileSensor(Sensor, Protocol):
    """A tactile sensor: ``observation_space`` holds ``tactile/<name>`` (float32 taxels, or a uint8
    (H, W, 3) tactile image)."""


@runtime_checkable
class Robot(Sensor, Protocol):
    """An actuated robot: ``read()`` gives at least ``state`` (Do,) float32; it takes target commands."""

    action_space: gym.spaces.Box
    """float32 (Da,) Box with finite bounds; readable while disconnected."""

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Send one command (Da,); returns the command really sent (clipped to ``action_space``, float32)."""

    def hold(self) -> np.ndarray:
        """Keep the robot still and return the command that does it (the one hold rule of robolearn):

        resend the last target sent since ``connect()``; before any, send the measured position as the
        target. Never re-read the measured position once a target exists: a position servo under
        gravity sits a little below its target, and chasing the measurement walks the arm down.
        """


@runtime_checkable
class Teleop(Device, Protocol):
    """A device a person drives the robot with, read once per control tick."""

    action_space: gym.spaces.Box
    """The env's action space the device's commands live in; readable while disconnected."""

    def reset(self) -> None:
        """A new episode starts: forget any absolute target so it restarts from where the robot is."""

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        """The action (Da,) float32 for this tick, or None when the operator gives no command (the control
        loop then holds the robot: `robolearn.runtime.hold_action`)."""

    def events(self) -> list[str]:
        """Episode keys pressed since the last call, oldest first, each one of `EVENTS`. A device without keys (a
        leader arm) returns [] and says so with a class attribute ``has_keys = False`` (absent: it has keys); deploy
        then takes its takeover key from the terminal or the live view."""


@runtime_checkable
class DrivableTeleop(Teleop, Protocol):
    """A teleop device that can be moved by its own motors (a leader arm with torque): before a takeover hands it
    control, the deploy loop drives it to the robot's pose so the handover cannot jump
    (`robolearn.runtime.takeover`)."""

    def drive_to(self, target: np.ndarray) -> None:
        """Servo the device towards ``target`` (an action of ``action_space``) under torque; returns at once
        (called once per tick until ``get_action`` agrees with the target)."""

    def release(self) -> None:
        """Let go: torque off (what was on before ``drive_to`` stays on), so the person moves the device again."""
