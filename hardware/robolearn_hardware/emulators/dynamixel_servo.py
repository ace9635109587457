"""An emulated Dynamixel X-series servo (XL330-M288, XL430-W250) with the rules of its control table.

- EEPROM (addresses < 64) is writable only with Torque_Enable = 0, else Access Error (7). Read-only or
  undefined addresses: Access Error; a write that cuts a register: Data Length Error (5); a value outside
  the register's range: Data Range Error (4); Goal_Position outside the position limits in position mode,
  or a goal above its limit register (PWM, current, velocity): Data Limit Error (6).
- Present_Position = dir * shaft + Homing_Offset, dir = -1 when Drive_Mode bit 0 (reverse) is set; goals
  are converted back the same way. Torque on copies Present_Position into Goal_Position.
- Operating modes: current (XL330) and PWM drive the shaft at a speed proportional to the goal (an
  unloaded motor), velocity tracks Goal_Velocity, position / extended / current-based position track
  Goal_Position at Profile_Velocity (or Velocity_Limit when 0).
- Bus watchdog (98, 20 ms units, active with torque on): when no instruction reaches the servo for that
  long it stops (Goal_Position = Present_Position, other goals 0), reads -1, and answers goal writes with Data Range
  Error until 0 is written.
- Hardware errors (overload after a stall, or injected): Hardware_Error_Status bit, torque off, the alert
  bit 0x80 in every status packet, Torque_Enable = 1 refused (Result Fail) until REBOOT.
"""

from __future__ import annotations

from ..protocol.dynamixel import ALERT, ErrorCode
from ..protocol.dynamixel_tables import BAUD_RATES, TICKS_PER_REV, VELOCITY_UNIT_TICKS_PER_S, OperatingMode
from ..protocol.registers import ControlTable
from .servo_base import STALL_TRIP_S, EmulatedServo

__all__ = ["DynamixelServo", "HW_OVERLOAD"]

HW_OVERLOAD = 0x20
"""Hardware_Error_Status bit 5."""
WATCHDOG_UNIT_S = 0.020
GOAL_ADDRESSES = range(100, 120)  # Goal PWM, Current, Velocity, Profile..., Goal Position
_POSITION_MODES = (OperatingMode.POSITION, OperatingMode.EXTENDED_POSITION, OperatingMode.CURRENT_BASED_POSITION)


class DynamixelServo(EmulatedServo):
    baud_rates = BAUD_RATES

    def __init__(self, table: ControlTable, servo_id: int, *, now: float, position: float = 2048.0,
                 baud: int = 1_000_000):
        super().__init__(table, servo_id, now=now, position=position, baud=baud)
        self.last_comm = now
        self._refresh(now)

    # -- derived quantities --
    @property
    def direction(self) -> int:
        return -1 if self.get("Drive_Mode") & 1 else 1

    @property
    def mode(self) -> int:
        return self.get("Operating_Mode")

    @property
    def hardware_error(self) -> int:
        return self.get("Hardware_Error_Status")

    @property
    def watchdog_tripped(self) -> bool:
        return self.get("Bus_Watchdog") == -1

    def status_error(self, code: int = 0) -> int:
        """The status packet's error byte: ``code`` plus the alert bit while a hardware error stands."""
        return code | (ALERT if self.hardware_error else 0)

    def to_present(self, shaft_ticks: float) -> float:
        return self.direction * shaft_ticks + self.get("Homing_Offset")

    def to_shaft(self, present: float) -> float:
        return (present - self.get("Homing_Offset")) * self.direction

    def _vmax(self) -> float:
        limit = self.get("Velocity_Limit")
        profile = self.get("Profile_Velocity")
        units = min(profile, limit) if profile > 0 else limit
        return max(units, 1) * VELOCITY_UNIT_TICKS_PER_S

    # -- time --
    def kick(self, now: float) -> None:
        """An instruction reached this servo: the bus watchdog restarts."""
        self.advance(now)
        self.last_comm = now

    def _integrate(self, t0: float, t1: float) -> None:
        wd = self.get("Bus_Watchdog")
        if wd > 0 and self.torque:
            t_trip = self.last_comm + wd * WATCHDOG_UNIT_S
            if t0 <= t_trip < t1:
                self._drive(t_trip - t0)
                self._refresh(t_trip)
                self._stop_goals()
                self.set("Bus_Watchdog", -1)
                self.shaft.hold()
                t0 = t_trip
        self._drive(t1 - t0)
        if self.blocked and self.torque and self.stall_s > STALL_TRIP_S:
            self.trip(HW_OVERLOAD)

    def _drive(self, dt: float) -> None:
        if dt <= 0:
            return
        if not self.torque:
            self._move(dt)
            return
        mode, vmax, d = self.mode, self._vmax(), self.direction
        if mode in _POSITION_MODES:
            self._move(dt, target=self.to_shaft(self.get("Goal_Position")), vmax=vmax)
        elif mode == OperatingMode.VELOCITY:
            self._move(dt, velocity=d * self.get("Goal_Velocity") * VELOCITY_UNIT_TICKS_PER_S)
        elif mode == OperatingMode.PWM:
            self._move(dt, velocity=d * self.get("Goal_PWM") / 885.0 * self.get("Velocity_Limit") * VELOCITY_UNIT_TICKS_PER_S)
        elif mode == OperatingMode.CURRENT:
            frac = self.get("Goal_Current") / max(self.get("Current_Limit"), 1)
            self._move(dt, velocity=d * frac * self.get("Velocity_Limit") * VELOCITY_UNIT_TICKS_PER_S)

    def _refresh(self, now: float) -> None:
        present = self.to_present(self.shaft.position)
        velocity_units = self.direction * self.shaft.velocity / VELOCITY_UNIT_TICKS_PER_S
        self.set("Present_Position", round(present))
        self.set("Present_Velocity", round(velocity_units))
        self.set("Moving", int(abs(velocity_units) > self.get("Moving_Threshold")))
        err = (self.get("Goal_Position") - present) if self.torque and self.mode in _POSITION_MODES else 0.0
        effort = 1000 if self.blocked and self.torque and abs(err) > 1 else max(-1000, min(1000, round(2 * err)))
        load_name = "Present_Current" if self.has("Present_Current") else "Present_Load"
        self.set(load_name, effort if load_name == "Present_Load" else round(effort * 1.75))
        self.set("Present_PWM", round(effort * 0.885))
        self.set("Moving_Status", int(self.torque and abs(err) <= self.get("Moving_Threshold")))
        self.set("Realtime_Tick", int(now * 1000) % 32768)
        self.set("Position_Trajectory", self.get("Goal_Position") if self.torque else round(present))
        self.set("Velocity_Trajectory", round(velocity_units))

    def _stop_goals(self) -> None:
        """Stop in any mode: hold the present position, zero the velocity, PWM and current goals."""
        self.set("Goal_Position", round(self.to_present(self.shaft.position)))
        for name in ("Goal_Velocity", "Goal_PWM", "Goal_Current"):
            if self.has(name):
                self.set(name, 0)

    # -- faults --
    def trip(self, bits: int) -> None:
        """A hardware error: record it, drop torque."""
        self.set("Hardware_Error_Status", self.hardware_error | bits)
        self.set("Torque_Enable", 0)
        self.shaft.hold()

    # -- instructions --
    def read(self, address: int, length: int, now: float) -> tuple[int, bytes]:
        self.advance(now)
        data = self.read_bytes(address, length)
        if data is None:
            return self.status_error(ErrorCode.ACCESS), b""
        return self.status_error(), data

    def check_write(self, address: int, data: bytes) -> tuple[int, list]:
        """(error code, [(register, value)]) for a write, applying every rule but changing nothing."""
        span = self._span(address, data)
        if span is None:
            if address < 0 or address + len(data) > self.table.size or any(
                    self.table.at(a) is None for a in range(address, address + len(data))):
                return ErrorCode.ACCESS, []
            return ErrorCode.DATA_LENGTH, []
        for reg, value in span:
            if not reg.writable or (reg.eeprom and self.torque):
                return ErrorCode.ACCESS, []
            if not reg.accepts(value):
                return ErrorCode.DATA_RANGE, []
            if self.watchdog_tripped and reg.address in GOAL_ADDRESSES and reg.name.startswith("Goal"):
                return ErrorCode.DATA_RANGE, []
            if reg.name == "Torque_Enable" and value == 1 and self.hardware_error:
                return ErrorCode.RESULT_FAIL, []
            if reg.name == "Goal_Position" and self.mode == OperatingMode.POSITION and not (
                    self.get("Min_Position_Limit") <= value <= self.get("Max_Position_Limit")):
                return ErrorCode.DATA_LIMIT, []
            limit = {"Goal_PWM": "PWM_Limit", "Goal_Current": "Current_Limit", "Goal_Velocity": "Velocity_Limit"}.get(reg.name)
            if limit and abs(value) > self.get(limit):
                return ErrorCode.DATA_LIMIT, []
        return ErrorCode.NONE, span

    def write(self, address: int, data: bytes, now: float) -> int:
        """Apply a WRITE; returns the status error byte."""
        self.advance(now)
        code, span = self.check_write(address, data)
        if code:
            return self.status_error(code)
        for reg, value in span:
            if reg.name == "Torque_Enable" and value == 1 and not self.torque:
                self.set("Goal_Position", round(self.to_present(self.shaft.position)))
            if reg.name == "Bus_Watchdog":
                self.last_comm = now
            self.set(reg.name, value)
            if reg.eeprom:
                self.saved[reg.address:reg.end] = self.memory[reg.address:reg.end]
        self._refresh(now)
        return self.status_error()

    def reg_write(self, address: int, data: bytes, now: float) -> int:
        self.advance(now)
        code, _ = self.check_write(address, data)
        if code:
            return self.status_error(code)
        self.pending_write = (address, bytes(data))
        self.set("Registered_Instruction", 1)
        return self.status_error()

    def action(self, now: float) -> int:
        if self.pending_write is None:
            return self.status_error(ErrorCode.INSTRUCTION)
        address, data = self.pending_write
        self.pending_write = None
        self.set("Registered_Instruction", 0)
        return self.write(address, data, now)

    def reboot(self, now: float) -> None:
        """RAM back to defaults (hardware error and watchdog cleared, torque off); EEPROM kept."""
        self.advance(now)
        defaults = self.table.defaults()
        for reg in self.table:
            if not reg.eeprom:
                self.memory[reg.address:reg.end] = defaults[reg.address:reg.end]
        if self.mode == OperatingMode.POSITION:  # single-turn mode restarts inside one turn
            self.shaft.position %= TICKS_PER_REV
        self.pending_write = None
        self.last_comm = now
        self._refresh(now)

    def factory_reset(self, option: int, now: float) -> int:
        if self.torque:
            return self.status_error(ErrorCode.ACCESS)
        keep = {0xFF: (), 0x01: ("ID",), 0x02: ("ID", "Baud_Rate")}[option]
        kept = {name: self.get(name) for name in keep}
        self.memory[:] = self.table.defaults()
        for name, value in kept.items():
            self.set(name, value)
        self.saved[:] = self.memory
        self.reboot(now)
        return self.status_error()

    def power_cycle(self, now: float) -> None:
        self.memory[:] = self.saved
        self.reboot(now)
