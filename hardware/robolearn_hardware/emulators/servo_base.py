"""What every emulated servo shares: a control table in memory, a shaft, and lazy time integration.

A servo's state only changes when the bus hands it a request or the server's tick reaches it, always with
an explicit ``now`` (seconds on any monotonic clock), so the same object runs in real time behind a pty and
in virtual time in a unit test. Vendor rules (EEPROM guards, error codes, units) live in the subclasses.

A servo whose shaft is a simulated joint (``twin_driven``, set by `robolearn_hardware.twins.coupling`) does not
integrate its own shaft: its rules still run and ``_move`` records what it drives the shaft to do as
``command`` (a `ShaftCommand`); the twin moves the joint and hands the shaft back with ``place_shaft``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.registers import ControlTable, Register
from .motion import Shaft

__all__ = ["EmulatedServo", "ShaftCommand"]

STALL_TICKS = 40.0
"""Tracking error (ticks) beyond which a blocked joint counts as stalled."""
STALL_TRIP_S = 0.1
"""Stall time after which an overload trips (a blocked gripper squeezing)."""


@dataclass(frozen=True)
class ShaftCommand:
    """What a servo drives its shaft to do: track ``target`` (ticks) at up to ``vmax`` (ticks/s), or turn at
    ``velocity`` (ticks/s); neither: torque off, the shaft is free."""

    target: float | None = None
    vmax: float = 0.0
    velocity: float | None = None


class EmulatedServo:
    """Base of the vendor servos; ``memory`` is the live control table."""

    baud_rates: dict[int, int] = {}
    """Baud_Rate register code -> bits per second (set by the vendor subclass)."""

    def __init__(self, table: ControlTable, servo_id: int, *, now: float, position: float = 2048.0,
                 baud: int = 1_000_000):
        codes = {v: k for k, v in self.baud_rates.items()}
        if baud not in codes:
            raise ValueError(f"{table.model} runs at {sorted(codes)} baud, not {baud}")
        self.table = table
        self.memory = table.defaults()
        self.saved = bytearray(self.memory)
        """EEPROM contents that survive a power cycle."""
        self.shaft = Shaft(position=float(position))
        self.t = now
        self.blocked = False
        """Fault: the joint cannot move (something holds it); with torque on it stalls, then overloads."""
        self.stall_s = 0.0
        self.pending_write: tuple[int, bytes] | None = None
        """A REG_WRITE waiting for ACTION."""
        self.twin_driven = False
        """The shaft is a twin's joint: ``_move`` records ``command`` and leaves the shaft to the twin."""
        self.command = ShaftCommand()
        """The last drive ``_move`` saw (module docstring)."""
        self.set("ID", servo_id)
        self.set("Baud_Rate", codes[baud])
        self.saved[:] = self.memory

    # -- raw register access (no rules: the emulator's own bookkeeping) --
    def get(self, name: str) -> int:
        reg = self.table[name]
        return self.table.decode(reg, bytes(self.memory[reg.address:reg.end]))

    def set(self, name: str, value: int) -> None:
        reg = self.table[name]
        self.memory[reg.address:reg.end] = self.table.encode(reg, value)

    def has(self, name: str) -> bool:
        return name in self.table

    @property
    def id(self) -> int:
        return self.get("ID")

    @property
    def baud(self) -> int:
        return self.baud_rates[self.get("Baud_Rate")]

    @property
    def torque(self) -> bool:
        return self.get("Torque_Enable") == 1

    @property
    def return_delay_s(self) -> float:
        return self.get("Return_Delay_Time") * 2e-6

    def registers(self) -> dict[str, int]:
        """Every register by name (a snapshot for tests and the control channel)."""
        return {reg.name: self.get(reg.name) for reg in self.table}

    def _span(self, address: int, data: bytes) -> list[tuple[Register, int]] | None:
        """(register, value) for each register ``data`` covers exactly; None if it cuts one or hits a gap."""
        end = address + len(data)
        if address < 0 or end > self.table.size:
            return None
        regs = self.table.span(address, len(data))
        if sum(r.size for r in regs) != len(data) or regs[0].address != address or regs[-1].end != end:
            return None
        return [(r, self.table.decode(r, bytes(data[r.address - address:r.end - address]))) for r in regs]

    def read_bytes(self, address: int, length: int) -> bytes | None:
        if address < 0 or length < 1 or address + length > self.table.size:
            return None
        return bytes(self.memory[address:address + length])

    # -- time --
    def advance(self, now: float, refresh: bool = True) -> None:
        """Integrate the shaft and the servo's timers up to ``now``; refresh the Present registers (unless the
        caller is about to: a twin placing the shaft)."""
        dt = now - self.t
        if dt > 0:
            self._integrate(self.t, now)
            self.t = now
        if refresh:
            self._refresh(now)

    def _integrate(self, t0: float, t1: float) -> None:
        raise NotImplementedError

    def _refresh(self, now: float) -> None:
        raise NotImplementedError

    def place_shaft(self, position: float, velocity: float, now: float) -> None:
        """The shaft is at ``position`` ticks moving at ``velocity`` ticks/s at ``now`` (a twin's joint, or a hand
        turning it); the Present registers follow."""
        self.advance(now, refresh=False)
        self.shaft.position, self.shaft.velocity = float(position), float(velocity)
        self._refresh(now)

    def _move(self, dt: float, *, target: float | None = None, vmax: float = 0.0, velocity: float | None = None) -> None:
        """Move the shaft for ``dt`` toward ``target`` (position) or at ``velocity``; a blocked joint stalls."""
        if self.blocked:
            err = abs(target - self.shaft.position) if target is not None else abs(velocity or 0.0)
            self.stall_s = self.stall_s + dt if err > STALL_TICKS else 0.0
        if self.twin_driven:
            self.command = ShaftCommand(target, vmax, velocity)
        elif self.blocked:
            self.shaft.hold()
        elif target is not None:
            self.shaft.track_position(target, vmax, dt)
        elif velocity is not None:
            self.shaft.track_velocity(velocity, dt)
        else:
            self.shaft.hold()
