"""Serial ports that servo controller boards show up as, and which one appeared or disappeared."""

from __future__ import annotations

import glob
from collections.abc import Sequence

__all__ = ["PORT_PATTERNS", "serial_ports", "port_difference"]

PORT_PATTERNS = ("/dev/ttyUSB*", "/dev/ttyACM*", "/dev/tty.usbmodem*", "/dev/tty.usbserial*")


def serial_ports(patterns: Sequence[str] = PORT_PATTERNS) -> list[str]:
    return sorted({p for pattern in patterns for p in glob.glob(pattern)})


def port_difference(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """Ports in one list and not the other (the one unplugged, or plugged in, between the two)."""
    return sorted(set(before) ^ set(after))
