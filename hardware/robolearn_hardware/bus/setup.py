"""Setting up new servos, one at a time: find the single servo on the bus (any id, any baud rate), check its
model, give it the id and baud rate the arm expects. ``robolearn setup-motors`` walks an arm's motors with it.

Example::

    setup_motor("/dev/ttyACM0", Motor(3, "sts3215"))   # the one servo connected now becomes id 3 at 1 Mbps
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import dynamixel_tables, feetech_tables
from ..protocol.client import CorruptReply, NoReply, OwnCodecPort
from .errors import BusError, MotorMismatchError
from .models import Motor

__all__ = ["FoundServo", "find_single_servo", "setup_motor"]

_BAUDS = {"dynamixel": dynamixel_tables.BAUD_RATES, "feetech": feetech_tables.BAUD_RATES}


@dataclass(frozen=True)
class FoundServo:
    id: int
    baud: int
    model_number: int


def find_single_servo(port: str, protocol: str, first_baud: int = 1_000_000, wait_s: float = 0.05) -> FoundServo:
    """The one servo on ``port``, found by a broadcast ping at each baud rate the protocol knows (``first_baud``
    first); raises `BusError` when none or several answer."""
    bauds = [first_baud] + [b for b in sorted(_BAUDS[protocol].values(), reverse=True) if b != first_baud]
    for baud in bauds:
        with OwnCodecPort(port, baud, protocol) as bus:  # type: ignore[arg-type]
            found = bus.broadcast_ping(wait_s)
            if len(found) > 1:
                raise BusError(f"{port}: servos {sorted(found)} answered at {baud} baud; connect only the servo to set "
                               "up (one at a time)")
            if found:
                (servo_id,) = found
                data, _ = bus.read(servo_id, 0 if protocol == "dynamixel" else 3, 2)
                return FoundServo(servo_id, baud, int.from_bytes(data, "little"))
    raise BusError(f"{port}: no servo answered at any baud rate ({', '.join(map(str, bauds))}); check that one servo "
                   "is connected and powered")


def setup_motor(port: str, motor: Motor, baud: int = 1_000_000) -> FoundServo:
    """Give the single servo on ``port`` the id of ``motor`` and ``baud``; returns what it was before."""
    protocol = motor.spec.protocol
    codes = {bps: code for code, bps in _BAUDS[protocol].items()}
    if baud not in codes:
        raise BusError(f"{motor.model} servos run at {sorted(codes)} baud, not {baud}")
    found = find_single_servo(port, protocol, baud)
    if found.model_number != motor.spec.model_number:
        raise MotorMismatchError(f"{port}: the servo found (id {found.id}) is model number {found.model_number}, not "
                                 f"{motor.model} ({motor.spec.model_number}); connect the right servo")
    table = motor.spec.table
    with OwnCodecPort(port, found.baud, protocol) as bus:  # type: ignore[arg-type]
        def write(register: str, value: int, servo_id: int) -> None:
            reg = table[register]
            try:
                bus.write(servo_id, reg.address, table.encode(reg, value))
            except (NoReply, CorruptReply):
                pass  # the reply of an ID or baud change may come from the new id or at the new baud: checked below

        write("Torque_Enable", 0, found.id)  # EEPROM is locked while torque is on (Dynamixel)
        if protocol == "feetech":
            write("Lock", 0, found.id)  # saved across power cycles only with Lock 0
        write("ID", motor.id, found.id)
        write("Baud_Rate", codes[baud], motor.id)
    with OwnCodecPort(port, baud, protocol, timeout_s=0.1) as bus:  # type: ignore[arg-type]
        try:
            bus.ping(motor.id)
        except (NoReply, CorruptReply):
            raise BusError(f"{port}: the servo did not answer as id {motor.id} at {baud} baud after setup; power-cycle "
                           "it and run setup again") from None
    return found
