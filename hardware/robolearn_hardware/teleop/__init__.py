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
    """A `PhoneTeleop` steering arm `twin` (IK on its MuJoCo twin); kwargs go to `PhoneTeleop`."""
    from .phone import PhoneTeleop, TwinIK

    return PhoneTeleop(action_space, TwinIK.for_twin(twin, site), **kwargs)


def register() -> dict[str, Callable[..., Any]]:
    """Device ids of the teleop devices (the ``robolearn.devices`` entry point)."""
    return {"spacemouse": SpaceMouseTeleop, "gamepad": GamepadTeleop, "terminal-teleop": TerminalTeleop,
            "phone": phone_teleop}
