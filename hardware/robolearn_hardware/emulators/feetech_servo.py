"""An emulated Feetech STS3215 with the rules of its control table.

- ``Present_Position = (shaft - Homing_Offset) mod 4096``: a single-turn absolute encoder, so an offset
  placing the wrap inside a joint's travel makes the reading jump 4095 -> 0 (LeRobot #3587). In position
  mode the servo moves inside that 0..4095 frame (never across the wrap), with Goal_Position clamped to
  the position limits, at Goal_Velocity steps/s (0 = full speed).
- Modes: 0 position, 1 velocity (Goal_Velocity), 2 PWM (Goal_Time = duty in 0.1 %), 3 step (each
  Goal_Position write moves that many signed steps).
- ``Lock`` (55): EEPROM writes with Lock = 1 take effect but are not saved; a power cycle restores the
  saved EEPROM. With Lock = 0 they are saved. Torque does not guard the EEPROM on this servo.
- Feetech replies carry no access or range error: a write to a read-only register or of a value outside
  its range is ignored (read it back to check). Error bits come from ``Status``: an overload (a stall
  longer than the protection time, or injected) sets bit 5 and drops torque; enabling torque clears it.
- ``Torque_Enable = 128`` recentres: Homing_Offset becomes (shaft - 2048) so Present_Position reads 2048.
"""

from __future__ import annotations

from ..protocol.feetech_tables import BAUD_RATES, STATUS_BITS, StsMode
from ..protocol.registers import ControlTable
from .servo_base import STALL_TRIP_S, EmulatedServo

__all__ = ["FeetechServo"]

TICKS = 4096
FULL_SPEED = 3000.0
"""Steps/s at Goal_Velocity 0 (about 0.2 s / 60 degrees unloaded)."""


class FeetechServo(EmulatedServo):
    baud_rates = BAUD_RATES

    def __init__(self, table: ControlTable, servo_id: int, *, now: float, position: float = 2048.0,
                 baud: int = 1_000_000):
        super().__init__(table, servo_id, now=now, position=position, baud=baud)
        self.target = float(position)
        """Shaft target in position/step mode (ticks)."""
        self._refresh(now)

    @property
    def mode(self) -> int:
        return self.get("Operating_Mode")

    @property
    def replies_to_all(self) -> bool:
        return self.get("Response_Status_Level") == 1

    def status_error(self) -> int:
        return self.get("Status")

    def present_of(self, shaft: float) -> int:
        return (round(shaft) - self.get("Homing_Offset")) % TICKS

    def _shaft_target(self, goal: int) -> float:
        """The shaft position whose reading is ``goal`` without crossing the 4095 -> 0 wrap."""
        offset = self.get("Homing_Offset")
        unwrapped = self.shaft.position - offset
        turn = unwrapped - (unwrapped % TICKS)
        return turn + goal + offset

    def _integrate(self, t0: float, t1: float) -> None:
        dt = t1 - t0
        if not self.torque:
            self._move(dt)
            return
        mode = self.mode
        if mode in (StsMode.POSITION, StsMode.STEP):
            speed = abs(self.get("Goal_Velocity")) or FULL_SPEED
            self._move(dt, target=self.target, vmax=min(speed, FULL_SPEED))
        elif mode == StsMode.VELOCITY:
            v = max(-FULL_SPEED, min(FULL_SPEED, float(self.get("Goal_Velocity"))))
            self._move(dt, velocity=v)
        elif mode == StsMode.PWM:
            self._move(dt, velocity=self.get("Goal_Time") / 1000.0 * FULL_SPEED)
        if self.blocked and self.stall_s > STALL_TRIP_S:
            self.trip(STATUS_BITS["overload"])

    def _refresh(self, now: float) -> None:
        present = self.present_of(self.shaft.position)
        self.set("Present_Position", present)
        self.set("Present_Velocity", max(-32767, min(32767, round(self.shaft.velocity))))
        err = (self.target - self.shaft.position) if self.torque and self.mode in (StsMode.POSITION, StsMode.STEP) else 0.0
        load = 1000 if self.blocked and self.torque and abs(err) > 1 else max(-1000, min(1000, round(2 * err)))
        self.set("Present_Load", load)
        self.set("Present_Current", round(load * 0.3))
        self.set("Moving", int(abs(self.shaft.velocity) > 10 * self.get("Moving_Velocity_Threshold")))

    def trip(self, bits: int) -> None:
        self.set("Status", self.get("Status") | bits)
        self.set("Torque_Enable", 0)
        self.shaft.hold()

    def read(self, address: int, length: int, now: float) -> tuple[int, bytes | None]:
        self.advance(now)
        return self.status_error(), self.read_bytes(address, length)

    def write(self, address: int, data: bytes, now: float) -> int:
        """Apply a WRITE: each covered register with a valid value is written, the rest ignored."""
        self.advance(now)
        span = self._span(address, data)
        for reg, value in span or []:
            if not reg.writable or not reg.accepts(value):
                continue
            if reg.name == "Torque_Enable":
                self._torque(value)
                continue
            self.set(reg.name, value)
            if reg.eeprom and self.get("Lock") == 0:
                self.saved[reg.address:reg.end] = self.memory[reg.address:reg.end]
            if reg.name == "Goal_Position":
                if self.mode == StsMode.STEP:
                    self.target = self.shaft.position + value
                else:
                    lo, hi = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
                    self.target = self._shaft_target(max(lo, min(hi, value)) if lo < hi else value % TICKS)
        self._refresh(now)
        return self.status_error()

    def _torque(self, value: int) -> None:
        if value == 128:
            self.set("Homing_Offset", round(self.shaft.position) - 2048)
            if self.get("Lock") == 0:
                reg = self.table["Homing_Offset"]
                self.saved[reg.address:reg.end] = self.memory[reg.address:reg.end]
            self.target = self.shaft.position
            return
        if value == 1 and not self.torque:
            self.set("Status", 0)
            self.target = self.shaft.position  # hold where it is until a goal arrives
            self.set("Goal_Position", self.present_of(self.shaft.position))
        self.set("Torque_Enable", value)

    def reg_write(self, address: int, data: bytes, now: float) -> int:
        self.advance(now)
        self.pending_write = (address, bytes(data))
        self.set("Async_Write_Flag", 1)
        return self.status_error()

    def action(self, now: float) -> int:
        if self.pending_write is None:
            return self.status_error()
        address, data = self.pending_write
        self.pending_write = None
        self.set("Async_Write_Flag", 0)
        return self.write(address, data, now)

    def factory_reset(self, now: float) -> int:
        """RESET: the control table back to factory values (ID and baud rate included), saved."""
        self.advance(now)
        self.memory[:] = self.table.defaults()
        self.saved[:] = self.memory
        self.target = self.shaft.position
        self._refresh(now)
        return self.status_error()

    def power_cycle(self, now: float) -> None:
        """Power off and on: saved EEPROM back, RAM to defaults, torque off."""
        self.advance(now)
        defaults = self.table.defaults()
        self.memory[:] = defaults
        for reg in self.table:
            if reg.eeprom:
                self.memory[reg.address:reg.end] = self.saved[reg.address:reg.end]
        self.pending_write = None
        self.target = self.shaft.position
        self._refresh(now)
