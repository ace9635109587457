"""`GamepadTeleop`: a Sony DualShock 4 or DualSense read as USB HID input reports (report id 0x01).

Layouts (USB; byte offsets count the report id as byte 0):

```
                 sticks LX LY RX RY   L2 R2   hat + face buttons       L1 R1 L2 R2 share options L3 R3   PS
DualShock 4      1 2 3 4              8 9     5 (low nibble hat,        6 (bits 0..7)                    7 bit 0
(054c:05c4, 09cc)                             high: square cross circle triangle)
DualSense        1 2 3 4              5 6     8 (same)                  9 (bits 0..7, share = create)    10 bit 0
(054c:0ce6, 0df2)
```

Sticks are uint8 (128 centre, y down), triggers uint8 (0 released). Axes reported: (left x, -left y, -right
y, right x, 0, 0) in [-1, 1]: left stick moves in the plane, right stick up/down lifts, right stick sideways
turns. The right trigger closes the gripper by how far it is pulled (``gripper_axis``). Episode keys:
options = save, share/create = discard, triangle = re-record, PS = quit, L1 = takeover (during
``robolearn deploy --teleop gamepad``: hand control between the policy and the gamepad).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robolearn.errors import InvalidValueError

from .hid import HidrawSource, HidTeleop, find_hidraw
from .mapping import ActionMapper

__all__ = ["LAYOUTS", "GamepadTeleop", "parse_gamepad"]

VENDOR_SONY = 0x054C
FACE = ("square", "cross", "circle", "triangle")
SHOULDER = ("l1", "r1", "l2", "r2", "share", "options", "l3", "r3")
# layout: (product ids, sticks offset, triggers offset, hat/face byte, shoulder byte, ps byte, min length)
LAYOUTS = {
    "dualshock4": ((0x05C4, 0x09CC), 1, 8, 5, 6, 7, 10),
    "dualsense": ((0x0CE6, 0x0DF2), 1, 5, 8, 9, 10, 11),
}


def parse_gamepad(report: bytes, layout: str) -> tuple[np.ndarray, float, float, set[str]] | None:
    """(sticks (4,) LX LY RX RY in [-1, 1] with y up, L2, R2 in [0, 1], buttons held) of an input report
    (id 0x01), or None for other reports."""
    _, sticks, triggers, face, shoulder, ps, length = LAYOUTS[layout]
    if len(report) < length or report[0] != 0x01:
        return None
    raw = np.frombuffer(report[sticks:sticks + 4], np.uint8).astype(np.float64)
    axes = (raw - 128.0) / 127.0 * np.array([1.0, -1.0, 1.0, -1.0])
    l2, r2 = report[triggers] / 255.0, report[triggers + 1] / 255.0
    buttons = {n for i, n in enumerate(FACE) if report[face] >> (4 + i) & 1}
    buttons |= {n for i, n in enumerate(SHOULDER) if report[shoulder] >> i & 1}
    if report[face] & 0x0F != 8:
        buttons.add(f"hat{report[face] & 0x0F}")
    if report[ps] & 1:
        buttons.add("ps")
    return np.clip(axes, -1.0, 1.0), l2, r2, buttons


class GamepadTeleop(HidTeleop):
    """A DualShock 4 / DualSense as a `Teleop` (module docstring).

    Args:
        action_space: the env's action space.
        path: /dev/hidrawN, an open descriptor (tests), or None to find the first Sony gamepad of `layout`.
        layout: "dualshock4" or "dualsense".
        mode, step, axes, gripper_axis, origin, kinematics, rotation_step: see `ActionMapper`.
        buttons: button name -> episode key, replacing the defaults (`button_events`).
    """

    button_events = {"options": "save", "share": "discard", "triangle": "rerecord", "ps": "quit", "l1": "takeover"}

    def __init__(self, action_space: gym.spaces.Box, path: str | int | None = None, layout: str = "dualshock4",
                 mode: str = "delta", step: float | None = None, axes=None, gripper_axis: int | None = None,
                 origin=None, deadzone: float = 0.08, kinematics: str | None = None,
                 rotation_step: float | None = None, buttons: dict[str, str] | None = None,
                 name: str = "gamepad") -> None:
        if layout not in LAYOUTS:
            raise InvalidValueError(f"gamepad layout={layout!r} is not known; accepted values: {', '.join(LAYOUTS)}.")
        self.path, self.layout = path, layout
        super().__init__(name, HidrawSource(path if path is not None else ""), action_space,
                         ActionMapper(action_space, mode, step, axes, gripper_axis, origin, kinematics, rotation_step),
                         deadzone, buttons)

    def _open(self) -> None:
        if self.path is None:
            self.source.path = find_hidraw(VENDOR_SONY, LAYOUTS[self.layout][0])
        super()._open()

    def _parse(self, report: bytes) -> None:
        parsed = parse_gamepad(report, self.layout)
        if parsed is None:
            return
        (lx, ly, rx, ry), _, r2, self.buttons = parsed
        self.axes = np.array([lx, ly, ry, rx, 0.0, 0.0])
        self.gripper = r2 if (r2 > 0 or self.gripper is not None) else None
