"""`TerminalTeleop`: keys typed into a terminal drive the robot; works over SSH (no X, no uinput, no root).

``connect()`` puts the terminal (stdin, or any tty descriptor) into cbreak mode without echo and restores it
on ``disconnect()``. A terminal sends no key-up events, so each key press moves its axis by one ``step``
(auto-repeat of a held key keeps moving it); presses between two ticks add up.

Keys::

    arrows  action axes 0 (left/right) and 1 (up/down)       w / s  axis 2 (+/-)      a / d  axis 3 (+/-)
    space   toggle the gripper (gripper_axis)                Enter  save            Backspace  discard
    r       re-record                                        q, Esc, Ctrl-C  quit
    t       takeover (`robolearn deploy --teleop terminal-teleop`: hand control between the policy and you)

Example (what `robolearn teleop --device terminal` does over SSH)::

    with TerminalTeleop(env.action_space) as dev:
        action = dev.get_action(obs)      # None when no key was pressed since the last tick
"""

from __future__ import annotations

import os
import sys

import gymnasium as gym
import numpy as np

from robolearn.devices.base import DeviceBase
from robolearn.devices.terminal_keys import parse_keys, read_keys, restore, terminal_mode
from robolearn.errors import UserError

from .mapping import ActionMapper

__all__ = ["KEYS", "TerminalTeleop", "parse_keys"]

# key -> (axis, direction) for motion; str -> episode key
KEYS: dict[str, tuple[int, float] | str] = {
    "right": (0, 1.0), "left": (0, -1.0), "up": (1, 1.0), "down": (1, -1.0),
    "w": (2, 1.0), "s": (2, -1.0), "d": (3, 1.0), "a": (3, -1.0),
    "enter": "save", "backspace": "discard", "r": "rerecord", "q": "quit", "esc": "quit", "ctrl-c": "quit",
    "t": "takeover",
    "space": "gripper",
}


class TerminalTeleop(DeviceBase):
    """A `Teleop` reading key presses from a terminal (module docstring).

    Args:
        action_space: the env's action space.
        fd: the terminal's descriptor (default: stdin), e.g. the slave side of a pty in tests.
        mode, step, gripper_axis, origin, kinematics, rotation_step: see `ActionMapper` (motion axes 0-3 are
            the first four non-gripper action axes; with kinematics the tool's x, y, z and rx).
    """

    reads_terminal = True
    """Its keys are the terminal's: deploy and record do not read operator keys there beside it
    (`robolearn.devices.terminal_keys.operator_terminal`)."""

    def __init__(self, action_space: gym.spaces.Box, fd: int | None = None, mode: str = "delta",
                 step: float | None = None, gripper_axis: int | None = None, origin=None,
                 kinematics: str | None = None, rotation_step: float | None = None, name: str = "terminal") -> None:
        super().__init__(name)
        self.action_space = action_space
        self.fd = fd
        motion_axes = action_space.shape[0] - (gripper_axis is not None) if len(action_space.shape) == 1 else 0
        self.n_axes = max(1, min(4, motion_axes))
        if kinematics is not None:
            self.n_axes = 4
        self.mapper = ActionMapper(action_space, mode, step, range(self.n_axes), gripper_axis, origin, kinematics,
                                   rotation_step)
        self._saved = None
        self._motion = np.zeros(self.n_axes)
        self._pending: list[str] = []
        self._gripper: float | None = None

    def _open(self) -> None:
        fd = sys.stdin.fileno() if self.fd is None else self.fd
        if not os.isatty(fd):
            raise UserError(f"TerminalTeleop {self.name!r}: descriptor {fd} is not a terminal; run it in a terminal "
                            "(an SSH session works) or pick another --device.")
        self._fd = fd
        self._saved = terminal_mode(fd, isig=False)  # Ctrl-C arrives as a key (quit), not SIGINT mid-write
        self._motion[:] = 0
        self._pending, self._gripper = [], None

    def _close(self) -> None:
        restore(self._fd, self._saved)
        self._saved = None

    def _poll(self) -> None:
        for key in read_keys(self._fd):
            what = KEYS.get(key)
            if isinstance(what, tuple) and what[0] < self.n_axes:
                self._motion[what[0]] += what[1]
            elif what == "gripper":
                self._gripper = 0.0 if self._gripper == 1.0 else 1.0
            elif isinstance(what, str):
                self._pending.append(what)

    def reset(self) -> None:
        self.mapper.reset()

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        self._require_connected("get_action()")
        self._poll()
        motion, self._motion = self._motion, np.zeros(self.n_axes)
        return self.mapper(obs, motion if np.any(motion) else None, self._gripper)

    def events(self) -> list[str]:
        self._require_connected("events()")
        self._poll()
        out, self._pending = self._pending, []
        return out
