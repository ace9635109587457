"""Calibration: per-motor homing offset, drive direction and range, stored as JSON per device id.

Conventions (LeRobot's, so its calibration files load here):

- ``homing_offset`` is written to the servo's Homing_Offset register. The servo applies it: Feetech
  ``Present = Actual - offset`` (taken mod 4096), Dynamixel ``Present = Actual + offset``. Calibration
  places the joint's middle pose at ``MIDDLE`` = 2047.
- ``range_min`` / ``range_max`` are raw Present_Position ticks at the ends of the joint's travel (0..4095
  for a full-turn joint); they are also written to the servo's position limits.
- ``drive_mode`` 1 reverses the joint's direction; robolearn applies it in software for every model
  (the Dynamixel Drive_Mode register stays 0), so raw ticks mean the same on every bus.

Normalisation (one motor, ``raw`` ticks -> value):
    DEGREES:        (raw - mid) * 360 / (resolution - 1), mid = (range_min + range_max) / 2; negated by drive_mode
    RANGE_M100_100: raw clamped to the range, mapped onto [-100, 100]; negated by drive_mode
    RANGE_0_100:    raw clamped to the range, mapped onto [0, 100]; 100 - value with drive_mode
``unnormalize`` inverts it, rounds to a tick and clamps the tick into the range (a goal never leaves it).

File format (``{motor name: fields}``)::

    {"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -12, "range_min": 850, "range_max": 3200}, ...}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import CalibrationError
from .models import Motor, NormMode

__all__ = ["MIDDLE", "MotorCalibration", "normalize", "unnormalize", "load_calibration", "save_calibration",
           "calibration_path", "calibration_dir", "wrap_offset", "homing_offset_for", "shift_offset"]

MIDDLE = 2047
"""Raw reading a calibrated joint has in its middle pose (half a turn)."""

FEETECH_OFFSET_LIMIT = 2047
"""|Homing_Offset| the STS3215 can hold: sign-magnitude with the sign in bit 11 (LeRobot #1296, #3193)."""


@dataclass(frozen=True)
class MotorCalibration:
    id: int
    drive_mode: int
    """0: the servo's own direction; 1: reversed."""
    homing_offset: int
    """Ticks, as written to the servo's Homing_Offset register."""
    range_min: int
    """Raw Present_Position at one end of the travel."""
    range_max: int
    """Raw Present_Position at the other end (> range_min)."""

    def __post_init__(self) -> None:
        if self.drive_mode not in (0, 1):
            raise CalibrationError(f"motor id {self.id}: drive_mode must be 0 or 1, got {self.drive_mode!r}")
        if not self.range_min < self.range_max:
            raise CalibrationError(f"motor id {self.id}: range_min {self.range_min} must be below range_max "
                                   f"{self.range_max}")


def normalize(motor: Motor, cal: MotorCalibration, raw: float) -> float:
    lo, hi = cal.range_min, cal.range_max
    if motor.norm is NormMode.DEGREES:
        value = (raw - (lo + hi) / 2.0) * 360.0 / (motor.spec.resolution - 1)
        return -value if cal.drive_mode else value
    frac = (min(hi, max(lo, raw)) - lo) / (hi - lo)
    if motor.norm is NormMode.RANGE_M100_100:
        value = frac * 200.0 - 100.0
        return -value if cal.drive_mode else value
    value = frac * 100.0
    return 100.0 - value if cal.drive_mode else value


def unnormalize(motor: Motor, cal: MotorCalibration, value: float) -> int:
    lo, hi = cal.range_min, cal.range_max
    if motor.norm is NormMode.DEGREES:
        value = -value if cal.drive_mode else value
        raw = value * (motor.spec.resolution - 1) / 360.0 + (lo + hi) / 2.0
    elif motor.norm is NormMode.RANGE_M100_100:
        value = -value if cal.drive_mode else value
        raw = (value + 100.0) / 200.0 * (hi - lo) + lo
    else:
        value = 100.0 - value if cal.drive_mode else value
        raw = value / 100.0 * (hi - lo) + lo
    return int(min(hi, max(lo, round(raw))))


# -- homing offsets --

def wrap_offset(offset: int, lo: int, hi: int, resolution: int = 4096) -> int:
    """``offset`` moved by whole turns into [lo, hi]: a single-turn encoder reads the same either way, so an
    offset past the register's range (LeRobot #1296: "Magnitude 2114 exceeds 2047") wraps instead of failing.
    An offset exactly half a turn out (2048 on an STS3215) cannot be held: the nearest held value is returned,
    one tick off."""
    if lo <= offset <= hi:
        return offset
    wrapped = (offset - lo) % resolution + lo
    if wrapped <= hi:
        return wrapped
    return hi if wrapped - hi < lo + resolution - wrapped else lo


def homing_offset_for(protocol: str, actual: int, resolution: int = 4096) -> int:
    """The Homing_Offset that makes a servo reading ``actual`` (with offset 0) read ``MIDDLE``, wrapped into the
    register's range."""
    if protocol == "feetech":
        return wrap_offset(actual - MIDDLE, -FEETECH_OFFSET_LIMIT, FEETECH_OFFSET_LIMIT, resolution)
    return wrap_offset(MIDDLE - actual, -1_044_479, 1_044_479, resolution)


def shift_offset(protocol: str, offset: int, ticks: int, resolution: int = 4096) -> int:
    """The offset that makes every reading ``ticks`` smaller than ``offset`` does (wrapped into range)."""
    if protocol == "feetech":
        return wrap_offset(offset + ticks, -FEETECH_OFFSET_LIMIT, FEETECH_OFFSET_LIMIT, resolution)
    return wrap_offset(offset - ticks, -1_044_479, 1_044_479, resolution)


# -- files --

def user_dir(override: str, xdg: str, home_default: str, name: str) -> Path:
    """``$<override>``, else ``$<xdg>/robolearn/<name>`` (``~/<home_default>/robolearn/<name>``)."""
    env = os.environ.get(override)
    if env:
        return Path(env).expanduser()
    base = os.environ.get(xdg) or str(Path.home() / home_default)
    return Path(base) / "robolearn" / name


def calibration_dir() -> Path:
    """``$ROBOLEARN_CALIBRATION``, else ``$XDG_CONFIG_HOME/robolearn/calibration`` (``~/.config/...``)."""
    return user_dir("ROBOLEARN_CALIBRATION", "XDG_CONFIG_HOME", ".config", "calibration")


def calibration_path(kind: str, device_id: str, root: str | os.PathLike | None = None) -> Path:
    """Where the calibration of device ``device_id`` of type ``kind`` (e.g. so101_follower) lives."""
    if not device_id or "/" in device_id or device_id.startswith("."):
        raise CalibrationError(f"device id {device_id!r} cannot name a calibration file; use letters, digits, "
                               "'_', '-' (e.g. 'my_arm')")
    return Path(root if root is not None else calibration_dir()) / kind / f"{device_id}.json"


def load_calibration(path: str | os.PathLike) -> dict[str, MotorCalibration]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"calibration file {path} does not exist; calibrate the device first") from None
    except (OSError, ValueError) as e:
        raise CalibrationError(f"calibration file {path} is not readable JSON ({e}); recalibrate (with --overwrite)") \
            from None
    names = {f.name for f in fields(MotorCalibration)}
    if not isinstance(data, dict):
        raise CalibrationError(f"calibration file {path} holds a {type(data).__name__}; expected {{motor: fields}}")
    out = {}
    for motor, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != names or not all(isinstance(v, int) for v in entry.values()):
            raise CalibrationError(f"calibration file {path}: motor {motor!r} has {entry!r}; expected integer "
                                   f"fields {sorted(names)}")
        out[motor] = MotorCalibration(**entry)
    return out


def save_calibration(path: str | os.PathLike, calibration: Mapping[str, MotorCalibration], *,
                     overwrite: bool = False) -> Path:
    """Write ``calibration`` as JSON; an existing file is replaced only with ``overwrite=True`` (atomically)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CalibrationError(f"calibration file {path} already exists; pass overwrite=True (--overwrite) to "
                               "replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({m: asdict(c) for m, c in calibration.items()}, indent=2) + "\n")
    os.replace(tmp, path)
    return path
