"""Universal Robots e-Series arms through ``ur_rtde`` (extra ``ur``), the Robotiq 2F-85 gripper through its URCap
socket, and an emulated controller that speaks the same protocols (RTDE, dashboard, script upload, the
control script's register handshake, the gripper socket) with a MuJoCo twin of the UR5e.

Registered under the ``robolearn.devices`` entry point group: ``make_device("ur5e", host="192.168.1.10",
gripper=True)``, ``make_device("robotiq-2f85", host="192.168.1.10")``. ``ur_rtde`` is imported only when
an arm connects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .arm import ProtectiveStopError, URArm, URConfig, URFault, ur5e
from .robotiq import GripperError, Robotiq2F85

__all__ = ["GripperError", "ProtectiveStopError", "Robotiq2F85", "URArm", "URConfig", "URFault", "register", "ur5e"]


def register() -> dict[str, Callable[..., Any]]:
    """Device ids of the UR arm and its gripper (the ``robolearn.devices`` entry point)."""
    return {"ur5e": ur5e, "robotiq-2f85": Robotiq2F85}
