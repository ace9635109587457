"""`ServoBus`: the motors of one serial bus, addressed by name, with retries, error status and calibration.

One class serves Dynamixel Protocol 2.0 and Feetech STS buses; the wire goes through a `backends.Transport`
(the vendor SDK by default, robolearn's own codec with ``backend="own"``).

- **Named registers** from the models' control tables: ``read("Present_Position", "elbow_flex")``,
  ``write("Goal_Position", "gripper", 2048)``, ``sync_read("Present_Position")`` / ``sync_write(...)`` for
  many motors in one request (raw register values, decoded: sign-magnitude and two's complement handled).
- **Retry budget** (`RetryBudget`): a transaction that gets no valid reply is sent again, at most
  ``retries`` times and never after ``within_s`` from its first attempt (the first retry excepted: a first
  attempt that overran the window was a stalled host, not a dead motor); a sync read resends only to the
  motors that did not answer. Every retry is counted in ``stats``; a transaction that exhausts the budget
  raises `MotorNotRespondingError` naming the motors. Each attempt waits the SDK's reply timeout (wire time
  + 2 x ``latency_timer_ms`` + 2 ms), so a dead motor is reported within ``within_s`` + one timeout.
- **Error status**: every reply's error byte is checked. A Dynamixel alert (bit 7) is followed by a read of
  Hardware_Error_Status; Feetech status bits are decoded. Both raise `HardwareErrorAlert` naming the motor
  and the fault (overload, overheating, voltage ...); a refused request raises `ServoRejectedError`.
- **Calibration** (`calibration.MotorCalibration`): ``read_positions()`` / ``write_goals()`` speak
  normalised units (degrees, [-100, 100], [0, 100]); ``write_calibration`` puts offsets and limits into the
  servos' EEPROM; ``is_calibrated`` compares them, offsets included (LeRobot #1360).
- **Bus watchdog** (Dynamixel): armed on every motor whose torque is on (``watchdog_s``, 20 ms units), so a
  host that dies or stalls stops the arm; disarmed before torque goes off and on disconnect. A goal write
  after a silence longer than half the watchdog period -- since the last goal write, reads in between included:
  a read does not clear a trip -- first checks for a trip, counts it and re-arms.

Example::

    bus = ServoBus("/dev/ttyUSB0", {"shoulder_pan": Motor(1, "sts3215"), ...}, calibration=cal)
    with bus:
        bus.enable_torque()
        q = bus.read_positions()                  # {"shoulder_pan": 12.3, ...} degrees
        bus.write_goals({"shoulder_pan": 20.0})   # returns what was sent, after clamping and rounding
        bus.stats.retries
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

from robolearn.errors import InvalidValueError

from ..protocol.dynamixel import ALERT, ErrorCode
from ..protocol.feetech_tables import STATUS_BITS
from ..protocol.registers import Register
from .backends import CorruptReply, NoReply, Transport, open_transport
from .calibration import MotorCalibration, normalize, unnormalize
from .errors import BusError, CalibrationError, HardwareErrorAlert, MotorMismatchError, MotorNotRespondingError, \
    ServoRejectedError
from .models import Motor

__all__ = ["ServoBus", "RetryBudget", "BusStats", "DYNAMIXEL_HARDWARE_ERRORS", "WATCHDOG_UNIT_S"]

log = logging.getLogger(__name__)

WATCHDOG_UNIT_S = 0.020
DYNAMIXEL_HARDWARE_ERRORS = {0x01: "input voltage", 0x04: "overheating", 0x08: "motor encoder",
                             0x10: "electrical shock", 0x20: "overload"}
"""Hardware_Error_Status bits."""
_FEETECH_ERRORS = {bit: name.replace("_", " ") for name, bit in STATUS_BITS.items()}


@dataclass(frozen=True)
class RetryBudget:
    """How hard the bus tries before it reports a motor as not responding."""

    retries: int = 3
    """Attempts after the first one that failed (a sync read resends only to the motors that did not answer)."""
    within_s: float = 0.15
    """No retry starts later than this after the transaction's first attempt (seconds), except the first retry: a
    first attempt that overran this (the host was descheduled) is retried once. The default lets all three retries
    run at a stock 16 ms latency timer (about 35 ms per attempt); at 1 ms an attempt takes about 5 ms."""

    def __post_init__(self) -> None:
        if self.retries < 0 or self.within_s < 0:
            raise InvalidValueError(f"retry budget needs retries >= 0 and within_s >= 0, got {self}")


@dataclass
class BusStats:
    """Counters since the bus was made; ``retries_by_motor`` names who needed them."""

    transactions: int = 0
    attempts: int = 0
    retries: int = 0
    no_reply: int = 0
    corrupt: int = 0
    failures: int = 0
    """Transactions that exhausted the retry budget."""
    hardware_alerts: int = 0
    watchdog_trips: int = 0
    retries_by_motor: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


class ServoBus:
    def __init__(self, port: str, motors: Mapping[str, Motor], *, baud: int = 1_000_000, backend: str = "sdk",
                 calibration: Mapping[str, MotorCalibration] | None = None, retry: RetryBudget = RetryBudget(),
                 latency_timer_ms: float = 16.0, watchdog_s: float | None = 0.2,
                 clock: Callable[[], float] = time.monotonic):
        if not motors:
            raise InvalidValueError("a servo bus needs at least one motor")
        protocols = {m.spec.protocol for m in motors.values()}
        if len(protocols) != 1:
            raise InvalidValueError(f"motors {dict(motors)} mix protocols {sorted(protocols)}; one bus speaks one")
        ids = [m.id for m in motors.values()]
        if len(set(ids)) != len(ids):
            raise InvalidValueError(f"motor ids must be distinct on one bus, got {ids}")
        if watchdog_s is not None and not WATCHDOG_UNIT_S <= watchdog_s <= 127 * WATCHDOG_UNIT_S:
            raise InvalidValueError(f"watchdog_s must be within [0.02, 2.54] s (or None: off), got {watchdog_s}")
        self.port = port
        self.motors = dict(motors)
        self.protocol = protocols.pop()
        self.baud, self.backend, self.retry = baud, backend, retry
        self.latency_timer_ms = latency_timer_ms
        self.watchdog_s = watchdog_s if self.protocol == "dynamixel" else None
        self.clock = clock
        self.calibration: dict[str, MotorCalibration] | None = dict(calibration) if calibration else None
        self.stats = BusStats()
        self.torque_on: set[str] = set()
        self._by_id = {m.id: name for name, m in self.motors.items()}
        self._transport: Transport | None = None
        self._last_tx = 0.0
        self._watchdog_suspect = False
        self.last_read_t = float("nan")
        """Capture time of the last sync read (midpoint of its successful attempt, monotonic seconds)."""

    # -- lifecycle --
    @property
    def is_connected(self) -> bool:
        return self._transport is not None

    def connect(self, check_models: bool = True) -> None:
        """Open the port and ping every motor: each must answer, and be the model it is declared as."""
        if self._transport is not None:
            return
        transport = open_transport(self.protocol, self.port, baud=self.baud, backend=self.backend,
                                   latency_timer_ms=self.latency_timer_ms)
        transport.open()
        self._transport = transport
        try:
            if check_models:
                self._check_models()
        except BaseException:
            self._transport = None
            transport.close()
            raise

    def _check_models(self) -> None:
        wrong, silent = [], []
        for name, motor in self.motors.items():
            try:
                model, _ = self._one(name, "a ping", lambda m=motor: self._tx().ping(m.id))
            except MotorNotRespondingError:
                silent.append(name)
                continue
            if model != motor.spec.model_number:
                wrong.append(f"{name!r} (id {motor.id}) is model number {model}, not {motor.model} "
                             f"({motor.spec.model_number})")
        if silent:
            raise MotorNotRespondingError(
                f"{self.port}: {self._names(silent)} did not answer a ping at {self.baud} baud; check cables and "
                "power, or give each servo its id and baud rate (robolearn setup-motors)", silent)
        if wrong:
            raise MotorMismatchError(f"{self.port}: " + "; ".join(wrong) + "; check the arm's config or the servo ids")

    def disconnect(self, disable_torque: bool = True) -> None:
        """Torque off (default) or keep torque with the watchdog disarmed (the servos keep holding), then close.
        Failures on the way are logged, never raised: the port is closed in any case."""
        if self._transport is None:
            return
        try:
            if disable_torque:
                self.disable_torque(strict=False)
            elif self.watchdog_s is not None:
                for name in sorted(self.torque_on):
                    self._quiet(lambda n=name: self.write("Bus_Watchdog", n, 0), f"disarm the watchdog of {name}")
        finally:
            transport, self._transport = self._transport, None
            transport.close()

    def __enter__(self) -> "ServoBus":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    def _tx(self) -> Transport:
        if self._transport is None:
            raise BusError(f"servo bus on {self.port} is not connected; call connect() first")
        now = self.clock()
        if self.watchdog_s is not None and self.torque_on and now - self._last_tx > self.watchdog_s / 2:
            self._watchdog_suspect = True  # the watchdog may have tripped; a read since does not clear a trip
        self._last_tx = now
        return self._transport

    # -- retries --
    def _names(self, names: Iterable[str]) -> str:
        return ", ".join(f"{n!r} (id {self.motors[n].id})" for n in names)

    def _retrying(self, names: list[str], what: str, attempt: Callable[[list[str]], dict[str, str]]) -> None:
        """Run ``attempt(pending)`` -> {motor: "no reply" | "corrupt"} for the motors that failed, again on those
        only, within the retry budget; raises `MotorNotRespondingError` naming the motors when it runs out."""
        start = self.clock()
        tries, pending = 0, list(names)
        self.stats.transactions += 1
        while True:
            self.stats.attempts += 1
            failed = attempt(pending)
            if not failed:
                return
            for kind in failed.values():
                if kind == "corrupt":
                    self.stats.corrupt += 1
                else:
                    self.stats.no_reply += 1
            tries += 1
            elapsed = self.clock() - start
            # the time bound spares the first retry: a first attempt that overran the window was a stalled host
            # (descheduled), not a silent motor (a silent one costs one reply timeout, well within the window)
            if tries > self.retry.retries or (tries > 1 and elapsed > self.retry.within_s):
                self.stats.failures += 1
                why = ", ".join(sorted(set(failed.values())))
                raise MotorNotRespondingError(
                    f"{self.port}: motor(s) {self._names(failed)} did not answer {what} ({why}) after {tries} "
                    f"attempt(s) in {elapsed * 1e3:.0f} ms (retry budget: {self.retry.retries} retries within "
                    f"{self.retry.within_s * 1e3:.0f} ms); check cables and power", list(failed))
            self.stats.retries += 1
            for n in failed:
                self.stats.retries_by_motor[n] = self.stats.retries_by_motor.get(n, 0) + 1
            pending = list(failed)

    def _one(self, name: str, what: str, fn: Callable[[], object]):
        """``fn()``, one motor's transaction (ping, read, write), retried within the budget."""
        out = []

        def attempt(_pending: list[str]) -> dict[str, str]:
            try:
                out.append(fn())
                return {}
            except NoReply:
                return {name: "no reply"}
            except CorruptReply:
                return {name: "corrupt"}

        self._retrying([name], what, attempt)
        return out[-1]

    # -- registers --
    def _register(self, register: str, names: list[str]) -> Register:
        regs = {}
        for n in names:
            table = self.motors[n].spec.table
            if register not in table:
                raise InvalidValueError(f"motor {n!r} ({self.motors[n].model}) has no register {register!r}")
            regs[n] = table[register]
        first = next(iter(regs.values()))
        for n, reg in regs.items():
            if (reg.address, reg.size) != (first.address, first.size):
                raise InvalidValueError(f"register {register!r} sits at different addresses on {names}; read it "
                                        "motor by motor")
        return first

    def _resolve(self, names: Iterable[str] | str | None) -> list[str]:
        if names is None:
            return list(self.motors)
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.motors]
        if unknown:
            raise InvalidValueError(f"unknown motor(s) {unknown}; this bus has {list(self.motors)}")
        return names

    def _encode(self, name: str, register: str, value: int) -> bytes:
        table = self.motors[name].spec.table
        reg = table[register]
        try:
            return table.encode(reg, int(value))
        except ValueError as e:
            raise InvalidValueError(f"motor {name!r}: {register} = {value} does not fit the register ({e})") from None

    def read(self, register: str, name: str) -> int:
        name = self._resolve(name)[0]
        reg = self._register(register, [name])
        motor = self.motors[name]
        data, error = self._one(name, f"a read of {register}",
                                     lambda: self._tx().read(motor.id, reg.address, reg.size))
        self._check_status(name, error, f"read {register}")
        return motor.spec.table.decode(reg, data)

    def write(self, register: str, name: str, value: int) -> None:
        name = self._resolve(name)[0]
        reg = self._register(register, [name])
        data = self._encode(name, register, value)
        motor = self.motors[name]
        if register.startswith("Goal"):
            self._maybe_check_watchdog()
        error = self._one(name, f"a write of {register}", lambda: self._tx().write(motor.id, reg.address, data))
        self._check_status(name, error, f"write {register} = {value}")

    def sync_read(self, register: str, names: Iterable[str] | None = None) -> dict[str, int]:
        """``register`` of every motor in ``names`` (default: all) in one request, retried per motor."""
        names = self._resolve(names)
        reg = self._register(register, names)
        got: dict[int, tuple[bytes, int]] = {}

        def attempt(pending: list[str]) -> dict[str, str]:
            t0 = self.clock()
            replies, failed = self._tx().sync_read(reg.address, reg.size, [self.motors[n].id for n in pending])
            got.update(replies)
            if not failed:
                self.last_read_t = (t0 + self.clock()) / 2.0
            return {self._by_id[i]: kind for i, kind in failed.items()}

        self._retrying(names, f"a sync read of {register}", attempt)
        out = {}
        for n in names:
            data, error = got[self.motors[n].id]
            self._check_status(n, error, f"read {register}")
            out[n] = self.motors[n].spec.table.decode(self.motors[n].spec.table[register], data)
        return out

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        """Write ``register`` of several motors in one request (no reply: nothing to retry)."""
        names = self._resolve(list(values))
        reg = self._register(register, names)
        data = {self.motors[n].id: self._encode(n, register, values[n]) for n in names}
        if register.startswith("Goal"):
            self._maybe_check_watchdog()
        self._tx().sync_write(reg.address, reg.size, data)

    # -- error status --
    def _check_status(self, name: str, error: int, what: str) -> None:
        if not error:
            return
        motor = self.motors[name]
        if self.protocol == "dynamixel":
            if error & ALERT:
                self.stats.hardware_alerts += 1
                status = self._hardware_error_status(name)
                bits = {label: bool(status & bit) for bit, label in DYNAMIXEL_HARDWARE_ERRORS.items()}
                faults = [label for label, on in bits.items() if on] or ["unknown"]
                raise HardwareErrorAlert(
                    f"{self.port}: motor {name!r} (id {motor.id}) reports a hardware error: {', '.join(faults)} "
                    f"(Hardware_Error_Status 0x{status:02X}) during {what}; its torque is off until it is rebooted "
                    "or power-cycled (check what blocks the joint)", name, bits)
            code = error & 0x7F
            label = ErrorCode(code).name.lower().replace("_", " ") if code in ErrorCode._value2member_map_ else str(code)
            raise ServoRejectedError(f"{self.port}: motor {name!r} (id {motor.id}) refused {what}: {label} error")
        self.stats.hardware_alerts += 1
        bits = {label: bool(error & bit) for bit, label in _FEETECH_ERRORS.items()}
        faults = [label for label, on in bits.items() if on] or [f"status 0x{error:02X}"]
        raise HardwareErrorAlert(
            f"{self.port}: motor {name!r} (id {motor.id}) reports a hardware error: {', '.join(faults)} (status "
            f"0x{error:02X}) during {what}; its torque is off until torque is enabled again (check what blocks the "
            "joint)", name, bits)

    def _hardware_error_status(self, name: str) -> int:
        reg = self.motors[name].spec.table["Hardware_Error_Status"]
        try:
            data, _ = self._one(name, "a read of Hardware_Error_Status",
                                     lambda: self._tx().read(self.motors[name].id, reg.address, reg.size))
        except MotorNotRespondingError:
            return 0
        return data[0] if data else 0

    def _quiet(self, fn: Callable[[], object], what: str) -> bool:
        try:
            fn()
            return True
        except (BusError, OSError) as e:
            log.warning("%s: could not %s: %s", self.port, what, e)
            return False

    # -- torque and the bus watchdog --
    def enable_torque(self, names: Iterable[str] | None = None) -> None:
        """Torque on; on Dynamixel also arm the bus watchdog, on Feetech set Lock (as LeRobot does)."""
        for n in self._resolve(names):
            self.write("Torque_Enable", n, 1)
            self.torque_on.add(n)
            if self.protocol == "feetech":
                self.write("Lock", n, 1)
            elif self.watchdog_s is not None:
                self.write("Bus_Watchdog", n, 0)  # clears a trip (-1) left from before
                self.write("Bus_Watchdog", n, round(self.watchdog_s / WATCHDOG_UNIT_S))

    def disable_torque(self, names: Iterable[str] | None = None, strict: bool = True) -> None:
        """Watchdog off (Dynamixel) then torque off; with ``strict=False`` failures are logged, not raised."""
        for n in self._resolve(names):
            steps = []
            if self.protocol == "dynamixel" and self.watchdog_s is not None:
                steps.append(("Bus_Watchdog", 0))
            steps.append(("Torque_Enable", 0))
            if self.protocol == "feetech":
                steps.append(("Lock", 0))
            for register, value in steps:
                if strict:
                    self.write(register, n, value)
                else:
                    self._quiet(lambda r=register, v=value: self.write(r, n, v), f"write {register} = {value} to {n}")
            self.torque_on.discard(n)

    def _maybe_check_watchdog(self) -> None:
        if self.watchdog_s is None or not self.torque_on or self._transport is None:
            return
        if self._watchdog_suspect or self.clock() - self._last_tx > self.watchdog_s / 2:
            self._watchdog_suspect = False
            self.check_watchdog()

    def check_watchdog(self) -> list[str]:
        """Motors whose bus watchdog tripped (each counted, logged and re-armed)."""
        if self.watchdog_s is None or not self.torque_on:
            return []
        armed = sorted(self.torque_on)
        state = self.sync_read("Bus_Watchdog", armed)
        tripped = [n for n, v in state.items() if v == -1]
        units = round(self.watchdog_s / WATCHDOG_UNIT_S)
        for n in tripped:
            self.stats.watchdog_trips += 1
            log.warning("%s: the bus watchdog of %r tripped (no instruction for %.0f ms): it stopped; re-armed",
                        self.port, n, self.watchdog_s * 1e3)
            self.write("Bus_Watchdog", n, 0)
            self.write("Bus_Watchdog", n, units)
        return tripped

    # -- calibration and normalised positions --
    def _cal(self, name: str) -> MotorCalibration:
        if self.calibration is None or name not in self.calibration:
            raise CalibrationError(f"motor {name!r} on {self.port} has no calibration; calibrate the device first")
        return self.calibration[name]

    def normalize(self, raw: Mapping[str, float]) -> dict[str, float]:
        return {n: normalize(self.motors[n], self._cal(n), v) for n, v in raw.items()}

    def unnormalize(self, values: Mapping[str, float]) -> dict[str, int]:
        return {n: unnormalize(self.motors[n], self._cal(n), v) for n, v in values.items()}

    def read_positions(self, names: Iterable[str] | None = None) -> dict[str, float]:
        """Present_Position of ``names`` (default all), normalised."""
        return self.normalize(self.sync_read("Present_Position", names))

    def write_goals(self, values: Mapping[str, float]) -> dict[str, float]:
        """Goal_Position from normalised values; returns what was sent (clamped to the range, rounded to a tick)."""
        raw = self.unnormalize(values)
        self.sync_write("Goal_Position", raw)
        return self.normalize(raw)

    def read_calibration(self, names: Iterable[str] | None = None) -> dict[str, MotorCalibration]:
        """Offsets and limits as the servos hold them (drive mode from the current calibration, else 0)."""
        names = self._resolve(names)
        offsets = self.sync_read("Homing_Offset", names)
        lo = self.sync_read("Min_Position_Limit", names)
        hi = self.sync_read("Max_Position_Limit", names)
        out = {}
        for n in names:
            drive = self.calibration[n].drive_mode if self.calibration and n in self.calibration else 0
            out[n] = MotorCalibration(self.motors[n].id, drive, offsets[n], lo[n], max(hi[n], lo[n] + 1))
        return out

    def is_calibrated(self, calibration: Mapping[str, MotorCalibration] | None = None) -> bool:
        """True when every motor's EEPROM holds ``calibration`` (default: the bus's): offsets and limits."""
        cal = calibration if calibration is not None else self.calibration
        if not cal or set(cal) != set(self.motors):
            return False
        held = self.read_calibration()
        return all((held[n].homing_offset, held[n].range_min, held[n].range_max)
                   == (cal[n].homing_offset, cal[n].range_min, cal[n].range_max) and cal[n].id == self.motors[n].id
                   for n in self.motors)

    def write_calibration(self, calibration: Mapping[str, MotorCalibration]) -> None:
        """Write offsets and limits to the EEPROM (torque goes off first) and use ``calibration`` from now on."""
        names = self._resolve(list(calibration))
        for n in names:
            if calibration[n].id != self.motors[n].id:
                raise CalibrationError(f"calibration of motor {n!r} is for id {calibration[n].id}, but the motor has "
                                       f"id {self.motors[n].id}")
        self.disable_torque(names)
        for n in names:
            c = calibration[n]
            if self.protocol == "dynamixel":
                self.write("Drive_Mode", n, 0)  # robolearn applies the direction in software
            self.write("Homing_Offset", n, c.homing_offset)
            self.write("Min_Position_Limit", n, max(0, c.range_min))
            self.write("Max_Position_Limit", n, min(c.range_max, 4095))
        held = self.read_calibration(names)
        wrong = [n for n in names if held[n].homing_offset != calibration[n].homing_offset]
        if wrong:  # a Feetech servo ignores a value it cannot hold, without an error
            raise CalibrationError(f"{self.port}: motor(s) {self._names(wrong)} did not take their Homing_Offset "
                                   f"({[calibration[n].homing_offset for n in wrong]}); check the Lock register")
        self.calibration = {**(self.calibration or {}), **{n: calibration[n] for n in names}}
