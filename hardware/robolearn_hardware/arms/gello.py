"""A GELLO-style joint-space leader (wuphilipp/gello_software): a scaled replica of the follower made of
Dynamixel XL330 servos, read as joint angles in radians plus a gripper in [0, 1].

GELLO maps each servo to a follower joint with a sign and an offset (multiples of pi/2 found with the arm
in a known pose). Here the same is a calibration: hold the GELLO in ``reference_pose`` (the follower's joint
angles, rad, for the pose it mimics; default a UR arm's home), run ``calibrate`` (every joint turns freely;
only the gripper is swept between open and closed), and read

    q_i = sign_i * angle of servo i from where it was at calibration + reference_pose_i   (rad)
    gripper = 0 (open) .. 1 (closed)

``joint_signs`` are the drive directions (-1: reversed); they live in the calibration file like any arm's.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from robolearn.errors import InvalidValueError

from ..bus import Motor, NormMode
from ..protocol.dynamixel_tables import OperatingMode
from .base import ArmConfig, ArmSpec, LeaderArm

__all__ = ["GelloLeader", "gello_leader", "UR_HOME"]

UR_HOME = (0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0)
"""A UR arm's joints (rad) in the pose GELLO's UR replica is calibrated in."""


def gello_spec(n_joints: int, joint_signs: Sequence[int], model: str = "xl330-m288") -> ArmSpec:
    names = tuple(f"joint_{i + 1}" for i in range(n_joints)) + ("gripper",)
    motors = tuple((n, Motor(i + 1, model, NormMode.RANGE_0_100 if n == "gripper" else NormMode.DEGREES))
                   for i, n in enumerate(names))
    return ArmSpec(kind="gello_leader", motors=motors, full_turn=names[:-1],
                   drive_modes={n: 1 for n, s in zip(names, joint_signs) if s < 0},
                   setup=(("Return_Delay_Time", None, 0), ("Operating_Mode", None, OperatingMode.EXTENDED_POSITION)))


class GelloLeader(LeaderArm):
    """A `Teleop` whose action is (n_joints rad, gripper in [0, 1])."""

    def __init__(self, config: ArmConfig, reference_pose: Sequence[float] = UR_HOME,
                 joint_signs: Sequence[int] | None = None, model: str = "xl330-m288"):
        n = len(reference_pose)
        signs = tuple(joint_signs) if joint_signs is not None else (1,) * n
        if len(signs) != n or any(s not in (1, -1) for s in signs):
            raise InvalidValueError(f"joint_signs {signs} must hold {n} values, each 1 or -1 (one per joint of "
                                    f"reference_pose)")
        super().__init__(gello_spec(n, signs, model), config)
        self.reference_pose = np.asarray(reference_pose, np.float64)
        low = np.append(self.reference_pose - np.pi, 0.0).astype(np.float32)
        high = np.append(self.reference_pose + np.pi, 1.0).astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)

    def _to_action(self, q: np.ndarray) -> np.ndarray:
        action = np.append(np.deg2rad(q[:-1]) + self.reference_pose, q[-1] / 100.0)
        return np.clip(action, self.action_space.low, self.action_space.high).astype(np.float32)


def gello_leader(port: str, reference_pose: Sequence[float] = UR_HOME, joint_signs: Sequence[int] | None = None,
                 **config) -> GelloLeader:
    """A GELLO leader on ``port`` for a follower with ``len(reference_pose)`` joints."""
    return GelloLeader(ArmConfig(port=port, **config), reference_pose, joint_signs)


