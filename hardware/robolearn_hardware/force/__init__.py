"""Force/torque sensing: the ATI Net F/T over RDT (`NetFTSensor`), its wire format (`rdt`) and a loopback
emulator in its own process (`NetFTEmulator`). Registered under the ``robolearn.devices`` entry points:
``make_device("netft", host="192.168.1.1")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .process import NetFTEmulator
from .netft import ForceTorqueStatusError, NetFTError, NetFTSensor
from .rdt import Calibration, Record, build_request, pack_record, parse_netftapi2, parse_record

__all__ = ["Calibration", "ForceTorqueStatusError", "NetFTEmulator", "NetFTError", "NetFTSensor", "Record",
           "build_request", "netft", "pack_record", "parse_netftapi2", "parse_record", "register"]


def netft(host: str, name: str = "ft", port: int = 49152, http_port: int = 80,
          counts_per_force: float | None = None, counts_per_torque: float | None = None, **kwargs: Any) -> NetFTSensor:
    """A Net F/T at `host`; give counts_per_force and counts_per_torque (N, N m) to skip reading its calibration."""
    calibration = None
    if counts_per_force is not None or counts_per_torque is not None:
        calibration = Calibration(counts_per_force or 1_000_000.0, counts_per_torque or 1_000_000.0)
    return NetFTSensor(host, name, port=port, calibration=calibration, http_port=http_port, **kwargs)


def register() -> dict[str, Callable[..., Any]]:
    """Device ids of the force/torque sensors (the ``robolearn.devices`` entry point)."""
    return {"netft": netft}
