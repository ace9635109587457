"""SO-100/SO-101 arms (TheRobotStudio): six Feetech STS3215 servos, ids 1..6, 1 Mbps.

Registers set at connect follow LeRobot's SO follower/leader: Return_Delay_Time 0 (factory 500 us),
acceleration 254, position mode, follower PID 16/0/32 and a gentler gripper (torque limit 500, protection
current 250, overload torque 25) so a blocked grasp does not overload it. wrist_roll turns freely.
"""

from __future__ import annotations

from ..bus import Motor, NormMode
from .base import ArmConfig, ArmSpec, FollowerArm, LeaderArm

__all__ = ["SO101_JOINTS", "SO101_FOLLOWER", "SO101_LEADER", "so101_follower", "so101_leader"]

SO101_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def _motors() -> tuple[tuple[str, Motor], ...]:
    return tuple((name, Motor(i + 1, "sts3215", NormMode.RANGE_0_100 if name == "gripper" else NormMode.DEGREES))
                 for i, name in enumerate(SO101_JOINTS))


_COMMON = (("Return_Delay_Time", None, 0), ("Maximum_Acceleration", None, 254), ("Acceleration", None, 254),
           ("Operating_Mode", None, 0))

SO101_FOLLOWER = ArmSpec(
    kind="so101_follower", motors=_motors(), full_turn=("wrist_roll",),
    setup=_COMMON + (("P_Coefficient", None, 16), ("I_Coefficient", None, 0), ("D_Coefficient", None, 32),
                     ("Max_Torque_Limit", "gripper", 500), ("Protection_Current", "gripper", 250),
                     ("Overload_Torque", "gripper", 25)))

SO101_LEADER = ArmSpec(kind="so101_leader", motors=_motors(), full_turn=("wrist_roll",), setup=_COMMON)


def so101_follower(port: str, **config) -> FollowerArm:
    """An SO-101 follower on ``port``; ``config``: `ArmConfig` fields (id, backend, on_disconnect, ...)."""
    return FollowerArm(SO101_FOLLOWER, ArmConfig(port=port, **config))


def so101_leader(port: str, **config) -> LeaderArm:
    """An SO-101 leader arm (a teleop device) on ``port``."""
    return LeaderArm(SO101_LEADER, ArmConfig(port=port, **config))
