"""Two arms as one device: ``state`` and ``action`` are the left arm's then the right arm's, and
``joint_names`` carry the prefixes ``left_`` and ``right_`` (``left_shoulder_pan`` ... ``right_gripper``).

Both arms connect together (if the second fails, the first is disconnected again) and disconnect together
(each by its own ``on_disconnect``). A capture time is the later of the two reads.

Example::

    robot = BimanualFollower(so101_follower("/dev/ttyACM0", id="left"), so101_follower("/dev/ttyACM1", id="right"))
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import Reading
from robolearn.errors import InvalidValueError

from .base import FollowerArm, LeaderArm

__all__ = ["BimanualFollower", "BimanualLeader", "PREFIXES"]

PREFIXES = ("left_", "right_")


def _concat(a: gym.spaces.Box, b: gym.spaces.Box) -> gym.spaces.Box:
    return gym.spaces.Box(np.concatenate([a.low, b.low]), np.concatenate([a.high, b.high]), dtype=np.float32)


class _Pair(DeviceBase):
    def __init__(self, left, right, name: str):
        super().__init__(name)
        self.arms = (left, right)
        self.joint_names = tuple(p + n for p, arm in zip(PREFIXES, self.arms) for n in arm.joint_names)
        self.action_space = _concat(left.action_space, right.action_space)
        self._split = left.action_space.shape[0]

    def _open(self) -> None:
        self.arms[0].connect()
        try:
            self.arms[1].connect()
        except BaseException:
            self.arms[0].disconnect()
            raise

    def _close(self) -> None:
        try:
            self.arms[0].disconnect()
        finally:
            self.arms[1].disconnect()

    def _halves(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise InvalidValueError(f"{self.name}: action has shape {action.shape}; expected {self.action_space.shape} "
                                    f"({', '.join(self.joint_names)})")
        return action[:self._split], action[self._split:]


class BimanualFollower(_Pair):
    """A `Robot` made of two follower arms."""

    def __init__(self, left: FollowerArm, right: FollowerArm, name: str = "bimanual"):
        super().__init__(left, right, name)
        self.observation_space = gym.spaces.Dict({spaces.STATE: _concat(left.observation_space[spaces.STATE],
                                                                        right.observation_space[spaces.STATE])})

    def read(self) -> Reading:
        self._require_connected("read()")
        a, b = (arm.read() for arm in self.arms)
        state = np.concatenate([a.values[spaces.STATE], b.values[spaces.STATE]])
        return Reading({spaces.STATE: state}, max(a.t_capture, b.t_capture))

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._require_connected("send_action()")
        left, right = self._halves(action)
        return np.concatenate([self.arms[0].send_action(left), self.arms[1].send_action(right)])

    def hold(self) -> np.ndarray:
        self._require_connected("hold()")
        return np.concatenate([arm.hold() for arm in self.arms])


class BimanualLeader(_Pair):
    """A `Teleop` made of two leader arms (no keys of their own, as `LeaderArm`)."""

    has_keys = False

    def __init__(self, left: LeaderArm, right: LeaderArm, name: str = "bimanual_leader"):
        super().__init__(left, right, name)

    def reset(self) -> None:
        for arm in self.arms:
            arm.reset()

    def get_action(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        self._require_connected("get_action()")
        halves = [arm.get_action(obs) for arm in self.arms]
        if any(h is None for h in halves):
            return None
        return np.concatenate(halves).astype(np.float32)

    def events(self) -> list[str]:
        self._require_connected("events()")
        return [e for arm in self.arms for e in arm.events()]
