"""Devices behind explicit lifecycles, and the env that composes them (DESIGN.md, "Device").

- `protocols`: `Robot`, `Camera`, `ForceTorqueSensor`, `TactileSensor`, `Teleop` (+ `Reading`,
  `DeviceNotConnectedError`); `base.DeviceBase` writes the lifecycle once for drivers that want it.
- `fakes`: `FakeRobot`, `FakeCamera`, `FakeForceTorqueSensor`, `FakeTactileSensor`, `FakeTeleop`, `FakeTime`.
- `robot_env.RobotEnv`: a robot, cameras and sensors plus a `RobotTask` -> gymnasium.Env with the keys of
  its simulated twin.
- `checks.check_device`: the device contract in one call; `robolearn.env.check_env_contract` for the env.
- `registry`: `make_device(id, **kwargs)` / `device_ids()` through the ``robolearn.devices`` entry points.
- `teleop`: the keyboard and mouse devices and their window.

Example::

    from robolearn.devices import FakeCamera, FakeRobot, RobotEnv, ReachJointsTask

    env = RobotEnv(FakeRobot(), cameras=[FakeCamera("front", lag=0.03)], task=ReachJointsTask())
    obs, info = env.reset(seed=0)     # obs: state, images/front; info["timestamps"]: key -> capture time
"""

from robolearn.devices.base import DeviceBase, FakeTime
from robolearn.devices.checks import DeviceConformanceError, check_device
from robolearn.devices.fakes import FakeCamera, FakeForceTorqueSensor, FakeRobot, FakeTactileSensor, FakeTeleop
from robolearn.devices.protocols import (
    EVENTS,
    Camera,
    Device,
    DeviceFaultError,
    DeviceNotConnectedError,
    ForceTorqueSensor,
    PairedCamera,
    Reading,
    Robot,
    Sensor,
    TactileSensor,
    Teleop,
)
from robolearn.devices.registry import DeviceNotFoundError, device_ids, load_device_plugins, make_device
from robolearn.devices.robot_env import FreeTask, ReachJointsTask, RobotEnv, RobotTask

__all__ = ["EVENTS", "Camera", "Device", "DeviceBase", "DeviceConformanceError", "DeviceFaultError",
           "DeviceNotConnectedError", "PairedCamera",
           "DeviceNotFoundError", "FakeCamera", "FakeForceTorqueSensor", "FakeRobot", "FakeTactileSensor", "FakeTeleop",
           "FakeTime", "ForceTorqueSensor", "FreeTask", "ReachJointsTask", "Reading", "Robot", "RobotEnv", "RobotTask",
           "Sensor", "TactileSensor", "Teleop", "check_device", "device_ids", "load_device_plugins", "make_device"]
