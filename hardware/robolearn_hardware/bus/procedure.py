"""The calibration procedure, as a library function a CLI (or a test) drives through a `CalibrationUI`.

``calibrate(bus, ui, full_turn=..., drive_modes=...)``:

1. torque off; Homing_Offset 0 and full position limits on the motors being calibrated, so the readings are
   the servos' own (an old offset cannot overflow the new one: LeRobot #1296 / #3193);
2. the user holds the arm in its middle pose; each motor gets the offset that makes it read 2047 there,
   wrapped into the register's range by whole turns (an STS3215 holds |offset| <= 2047);
3. the user moves every joint (but the full-turn ones) through its whole travel while the positions are
   sampled; a jump of more than half a turn between samples is the encoder wrapping, and is unwrapped. When
   the travel crosses the 4095 -> 0 wrap (LeRobot #3587: the middle pose was not the middle of the travel),
   the offset is moved so the travel lies inside 0..4095 and the user is told;
4. offsets and ranges are written to the EEPROM and returned (``MotorCalibration`` per motor).

``ensure_calibrated`` loads a saved calibration and asks nothing when the motors already hold it (LeRobot
#1342); ``align_leader_zero`` removes a leader/follower zero mismatch (LeRobot #3193) by moving the leader's
offsets until it reads what the follower reads in the same pose.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .calibration import MIDDLE, MotorCalibration, homing_offset_for, load_calibration, save_calibration, \
    shift_offset
from .errors import CalibrationError
from .models import NormMode
from .servo_bus import ServoBus

__all__ = ["CalibrationUI", "ConsoleUI", "calibrate", "ensure_calibrated", "align_leader_zero", "MIN_TRAVEL"]

MIN_TRAVEL = 20
"""Ticks a joint must move during the sweep (about 2 degrees) for its range to count as recorded."""


class CalibrationUI(Protocol):
    def tell(self, message: str) -> None:
        """Show a message."""

    def wait(self, message: str) -> None:
        """Show ``message`` and return when the user is ready (presses Enter)."""

    def choose(self, message: str, options: Mapping[str, str]) -> str:
        """Ask a question; returns one key of ``options`` ({key: what it does})."""

    def sweeping(self, positions: Mapping[str, int]) -> bool:
        """Called after each sample of the sweep with the raw positions; False ends the sweep."""


class ConsoleUI:
    """The terminal: Enter to go on; during the sweep the positions are printed and Enter ends it."""

    def __init__(self, stream=None):
        self._stream = stream

    @property
    def stream(self):
        return self._stream or sys.stdout  # looked up when used: a caller may have redirected stdout since

    def tell(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def wait(self, message: str) -> None:
        input(f"{message} [Enter] ")

    def choose(self, message: str, options: Mapping[str, str]) -> str:
        menu = ", ".join(f"{k}: {v}" for k, v in options.items())
        while True:
            answer = input(f"{message} ({menu}) ").strip()
            if answer in options:
                return answer
            self.tell(f"please answer one of {', '.join(options)}")

    def sweeping(self, positions: Mapping[str, int]) -> bool:
        self.stream.write("\r" + "  ".join(f"{n}={v:5d}" for n, v in positions.items()))
        self.stream.flush()
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        if ready:
            sys.stdin.readline()
            self.stream.write("\n")
            return False
        return True


def calibrate(bus: ServoBus, ui: CalibrationUI, *, names: Sequence[str] | None = None,
              full_turn: Sequence[str] = (), drive_modes: Mapping[str, int] | None = None,
              sample_period_s: float = 0.02, max_sweep_s: float = 600.0) -> dict[str, MotorCalibration]:
    """Calibrate ``names`` (default: every motor of ``bus``, which must be connected); see the module docstring."""
    names = list(names or bus.motors)
    drive_modes = dict(drive_modes or {})
    res = {n: bus.motors[n].spec.resolution for n in names}
    protocol = bus.protocol
    bus.disable_torque(names)
    for n in names:
        if protocol == "dynamixel":
            bus.write("Drive_Mode", n, 0)
        bus.write("Homing_Offset", n, 0)
        bus.write("Min_Position_Limit", n, 0)
        bus.write("Max_Position_Limit", n, res[n] - 1)

    ui.wait("Move the arm to the middle of its range of motion (every joint half-way between its limits)")
    actual = bus.sync_read("Present_Position", names)
    offsets = {n: homing_offset_for(protocol, actual[n], res[n]) for n in names}
    for n in names:
        bus.write("Homing_Offset", n, offsets[n])

    sweep = [n for n in names if n not in full_turn]
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    if sweep:
        ui.wait(f"Move each of {', '.join(sweep)} through its whole range of motion, then stop the recording")
        last = bus.sync_read("Present_Position", sweep)
        unwrapped = {n: float(v) for n, v in last.items()}
        lo, hi = dict(unwrapped), dict(unwrapped)
        deadline = time.monotonic() + max_sweep_s
        while ui.sweeping(last) and time.monotonic() < deadline:
            time.sleep(sample_period_s)
            now = bus.sync_read("Present_Position", sweep)
            for n in sweep:
                step = now[n] - last[n]
                half = res[n] / 2
                if step > half:  # the encoder wrapped 0 -> 4095 (moving down) or the reverse
                    step -= res[n]
                elif step < -half:
                    step += res[n]
                unwrapped[n] += step
                lo[n], hi[n] = min(lo[n], unwrapped[n]), max(hi[n], unwrapped[n])
            last = now

    calibration = {}
    for n in names:
        motor = bus.motors[n]
        if n in full_turn:
            r_min, r_max = 0, res[n] - 1
        else:
            span = hi[n] - lo[n]
            if span < MIN_TRAVEL:
                raise CalibrationError(f"motor {n!r} moved {span:.0f} ticks during the sweep; move it through its "
                                       "whole range of motion and calibrate again")
            if span >= res[n] - 1:
                raise CalibrationError(f"motor {n!r} turned a whole turn during the sweep; list it as a full-turn "
                                       "joint or keep it inside its travel, and calibrate again")
            r_min, r_max = round(lo[n]), round(hi[n])
            if r_min < 0 or r_max > res[n] - 1:
                shift = round((lo[n] + hi[n]) / 2) - MIDDLE
                offsets[n] = shift_offset(protocol, offsets[n], shift, res[n])
                r_min, r_max = r_min - shift, r_max - shift
                bus.write("Homing_Offset", n, offsets[n])
                ui.tell(f"{n}: its travel crossed the encoder's {res[n] - 1} -> 0 wrap; its zero moved by {shift} "
                        f"ticks so the travel lies inside 0..{res[n] - 1} ({r_min}..{r_max})")
        calibration[n] = MotorCalibration(motor.id, int(drive_modes.get(n, 0)), offsets[n], r_min, r_max)
    bus.write_calibration(calibration)
    return calibration


def ensure_calibrated(bus: ServoBus, path: str | os.PathLike, ui: CalibrationUI, *, overwrite: bool = False,
                      **calibrate_kw) -> dict[str, MotorCalibration]:
    """The calibration at ``path`` made current on ``bus``, asking only when something must be decided:

    - a file the motors already hold: used, nothing asked;
    - a file the motors do not hold: the user chooses between writing it to the motors and (only with
      ``overwrite``) calibrating again;
    - no file: calibrate and save it there.
    """
    path = Path(path)
    if path.exists():
        saved = load_calibration(path)
        if set(saved) != set(bus.motors):
            raise CalibrationError(f"calibration file {path} is for motors {sorted(saved)}, this device has "
                                   f"{sorted(bus.motors)}; calibrate again with --overwrite")
        if bus.is_calibrated(saved):
            bus.calibration = saved
            ui.tell(f"the motors hold the calibration in {path}; nothing to do")
            return saved
        options = {"w": f"write {path} to the motors"}
        if overwrite:
            options["c"] = "calibrate again and replace the file"
        answer = ui.choose(f"the motors do not hold the calibration in {path}", options)
        if answer == "w":
            bus.write_calibration(saved)
            return saved
    calibration = calibrate(bus, ui, **calibrate_kw)
    save_calibration(path, calibration, overwrite=overwrite)
    ui.tell(f"calibration saved to {path}")
    return calibration


def align_leader_zero(leader: ServoBus, follower_reading: Mapping[str, float], *, tolerance: float = 2.0,
                      names: Sequence[str] | None = None) -> dict[str, float]:
    """With the leader held in the pose the follower is in (``follower_reading``, normalised), move the leader's
    homing offsets so it reads the same; ranges stay where they are (a leader's range limits nothing).

    Returns {motor: mismatch before} for the motors that differed by more than ``tolerance`` (normalised
    units) and were moved; the new calibration is ``leader.calibration`` (and in the leader's EEPROM).
    """
    names = list(names or follower_reading)
    reading = leader.read_positions(names)
    moved: dict[str, float] = {}
    cal = dict(leader.calibration or {})
    for n in names:
        delta = reading[n] - follower_reading[n]
        if abs(delta) <= tolerance:
            continue
        motor, c = leader.motors[n], cal[n]
        span = c.range_max - c.range_min
        per_tick = {NormMode.DEGREES: 360.0 / (motor.spec.resolution - 1), NormMode.RANGE_M100_100: 200.0 / span,
                    NormMode.RANGE_0_100: 100.0 / span}[motor.norm]
        ticks = round(delta / per_tick) * (-1 if c.drive_mode else 1)
        cal[n] = MotorCalibration(c.id, c.drive_mode, shift_offset(leader.protocol, c.homing_offset, ticks,
                                                                  motor.spec.resolution), c.range_min, c.range_max)
        moved[n] = delta
    if moved:
        leader.write_calibration({n: cal[n] for n in moved})
    return moved
