"""Teleop devices behind robolearn's `Teleop` protocol:

- `SpaceMouseTeleop` (3Dconnexion, HID reports from /dev/hidraw*), `GamepadTeleop` (DualShock 4 / DualSense);
- `TerminalTeleop`: keys in a terminal, over SSH too;
- `PhoneTeleop`: a phone's WebXR pose over a websocket (a route of the view app, HTTPS), joints by IK on the
  arm's twin.

`ActionMapper` maps their motion onto an env's action space (delta or absolute). Registered under the
``robolearn.devices`` entry points: ``make_device("spacemouse", action_space=env.action_space)``, "gamepad",
"terminal-teleop", "phone".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .gamepad import GamepadTeleop, parse_gamepad
from .hid import HidError, HidrawSource, HidTeleop, find_hidraw
from .mapping import ActionMapper
from .spacemouse import SpaceMouseTeleop, parse_spacemouse
from .terminal import TerminalTeleop, parse_keys

__all__ = ["ActionMapper", "GamepadTeleop", "HidError", "HidTeleop", "HidrawSource", "SpaceMouseTeleop",
           "TerminalTeleop", "find_hidraw", "parse_gamepad", "parse_keys", "parse_spacemouse", "phone_teleop", "register"]


def phone_teleop(action_space, twin: str = "so101", site: str | None = None, **kwargs: Any):
    """A `PhoneTeleop` steering arm `twin` (IK on its MuJoCo twin; ``twin="ur5e"``: the UR5e's DH kinematics, joints
    0-4 solved, the phone's roll on wrist 3, the gripper on axis 6 when the action has one); kwargs go to
    `PhoneTeleop`."""
    from .phone import PhoneTeleop, TwinIK, URToolIK

    if twin == "ur5e":
        ur = {"arm_axes": (0, 1, 2, 3, 4), "roll_axis": 5}
        if action_space.shape[0] > 6:
            ur["gripper_axis"] = 6
        return PhoneTeleop(action_space, URToolIK(), **{**ur, **kwargs})
    return PhoneTeleop(action_space, TwinIK.for_twin(twin, site), **kwargs)


def register() -> dict[str, Callable[..., Any]]:
    """Device ids of the teleop devices (the ``robolearn.devices`` entry point)."""
    return {"spacemouse": SpaceMouseTeleop, "gamepad": GamepadTeleop, "terminal-teleop": TerminalTeleop,
            "phone": phone_teleop}
