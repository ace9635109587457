"""`PhoneTeleop`: a phone in the operator's hand moves the arm's tool; the arm's joints follow by IK on its twin.

``connect()`` serves the phone page as a route of robolearn's view app (``/phone``) over HTTPS (certificate
from `cert.ensure_certificate`, made once per install) with a fresh token, and prints the URL to open on the
phone. While the operator holds the screen (the clutch), the phone's motion since the touch began moves the
tool from where it was then: its position (scaled by ``scale``) and its pitch, solved into joint targets by
`TwinIK`; the phone's roll turns the wrist roll joint directly; the slider sets the gripper. Releasing the
screen holds the arm (the last targets), so the operator can re-grip and continue.

Frames: WebXR's (x right, y up, z toward the user) becomes the robot's (x forward, y left, z up) with the
operator facing along the robot's x axis.

Example::

    phone = PhoneTeleop(env.action_space, TwinIK.for_twin("so101"), arm_axes=(0, 1, 2, 3), roll_axis=4,
                        gripper_axis=5, degrees=True)
    with phone:                                 # prints https://<this host>:4443/phone?token=...
        action = phone.get_action(obs)          # joint targets; None until the first touch
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

from robolearn.devices.base import DeviceBase
from robolearn.errors import InvalidValueError
from robolearn.net import check_bind_host

from .cert import ensure_certificate
from .ik import TwinIK
from .session import PhoneSession, phone_routes

__all__ = ["XR_TO_ROBOT", "PhoneTeleop", "lan_address"]

XR_TO_ROBOT = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""WebXR (x right, y up, z back) -> robot (x forward, y left, z up)."""


def lan_address() -> str:
    """This host's address on the network a phone would use (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))   # TEST-NET: picks the outgoing interface, sends nothing
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _rotvec(r: np.ndarray) -> np.ndarray:
    """Axis * angle of a rotation matrix."""
    angle = np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))
    if angle < 1e-9:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if np.pi - angle < 1e-6:  # half a turn: the axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(r) + 1) / 2, 0, None))
        return axis * angle
    return axis / (2 * np.sin(angle)) * angle


class PhoneTeleop(DeviceBase):
    """A `Teleop` steered by a phone's pose (module docstring).

    Args:
        action_space: the arm's joint-target action space.
        ik: the arm twin's `TwinIK` (its joints are the ``arm_axes`` of the action, in that order).
        arm_axes: action axes of the IK joints (default: the first ``len(ik.joints)``).
        roll_axis: action axis of the wrist roll the phone's roll turns (None: untouched).
        gripper_axis: action axis of the gripper the page's slider sets (None: untouched).
        degrees: the action's joints are in degrees (robolearn's arms), not radians.
        scale: robot metres per phone metre.
        state_key: observation key holding the measured joints in action order (where a touch starts from,
            unless ``origin`` is given).
        origin: ``origin(obs) -> (Da,)``: the target the robot holds (the env's ``hold_action``), where the first
            touch starts from; None: the measured joints of ``state_key``.
        host, port: where the page is served (0.0.0.0: every interface, as a phone on the LAN needs).
        cert_folder: where the certificate lives (default ``~/.config/robolearn/phone``).
        max_jump_m: poses jumping further than this between two messages are refused.
        announce: prints the URL to open on the phone.
    """

    def __init__(self, action_space: gym.spaces.Box, ik: TwinIK, arm_axes: Sequence[int] | None = None,
                 roll_axis: int | None = None, gripper_axis: int | None = None, degrees: bool = False,
                 scale: float = 1.0, state_key: str = "state", host: str = "0.0.0.0", port: int = 4443,
                 cert_folder: str | Path | None = None, max_jump_m: float = 0.10,
                 announce: Callable[[str], None] = print, origin: Callable[[dict], np.ndarray] | None = None,
                 name: str = "phone") -> None:
        super().__init__(name)
        if not (isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1):
            raise InvalidValueError(f"PhoneTeleop needs a 1-D Box action space of joint targets, got {action_space}.")
        da = action_space.shape[0]
        self.arm_axes = list(arm_axes) if arm_axes is not None else list(range(len(ik.joints)))
        if len(self.arm_axes) != len(ik.joints) or any(not 0 <= a < da for a in self.arm_axes):
            raise InvalidValueError(f"PhoneTeleop: arm_axes={self.arm_axes} must name one action axis (0..{da - 1}) "
                                    f"per IK joint {list(ik.joints)}.")
        self.action_space, self.ik = action_space, ik
        self.roll_axis = None if roll_axis is None else int(roll_axis) % da
        self.gripper_axis = None if gripper_axis is None else int(gripper_axis) % da
        self.unit = np.rad2deg(1.0) if degrees else 1.0
        self.scale, self.state_key, self.origin = float(scale), state_key, origin
        self.host = check_bind_host(host, True, "the phone teleop page", "every request needs the printed token")
        self.port, self.cert_folder, self.announce = int(port), cert_folder, announce
        self.session = PhoneSession(max_jump_m)
        self.server = None
        self.url = ""
        self.token = ""
        self.last_error = (0.0, 0.0)
        self._forget()

    def _forget(self) -> None:
        self._anchor = None
        self._q: np.ndarray | None = None
        self._last: np.ndarray | None = None

    # lifecycle: the page is a route of the view app, served over HTTPS -------------------------------
    def _open(self) -> None:
        from robolearn.view.app import make_app
        from robolearn.view.server import ViewServer

        public = lan_address() if self.host in ("0.0.0.0", "::") else self.host
        cert, key = ensure_certificate(self.cert_folder, addresses=[public])
        self.token = secrets.token_urlsafe(18)
        self.session = PhoneSession(self.session.max_jump_m)
        app = make_app(token=self.token, extra_routes=phone_routes(self.session, self.token))
        self.server = ViewServer(app, self.host, self.port, ssl_certfile=cert, ssl_keyfile=key).start()
        self.url = f"https://{public}:{self.server.port}/phone?token={self.token}"
        self._forget()
        self.announce(f"phone teleop: open {self.url} on the phone (accept the certificate once)")

    def _close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    # the device ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """A new episode: the next touch starts from where the robot is."""
        self._forget()

    def _measured(self, obs: dict) -> np.ndarray | None:
        if self.origin is not None:
            return np.asarray(self.origin(obs), np.float64)
        state = obs.get(self.state_key) if isinstance(obs, dict) else None
        if state is None or np.shape(state)[-1] < self.action_space.shape[0]:
            return None
        return np.asarray(state, np.float64)[: self.action_space.shape[0]]

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        self._require_connected("get_action()")
        pose = self.session.latest()
        if pose is None or not pose.move:
            self._anchor = None   # clutch released: hold; the next touch re-anchors
            return None if self._last is None else self._last.copy()
        low, high = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        if self._anchor is None:
            measured = self._measured(obs)
            base = self._last if self._last is not None else measured if measured is not None else \
                np.where(np.isfinite(low + high), (low + high) / 2, 0.0)
            base = np.asarray(base, np.float64).copy()
            q = self.ik.clip(base[self.arm_axes] / self.unit)
            pos, pitch = self.ik.fk(q)
            roll = base[self.roll_axis] if self.roll_axis is not None else 0.0
            self._anchor = (pose.position, pose.rotation, pos, pitch, roll, base)
            self._q = q
        p0, r0, pos0, pitch0, roll0, base = self._anchor
        delta = XR_TO_ROBOT @ (pose.position - p0) * self.scale
        turn = _rotvec(XR_TO_ROBOT @ (pose.rotation @ r0.T) @ XR_TO_ROBOT.T)
        self._q, self.last_error = self.ik.solve(self._q, pos0 + delta, pitch0 + turn[1])
        action = (self._last if self._last is not None else base).copy()
        action[self.arm_axes] = self._q * self.unit
        if self.roll_axis is not None:
            action[self.roll_axis] = roll0 + turn[0] * self.unit
        if self.gripper_axis is not None and pose.gripper is not None:
            g = self.gripper_axis
            action[g] = low[g] + pose.gripper * (high[g] - low[g])
        self._last = np.clip(action, low, high)
        return self._last.astype(np.float32)

    def events(self) -> list[str]:
        self._require_connected("events()")
        return self.session.keys()
