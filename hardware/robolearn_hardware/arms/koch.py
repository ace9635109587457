"""Koch v1.1 arms: Dynamixel X-series, ids 1..6, 1 Mbps (LeRobot's koch_follower / koch_leader).

Follower: shoulder_pan and shoulder_lift are XL430-W250, the rest XL330-M288. Extended position mode
(a servo assembled near its 0/4095 point still turns through it) except the gripper, which runs current-based
position mode so it can grasp without forcing; elbow_flex gets stiffer gains (P 1500, D 600).
Leader: all XL330-M077; elbow_flex is mounted reversed (drive_mode 1); the gripper stays under torque at
``GRIPPER_OPEN`` in current-based position mode: a spring-back trigger the operator squeezes.
shoulder_pan and wrist_roll turn freely.
"""

from __future__ import annotations

from ..bus import Motor, NormMode
from ..protocol.dynamixel_tables import OperatingMode
from .base import ArmConfig, ArmSpec, FollowerArm, LeaderArm

__all__ = ["KOCH_JOINTS", "KOCH_FOLLOWER", "KOCH_LEADER", "GRIPPER_OPEN", "koch_follower", "koch_leader"]

KOCH_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
GRIPPER_OPEN = 50.0
"""The leader gripper's rest (normalised 0..100)."""


def _motors(models: tuple[str, ...]) -> tuple[tuple[str, Motor], ...]:
    return tuple((name, Motor(i + 1, model, NormMode.RANGE_0_100 if name == "gripper" else NormMode.DEGREES))
                 for i, (name, model) in enumerate(zip(KOCH_JOINTS, models)))


_MODES = (("Return_Delay_Time", None, 0),
          *((("Operating_Mode", n, OperatingMode.EXTENDED_POSITION) for n in KOCH_JOINTS[:-1])),
          ("Operating_Mode", "gripper", OperatingMode.CURRENT_BASED_POSITION))

KOCH_FOLLOWER = ArmSpec(
    kind="koch_follower", motors=_motors(("xl430-w250",) * 2 + ("xl330-m288",) * 4),
    full_turn=("shoulder_pan", "wrist_roll"),
    setup=_MODES + (("Position_P_Gain", "elbow_flex", 1500), ("Position_I_Gain", "elbow_flex", 0),
                    ("Position_D_Gain", "elbow_flex", 600)))

KOCH_LEADER = ArmSpec(
    kind="koch_leader", motors=_motors(("xl330-m077",) * 6), full_turn=("shoulder_pan", "wrist_roll"),
    drive_modes={"elbow_flex": 1}, setup=_MODES, torque_goals={"gripper": GRIPPER_OPEN})


def koch_follower(port: str, **config) -> FollowerArm:
    """A Koch v1.1 follower on ``port``; ``config``: `ArmConfig` fields."""
    return FollowerArm(KOCH_FOLLOWER, ArmConfig(port=port, **config))


def koch_leader(port: str, **config) -> LeaderArm:
    """A Koch v1.1 leader arm (a teleop device) on ``port``."""
    return LeaderArm(KOCH_LEADER, ArmConfig(port=port, **config))
