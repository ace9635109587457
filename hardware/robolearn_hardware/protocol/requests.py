"""Typed requests shared by the servo protocols (what ``decode_request`` returns).

Vendor-specific ones (Dynamixel reboot, bulk access; Feetech reset) live beside their codec.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Ping", "Read", "Write", "RegWrite", "Action", "SyncRead", "SyncWrite"]


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Read:
    address: int
    length: int


@dataclass(frozen=True)
class Write:
    address: int
    data: bytes


@dataclass(frozen=True)
class RegWrite:
    """A write held until ACTION."""

    address: int
    data: bytes


@dataclass(frozen=True)
class Action:
    pass


@dataclass(frozen=True)
class SyncRead:
    address: int
    length: int
    ids: tuple[int, ...]
    fast: bool = False
    """Dynamixel Fast Sync Read: one combined reply."""


@dataclass(frozen=True)
class SyncWrite:
    address: int
    length: int
    data: dict[int, bytes]
