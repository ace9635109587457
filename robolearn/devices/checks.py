"""`check_device`: the whole device contract in one call, for every driver and every fake.

A new driver gets its contract test from a three-line test file::

    from robolearn.devices import check_device

    def test_my_camera():
        check_device(MyCamera("wrist"))

What is checked (see `robolearn.devices.protocols`):
  - the device comes disconnected, and its spaces are readable then: ``observation_space`` a Dict keyed
    by the feature vocabulary of `robolearn.spaces`, each key following its family's rule;
    ``action_space`` (robots, teleop devices) a float32 (Da,) Box with finite bounds;
  - used while disconnected (``read()``, ``send_action()``, ``hold()``, ``get_action()``) it raises
    `DeviceNotConnectedError` with one sentence that names the device;
  - ``connect()`` and ``disconnect()`` are idempotent and ``is_connected`` follows them;
  - ``read()`` returns a `Reading` whose values match ``observation_space`` exactly (keys, dtype, shape,
    bounds) with a finite capture time that never goes back;
  - a robot's ``hold()`` returns a command inside ``action_space``; ``send_action()`` of a command beyond
    the bounds returns what was really sent, inside ``action_space``; ``hold()`` then resends exactly that;
  - a teleop device's ``get_action()`` is None or a float32 (Da,) action inside its space, and
    ``events()`` a list of `EVENTS`;
  - a ``with`` block disconnects, also when its body raises (and the exception propagates).
Every failure raises `DeviceConformanceError` (an AssertionError) with one sentence naming the device,
the call and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.devices.protocols import EVENTS, DeviceNotConnectedError, Reading, Robot, Sensor, Teleop
from robolearn.env.checks import ConformanceError, _describe, check_observation
from robolearn.spaces import ACTION, OBSERVATION_FAMILIES, Spec, SpecError, check_key, describe_keys

__all__ = ["DeviceConformanceError", "check_device"]


class DeviceConformanceError(AssertionError):
    """A device breaks the device contract; the message names the device, the call and what was expected."""


class _Probe(Exception):
    """Raised inside a with block to check that the device disconnects on an exception."""


def check_device(device: Any, reads: int = 3, motion: bool = True) -> None:
    """Run the whole device contract (module docstring) on a disconnected `device`; it is left disconnected.

    Args:
        device: a `Robot`, a `Sensor` (camera, force/torque, tactile) or a `Teleop`, not yet connected.
        reads: how many reads (and teleop ticks) to check.
        motion: let the robot check send one command beyond the bounds (the robot moves to a limit); with
            False a robot is only sent its hold. Use False on real hardware with people around.
    """
    who = f"{type(device).__name__} {getattr(device, 'name', '?')!r}"
    kind = "robot" if isinstance(device, Robot) else "sensor" if isinstance(device, Sensor) else \
        "teleop" if isinstance(device, Teleop) else None
    if kind is None:
        _fail(f"{who} is none of Robot, Sensor (camera, force/torque, tactile) or Teleop; expected the attributes "
              "and methods of one of the protocols in robolearn.devices.protocols.")
    if device.is_connected:
        _fail(f"{who} is connected before connect(); expected a device that opens nothing until connect().")
    _check_spaces(device, who, kind)
    _check_refuses_while_disconnected(device, who, kind)

    device.connect()
    device.connect()
    if not device.is_connected:
        _fail(f"{who}.is_connected is False after connect(); expected True.")
    try:
        if kind in ("robot", "sensor"):
            _check_reads(device, who, reads)
        if kind == "robot":
            _check_commands(device, who, motion)
        if kind == "teleop":
            _check_teleop(device, who, reads)
    finally:
        device.disconnect()
    device.disconnect()
    if device.is_connected:
        _fail(f"{who}.is_connected is True after disconnect(); expected False.")
    _check_refuses_while_disconnected(device, who, kind, after="disconnect()")

    try:
        with device as entered:
            if entered is not device or not device.is_connected:
                _fail(f"{who}: `with device as d` gave {entered!r} (connected: {device.is_connected}); expected the "
                      "device itself, connected.")
            raise _Probe
    except _Probe:
        pass
    else:
        _fail(f"{who}: an exception raised inside `with device:` did not propagate; expected __exit__ to return None.")
    if device.is_connected:
        _fail(f"{who} is still connected after an exception inside `with device:`; expected __exit__ to disconnect.")


def _fail(message: str) -> None:
    raise DeviceConformanceError(message)


def _check_spaces(device: Any, who: str, kind: str) -> None:
    if kind in ("robot", "sensor"):
        space = device.observation_space
        if not isinstance(space, gym.spaces.Dict) or not space.spaces:
            _fail(f"{who}.observation_space is {space!r}; expected a non-empty gymnasium.spaces.Dict keyed by "
                  f"{describe_keys(OBSERVATION_FAMILIES)}.")
        for key, sub in space.spaces.items():
            try:
                check_key(key, OBSERVATION_FAMILIES)
                Spec.from_space(sub, key)
            except SpecError as e:
                _fail(f"{who}.observation_space key {key!r} breaks the feature rules: {e}")
    if kind in ("robot", "teleop"):
        try:
            Spec.from_space(device.action_space, ACTION)
        except SpecError as e:
            _fail(f"{who}.action_space {device.action_space} breaks the rule of 'action': {e}")


def _check_refuses_while_disconnected(device: Any, who: str, kind: str, after: str = "construction") -> None:
    calls: list[tuple[str, Callable[[], Any]]] = []
    if kind in ("robot", "sensor"):
        calls.append(("read()", device.read))
    if kind == "robot":
        calls.append(("send_action()", lambda: device.send_action(device.action_space.low.copy())))
        calls.append(("hold()", device.hold))
    if kind == "teleop":
        calls.append(("get_action()", lambda: device.get_action({})))
    for call, fn in calls:
        try:
            fn()
        except DeviceNotConnectedError as e:
            message = str(e).strip()
            if "not connected" not in message or device.name not in message or "\n" in message:
                _fail(f"{who}.{call} while disconnected said {message!r}; expected one sentence naming the device "
                      f"({device.name!r}) and saying it is not connected.")
        except Exception as e:  # noqa: BLE001 - any other failure is the finding
            _fail(f"{who}.{call} while disconnected (after {after}) raised {type(e).__name__}: {e}; expected "
                  "DeviceNotConnectedError.")
        else:
            _fail(f"{who}.{call} while disconnected (after {after}) returned; expected DeviceNotConnectedError.")


def _check_reads(device: Any, who: str, reads: int) -> None:
    last = -np.inf
    for i in range(max(reads, 2)):
        reading = device.read()
        where = f"{who}.read() #{i}"
        if not isinstance(reading, Reading):
            _fail(f"{where} returned a {type(reading).__name__}; expected a robolearn.devices.Reading.")
        try:
            check_observation(device.observation_space, reading.values, where)
        except ConformanceError as e:
            _fail(f"{where}: {e}")
        t = reading.t_capture
        if not (isinstance(t, (float, np.floating)) and np.isfinite(t)):
            _fail(f"{where} has t_capture {t!r}; expected the capture time as a finite float (monotonic seconds).")
        if t < last:
            _fail(f"{where} has t_capture {t}, earlier than the previous read's {last}; expected capture times that "
                  "never go back.")
        last = t


def _check_commands(robot: Any, who: str, motion: bool) -> None:
    space = robot.action_space
    held = _check_command(robot.hold(), space, f"{who}.hold() (before any command)")
    again = _check_command(robot.hold(), space, f"{who}.hold() (again)")
    if not np.array_equal(again, held):
        _fail(f"{who}.hold() sent {again.tolist()} after sending {held.tolist()}; expected the same target again "
              "(the last target sent, not a fresh reading of the measured position).")
    if motion:
        beyond = (space.high + (space.high - space.low)).astype(np.float32)
        sent = _check_command(robot.send_action(beyond), space, f"{who}.send_action({beyond.tolist()})")
        after = _check_command(robot.hold(), space, f"{who}.hold() (after send_action)")
        if not np.array_equal(after, sent):
            _fail(f"{who}.hold() sent {after.tolist()} after send_action sent {sent.tolist()}; expected that last "
                  "target again, not a fresh reading of the measured position.")
        robot.send_action(held)  # back where the check found the robot


def _check_command(value: Any, space: gym.spaces.Box, where: str) -> np.ndarray:
    if not (isinstance(value, np.ndarray) and value.dtype == np.float32 and value.shape == space.shape):
        _fail(f"{where} returned {_describe(value)}; expected the command really sent, a float32 array of shape "
              f"{space.shape}.")
    if value not in space:
        _fail(f"{where} returned {value.tolist()}, outside {space}; expected the command really sent (clipped).")
    return value.copy()


def _check_teleop(device: Any, who: str, ticks: int) -> None:
    device.reset()
    space = device.action_space
    for i in range(max(ticks, 1)):
        action = device.get_action({})
        if action is not None:
            _check_command(action, space, f"{who}.get_action() #{i}")
        events = device.events()
        if not (isinstance(events, list) and all(e in EVENTS for e in events)):
            _fail(f"{who}.events() returned {events!r}; expected a list of episode keys from {EVENTS}.")

