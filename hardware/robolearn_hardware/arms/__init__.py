"""Servo arms as robolearn devices: SO-101 and Koch followers (`Robot`) and leaders (`Teleop`), a GELLO-style
joint-space leader, and bimanual pairs. Registered under the ``robolearn.devices`` entry point group, so
``robolearn.devices.make_device("so101-follower", port=..., id=...)`` builds one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import ArmConfig, ArmSpec, FollowerArm, LeaderArm
from .bimanual import BimanualFollower, BimanualLeader
from .gello import GelloLeader, gello_leader
from .koch import KOCH_FOLLOWER, KOCH_LEADER, koch_follower, koch_leader
from .so101 import SO101_FOLLOWER, SO101_LEADER, so101_follower, so101_leader

__all__ = ["ArmConfig", "ArmSpec", "FollowerArm", "LeaderArm", "BimanualFollower", "BimanualLeader", "GelloLeader",
           "gello_leader", "KOCH_FOLLOWER", "KOCH_LEADER", "koch_follower", "koch_leader", "SO101_FOLLOWER",
           "SO101_LEADER", "so101_follower", "so101_leader", "bimanual", "register"]


def bimanual(make: Callable[..., Any], left_port: str, right_port: str, *, left_id: str = "left",
             right_id: str = "right", name: str | None = None, **config) -> BimanualFollower | BimanualLeader:
    """Two arms built by ``make`` (e.g. `so101_follower`) on two ports, with calibration ids ``left_id`` /
    ``right_id``; ``config`` goes to both."""
    left = make(left_port, id=left_id, name="left", **config)
    right = make(right_port, id=right_id, name="right", **config)
    if isinstance(left, FollowerArm):
        return BimanualFollower(left, right, name or f"bimanual_{left.spec.kind}")
    return BimanualLeader(left, right, name or f"bimanual_{left.spec.kind}")


def _pair(make: Callable[..., Any]) -> Callable[..., Any]:
    def build(left_port: str, right_port: str, **config):
        return bimanual(make, left_port, right_port, **config)

    build.__doc__ = f"Two arms made by {make.__name__}: bimanual(...)."
    return build


def register() -> dict[str, Callable[..., Any]]:
    """Device ids of the arms (the ``robolearn.devices`` entry point)."""
    return {
        "so101-follower": so101_follower, "so101-leader": so101_leader,
        "koch-follower": koch_follower, "koch-leader": koch_leader,
        "gello-leader": gello_leader,
        "bimanual-so101-follower": _pair(so101_follower), "bimanual-so101-leader": _pair(so101_leader),
        "bimanual-koch-follower": _pair(koch_follower), "bimanual-koch-leader": _pair(koch_leader),
    }
