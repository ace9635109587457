"""A Robotiq 2F-85 gripper through the Robotiq URCap's socket (TCP 63352 on the UR controller), as a `Robot`.

``state`` and ``action`` are one value in [0, 1]: 0 open, 1 closed (the gripper's position 0..255).
``send_action`` sets POS, SPE, FOR and GTO in one ``SET`` line and returns what it sent; ``object_detected()``
reads OBJ (the fingers stopped on something). The protocol is in `robolearn_hardware.ur.robotiq_model`.

Example::

    with Robotiq2F85("192.168.1.10") as gripper:    # activates it if needed (the fingers move once)
        gripper.send_action(np.array([1.0], np.float32))
        gripper.read().values["state"]               # (1,) float32, 0 open .. 1 closed
"""

from __future__ import annotations

import socket
import time

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading
from robolearn.errors import InvalidValueError

__all__ = ["Robotiq2F85", "GripperError"]


class GripperError(RuntimeError):
    """The gripper answered something the protocol does not allow, or not in time."""


class Robotiq2F85(DeviceBase):
    """One 2F-85 behind the URCap socket on ``host``."""

    def __init__(self, host: str, port: int = 63352, name: str = "gripper", speed: int = 255, force: int = 100,
                 timeout_s: float = 2.0, activate_timeout_s: float = 10.0):
        super().__init__(name)
        for what, v in (("speed", speed), ("force", force)):
            if not 0 <= v <= 255:
                raise InvalidValueError(f"Robotiq2F85 {what} must be within 0..255, got {v}")
        self.host, self.port, self.speed, self.force = host, port, speed, force
        self.timeout_s, self.activate_timeout_s = timeout_s, activate_timeout_s
        self.observation_space = gym.spaces.Dict({spaces.STATE: gym.spaces.Box(0.0, 1.0, (1,), np.float32)})
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self._sock: socket.socket | None = None
        self._buf = b""
        self._last: np.ndarray | None = None

    # -- protocol --
    def _line(self, text: str) -> str:
        assert self._sock is not None
        self._sock.sendall((text + "\n").encode())
        deadline = time.monotonic() + self.timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GripperError(f"gripper at {self.host}:{self.port} gave no answer to {text!r} within "
                                   f"{self.timeout_s} s")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(1024)
            except socket.timeout:
                continue
            if not chunk:
                raise GripperError(f"gripper at {self.host}:{self.port} closed the connection after {text!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode().strip()

    def get(self, var: str) -> int:
        answer = self._line(f"GET {var}").split()
        if len(answer) != 2 or answer[0] != var:
            raise GripperError(f"gripper answered {' '.join(answer)!r} to GET {var}; expected '{var} <value>'")
        if answer[1].startswith("?"):
            raise GripperError(f"gripper cannot be read now (GET {var} -> ?): is the robot in an emergency stop?")
        return int(answer[1])

    def set(self, **values: int) -> None:
        line = "SET " + " ".join(f"{k} {int(v)}" for k, v in values.items())
        answer = self._line(line)
        if answer != "ack":
            raise GripperError(f"gripper answered {answer!r} to {line!r}; expected 'ack'")

    # -- lifecycle --
    def _open(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as e:
            raise GripperError(f"cannot reach the Robotiq gripper socket at {self.host}:{self.port} ({e}); is the "
                               "Robotiq URCap installed and the robot on?") from None
        self._buf = b""
        self._last = None
        try:
            if self.get("STA") != 3:
                self.set(ACT=1)
                deadline = time.monotonic() + self.activate_timeout_s
                while self.get("STA") != 3:
                    if time.monotonic() > deadline:
                        raise GripperError(f"gripper at {self.host} did not finish activating within "
                                           f"{self.activate_timeout_s} s (STA != 3)")
                    time.sleep(0.02)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- device --
    def read(self) -> Reading:
        self._require_connected("read()")
        t = self.clock()
        return Reading({spaces.STATE: np.array([self.get("POS") / 255.0], np.float32)}, t)

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._require_connected("send_action()")
        sent = np.clip(np.asarray(action, np.float32).reshape(1), 0.0, 1.0).astype(np.float32)
        position = int(round(float(sent[0]) * 255))
        self.set(POS=position, SPE=self.speed, FOR=self.force, GTO=1)
        self._last = np.array([position / 255.0], np.float32)
        return self._last.copy()

    def hold(self) -> np.ndarray:
        self._require_connected("hold()")
        if self._last is None:
            return self.send_action(self.read().values[spaces.STATE])
        return self.send_action(self._last)

    def object_detected(self) -> bool:
        """The fingers stopped on an object (OBJ 1 while opening, 2 while closing)."""
        self._require_connected("object_detected()")
        return self.get("OBJ") in (1, 2)
