"""`SpaceMouseTeleop`: a 3Dconnexion SpaceMouse read as HID reports (the layout of pyspacemouse's devices.toml).

Reports (little-endian int16 values, about +-350 at full deflection):

- older devices (SpaceNavigator 046d:c626, SpaceMouse Pro 046d:c62b, ...): report 1 = x, y, z at bytes 1-6,
  report 2 = rx, ry, rz at bytes 1-6;
- newer ones (SpaceMouse Wireless 256f:c62e / c62f, Compact 256f:c635, Pro Wireless 256f:c631 / c632,
  Enterprise 256f:c633, Universal Receiver 256f:c652): report 1 = all six at bytes 1-12;
- report 3 = buttons, one bit each (left = bit 0, right = bit 1).

Axes are reported as (x right, y forward, z up, roll, pitch, yaw), each in [-1, 1] (the device's y and z
point backwards and down, so they are negated, as pyspacemouse does). Default buttons: left toggles the
gripper (when the action space has a ``gripper_axis``), right saves the episode.
"""

from __future__ import annotations

import struct

import gymnasium as gym
import numpy as np

from .hid import HidrawSource, HidTeleop, find_hidraw
from .mapping import ActionMapper

__all__ = ["LEGACY_PRODUCTS", "SIX_AXIS_PRODUCTS", "SpaceMouseTeleop", "parse_spacemouse"]

VENDOR_LOGITECH, VENDOR_3DCONNEXION = 0x046D, 0x256F
LEGACY_PRODUCTS = (0xC626, 0xC627, 0xC628, 0xC62B, 0xC603, 0xC606, 0xC621, 0xC623, 0xC625)
SIX_AXIS_PRODUCTS = (0xC62E, 0xC62F, 0xC631, 0xC632, 0xC633, 0xC635, 0xC652)
AXIS_SCALE = 350.0
SIGNS = np.array([1.0, -1.0, -1.0, -1.0, -1.0, 1.0])


def parse_spacemouse(report: bytes, axes: np.ndarray, six_axis: bool) -> set[str] | None:
    """Update `axes` (6,) in place from one report; returns the buttons held for a button report, else None."""
    if not report:
        return None
    rid = report[0]
    if rid == 1 and six_axis and len(report) >= 13:
        axes[:] = SIGNS * np.array(struct.unpack_from("<6h", report, 1)) / AXIS_SCALE
    elif rid == 1 and len(report) >= 7:
        axes[:3] = SIGNS[:3] * np.array(struct.unpack_from("<3h", report, 1)) / AXIS_SCALE
    elif rid == 2 and len(report) >= 7:
        axes[3:] = SIGNS[3:] * np.array(struct.unpack_from("<3h", report, 1)) / AXIS_SCALE
    elif rid == 3 and len(report) >= 2:
        bits = int.from_bytes(report[1:], "little")
        return {f"button{i}" for i in range(8 * (len(report) - 1)) if bits >> i & 1}
    np.clip(axes, -1.0, 1.0, out=axes)
    return None


class SpaceMouseTeleop(HidTeleop):
    """A SpaceMouse as a `Teleop` (module docstring).

    Args:
        action_space: the env's action space (e.g. robosuite OSC: dx dy dz droll dpitch dyaw gripper).
        path: /dev/hidrawN, an open descriptor (tests), or None to find the first SpaceMouse in sysfs.
        six_axis: the report layout (None: from the product id found; True for the newer devices).
        mode, step, axes, gripper_axis, origin, kinematics, rotation_step: see `ActionMapper`.
        buttons: button name -> episode key, replacing the defaults (``{"button1": "save"}``: the right button
            saves while recording; give ``--takeover-key save`` or a robot config's ``takeover_key: save`` to take
            over with it during deploy).
    """

    button_events = {"button1": "save"}

    def __init__(self, action_space: gym.spaces.Box, path: str | int | None = None, six_axis: bool | None = None,
                 mode: str = "delta", step: float | None = None, axes=None, gripper_axis: int | None = None,
                 origin=None, deadzone: float = 0.05, kinematics: str | None = None,
                 rotation_step: float | None = None, buttons: dict[str, str] | None = None,
                 name: str = "spacemouse") -> None:
        self.path = path
        self.six_axis = six_axis
        super().__init__(name, HidrawSource(path if path is not None else ""), action_space,
                         ActionMapper(action_space, mode, step, axes, gripper_axis, origin, kinematics, rotation_step),
                         deadzone, buttons)
        self._gripper_closed = False

    def _open(self) -> None:
        if self.path is None:
            try:
                self.source.path = find_hidraw(VENDOR_3DCONNEXION, SIX_AXIS_PRODUCTS)
                self.six_axis = True if self.six_axis is None else self.six_axis
            except OSError:
                self.source.path = find_hidraw(VENDOR_LOGITECH, LEGACY_PRODUCTS)
                self.six_axis = False if self.six_axis is None else self.six_axis
        self._gripper_closed = False
        super()._open()

    def _parse(self, report: bytes) -> None:
        buttons = parse_spacemouse(report, self.axes, bool(self.six_axis))
        if buttons is None:
            return
        if "button0" in buttons - self.buttons:  # left button: toggle the gripper
            self._gripper_closed = not self._gripper_closed
            self.gripper = 1.0 if self._gripper_closed else 0.0
        self.buttons = buttons
