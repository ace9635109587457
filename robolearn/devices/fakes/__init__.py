"""Fake devices that satisfy the device contract without hardware: for tests, and for trying a RobotEnv.

They are registered like any driver, through the ``robolearn.devices`` entry points (this package's
`register`, declared in robolearn's own pyproject.toml): ``make_device("fake-camera", lag=0.03)``.
"""

from __future__ import annotations

from collections.abc import Callable

from robolearn.devices.base import FakeTime
from robolearn.devices.fakes.camera import FakeCamera, counter_frame
from robolearn.devices.fakes.robot import FakeRobot
from robolearn.devices.fakes.sensors import FakeForceTorqueSensor, FakeTactileSensor
from robolearn.devices.fakes.teleop import FakeTeleop

__all__ = ["FakeCamera", "FakeForceTorqueSensor", "FakeRobot", "FakeTactileSensor", "FakeTeleop", "FakeTime",
           "counter_frame", "register"]


def register() -> dict[str, Callable[..., object]]:
    """Device ids of this package -> their constructors (the ``robolearn.devices`` entry point)."""
    return {
        "fake-robot": FakeRobot,
        "fake-camera": FakeCamera,
        "fake-force-torque": FakeForceTorqueSensor,
        "fake-tactile": FakeTactileSensor,
        "fake-teleop": FakeTeleop,
    }
