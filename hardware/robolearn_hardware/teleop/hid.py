"""Reading HID input reports straight from Linux ``/dev/hidraw*`` (no hidapi needed), and the lifecycle the
HID teleop devices share.

Each ``read()`` of a hidraw node returns exactly one input report (with its report id as the first byte
when the device uses report ids). `HidrawSource` opens the node non-blocking and drains whatever reports
arrived since the last tick; `find_hidraw(vendor, products)` finds a node by USB ids in sysfs. The user
needs read access: a udev rule such as ``KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0660",
GROUP="plugdev"``.

Tests hand `HidrawSource` one end of a ``SOCK_SEQPACKET`` socket pair (it keeps report boundaries as
hidraw does) and write canned reports into the other.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import EVENTS, DeviceNotConnectedError
from robolearn.errors import InvalidValueError, UserError

from .mapping import ActionMapper

__all__ = ["HidError", "HidTeleop", "HidrawSource", "find_hidraw"]

SYSFS = Path("/sys/class/hidraw")


class HidError(UserError, OSError):
    """No matching HID device, or its node cannot be opened."""


def find_hidraw(vendor: int, products: Sequence[int], sysfs: Path = SYSFS) -> str:
    """The /dev/hidrawN of the first device with USB `vendor` and one of `products` (HID_ID in its uevent)."""
    wanted = {(vendor, p) for p in products}
    seen = []
    for node in sorted(sysfs.glob("hidraw*")) if sysfs.exists() else []:
        try:
            uevent = (node / "device" / "uevent").read_text()
        except OSError:
            continue
        for line in uevent.splitlines():
            if line.startswith("HID_ID="):
                _, v, p = line.split("=", 1)[1].split(":")
                seen.append(f"{node.name} {int(v, 16):04x}:{int(p, 16):04x}")
                if (int(v, 16), int(p, 16)) in wanted:
                    return f"/dev/{node.name}"
    ids = ", ".join(f"{vendor:04x}:{p:04x}" for p in products)
    raise HidError(f"no HID device {ids} found in {sysfs} (present: {', '.join(seen) or 'none'}); plug it in, or "
                   "pass path=/dev/hidrawN.")


class HidrawSource:
    """Input reports from a hidraw node (a path) or an already open descriptor (an int, e.g. a test socket)."""

    def __init__(self, path: str | int, report_size: int = 64) -> None:
        self.path, self.report_size = path, int(report_size)
        self.fd: int | None = None

    def open(self) -> None:
        if isinstance(self.path, int):
            os.set_blocking(self.path, False)
            self.fd = self.path
            return
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except PermissionError:
            raise HidError(f"no read access to {self.path}; add a udev rule giving your user access to the device "
                           "(see robolearn_hardware.teleop.hid) or run `robolearn doctor`.") from None
        except FileNotFoundError:
            raise HidError(f"{self.path} does not exist; is the device plugged in?") from None

    def reports(self, limit: int = 1000) -> list[bytes]:
        """Every report that arrived since the last call (oldest first; at most `limit`)."""
        out: list[bytes] = []
        while len(out) < limit:
            try:
                data = os.read(self.fd, self.report_size)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.ENODEV, errno.EIO):
                    raise HidError(f"HID device {self.path} was unplugged.") from None
                raise
            if not data:
                break
            out.append(data)
        return out

    def close(self) -> None:
        if self.fd is not None and not isinstance(self.path, int):
            os.close(self.fd)
        self.fd = None


class HidTeleop(DeviceBase):
    """A `Teleop` fed by HID reports: drains them each tick, keeps the device's state, maps it to actions.

    Subclasses parse reports (``_parse(report)``) into ``self.axes`` (motion, [-1, 1]), ``self.gripper``
    ([0, 1] or None) and ``self.buttons`` (a set of names); ``button_events`` maps a button name to the
    episode key it sends when pressed (on the press, not while held); ``buttons=`` replaces that map.
    """

    button_events: dict[str, str] = {}

    def __init__(self, name: str, source: HidrawSource, action_space: gym.spaces.Box, mapper: ActionMapper,
                 deadzone: float = 0.05, buttons: dict[str, str] | None = None) -> None:
        super().__init__(name)
        self.source, self.action_space, self.mapper, self.deadzone = source, action_space, mapper, float(deadzone)
        if buttons is not None:
            bad = {b: e for b, e in buttons.items() if e not in EVENTS}
            if bad:
                raise InvalidValueError(f"{type(self).__name__} buttons={bad} map to no episode key; accepted keys: "
                                        f"{', '.join(EVENTS)}.")
            self.button_events = dict(buttons)
        self._clear()

    def _clear(self) -> None:
        self.axes = np.zeros(6)
        self.gripper: float | None = None
        self.buttons: set[str] = set()
        self._pending: list[str] = []
        self.reports_seen = 0

    def _open(self) -> None:
        self._clear()
        self.source.open()

    def _close(self) -> None:
        self.source.close()

    def _parse(self, report: bytes) -> None:
        raise NotImplementedError

    def poll(self) -> None:
        """Take every report that arrived; a button newly pressed queues its episode key."""
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{type(self).__name__} {self.name!r} is not connected; call connect() "
                                          "before reading it.")
        for report in self.source.reports():
            before = set(self.buttons)
            self._parse(report)
            self.reports_seen += 1
            for pressed in sorted(self.buttons - before):
                if pressed in self.button_events:
                    self._pending.append(self.button_events[pressed])

    def reset(self) -> None:
        self.mapper.reset()

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        self._require_connected("get_action()")
        self.poll()
        motion = np.where(np.abs(self.axes) < self.deadzone, 0.0, self.axes)
        return self.mapper(obs, motion if np.any(motion) else None, self.gripper)

    def events(self) -> list[str]:
        self._require_connected("events()")
        self.poll()
        out, self._pending = self._pending, []
        return out
