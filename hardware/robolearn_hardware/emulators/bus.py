"""Several emulated servos on one half-duplex bus: requests in, timed replies out.

``receive(data, now, port_baud)`` parses the bytes a host wrote, lets every addressed servo act on each
request, and returns the replies as ``(due_time, bytes)``. Wire time is modelled: a request is complete
``len * 10 / baud`` after its bytes arrive; each reply starts after the servo's Return_Delay_Time (2 µs
units) and after the previous reply has left the bus, and is due when its last byte would arrive. A servo
whose baud rate differs from the port's hears only noise and stays silent. Faults (faults.py) decide each
reply's fate. The bus knows nothing about ptys: pty_server.py moves its bytes. With a ``twin`` (a
`robolearn_hardware.twins.coupling.TwinCoupling`) the servos' shafts are a simulated arm's joints: the bus
brings the twin up to time on every tick and before the servos act on each request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ..protocol import dynamixel as dxl
from ..protocol import feetech as ft
from ..protocol.dynamixel_tables import DYNAMIXEL_MODELS
from ..protocol.feetech_tables import FEETECH_MODELS
from ..protocol.stream import ProtocolError, Rejected, StreamParser
from .dynamixel_servo import DynamixelServo
from .faults import FaultConfig, FaultInjector
from .feetech_servo import FeetechServo

__all__ = ["ServoBusEmulator", "DynamixelBusEmulator", "FeetechBusEmulator", "wire_s", "make_bus"]

PARTIAL_FRAME_TIMEOUT_S = 0.05
"""A frame still incomplete this long after its last byte is dropped (the servos' receive timeout)."""


class ShaftDriver(Protocol):
    """What moves the shafts of some servos (a twin): brought up to time before the servos are looked at."""

    def sync(self, now: float) -> None: ...

    def tick(self, now: float) -> None:
        """The server's idle tick: ``sync`` when the twin's own period has passed."""

    def drives(self, servo: object) -> bool: ...

    def move_shaft(self, servo: object, ticks: float, now: float) -> None:
        """Turn a driven servo's shaft to ``ticks`` by hand."""

    def move_joint(self, joint: str, rad: float, now: float) -> None:
        """Turn a joint to ``rad`` by hand."""

    def state(self, now: float) -> dict:
        """JSON-ready state for the control channel."""


def wire_s(nbytes: int, baud: int) -> float:
    """Seconds ``nbytes`` take on a UART line (start + 8 data + stop bits)."""
    return nbytes * 10.0 / baud


class ServoBusEmulator:
    """The servos of one bus plus its parser, timing and faults."""

    parser: StreamParser

    def __init__(self, servos: Iterable, faults: FaultConfig | None = None):
        self.servos = list(servos)
        self.faults = FaultInjector(faults or FaultConfig())
        self.apply_faults(self.faults.config)
        self.counts = {"requests": 0, "replies": 0, "rejected": 0}
        self.rejections: dict[str, int] = {}
        self._rx_end = 0.0
        self._bus_free = 0.0
        self._last_rx = 0.0
        self._port_baud: int | None = None
        self.twin: ShaftDriver | None = None
        """Moves the shafts of twin-driven servos (module docstring)."""

    def apply_faults(self, config: FaultConfig) -> None:
        self.faults.reconfigure(config)
        for s in self.servos:
            s.blocked = s.id in config.overload

    def servo(self, servo_id: int) -> object | None:
        """The servo answering to ``servo_id`` on this port right now (None: unplugged, absent, wrong baud)."""
        if servo_id in self.faults.config.unplugged:
            return None
        for s in self.servos:
            if s.id == servo_id and (self._port_baud is None or s.baud == self._port_baud):
                return s
        return None

    def present(self) -> list:
        """Servos that hear the port, in id order."""
        return sorted((s for s in self.servos if self.servo(s.id) is s), key=lambda s: s.id)

    def tick(self, now: float) -> None:
        if self.twin is not None:
            self.twin.tick(now)
        for s in self.servos:
            if not s.twin_driven:  # the twin advances its own
                s.advance(now)

    def receive(self, data: bytes, now: float, port_baud: int | None = None) -> list[tuple[float, bytes]]:
        """Replies ``(due_time, bytes)`` to the bytes a host wrote at ``now``."""
        self._port_baud = port_baud
        self._last_rx = now
        return self._process(self.parser.feed(data), now)

    def expire_partial(self, now: float) -> list[tuple[float, bytes]]:
        """A frame whose rest never came is dropped (the servos' receive timeout); frames found behind
        its false header are still served."""
        if self.parser.pending and now - self._last_rx > PARTIAL_FRAME_TIMEOUT_S:
            return self._process(self.parser.flush(), now)
        return []

    def _process(self, events: list, now: float) -> list[tuple[float, bytes]]:
        baud = self._port_baud or 1_000_000
        out: list[tuple[float, bytes]] = []
        for ev in events:
            size = len(ev.data) if isinstance(ev, Rejected) else len(ev.raw)
            self._rx_end = max(self._rx_end, now) + wire_s(size, baud)
            if isinstance(ev, Rejected):
                self.counts["rejected"] += 1
                self.rejections[ev.kind] = self.rejections.get(ev.kind, 0) + 1
            else:
                self.counts["requests"] += 1
            t = self._rx_end
            if self.twin is not None:
                self.twin.sync(t)
            for servo, reply in self.handle(ev, t):
                t = max(t, self._bus_free) + servo.return_delay_s + wire_s(len(reply), baud)
                self._bus_free = t
                fate = self.faults.fate(servo.id)
                if fate == "drop":
                    continue
                if fate == "corrupt":
                    reply = self.faults.corrupt(reply)
                due = t + (self.faults.config.late_s if fate == "late" else 0.0)
                self.counts["replies"] += 1
                out.append((due, reply))
        return out

    def handle(self, ev, t: float) -> list[tuple[object, bytes]]:
        """The replies (servo, bytes) to one parsed event, in bus order; servos act at time ``t``."""
        raise NotImplementedError

    def stats(self) -> dict:
        return {**self.counts, **self.faults.counts, "rejections": dict(self.rejections)}


class DynamixelBusEmulator(ServoBusEmulator):
    def __init__(self, servos: Iterable[DynamixelServo], faults: FaultConfig | None = None):
        self.parser = dxl.DynamixelParser()
        super().__init__(servos, faults)

    def handle(self, ev, t: float) -> list[tuple[DynamixelServo, bytes]]:
        if isinstance(ev, Rejected):
            s = self.servo(ev.data[4]) if ev.kind == "checksum" and len(ev.data) > 4 else None
            if s is not None and s.get("Status_Return_Level") == 2:
                return [(s, dxl.encode_status(s.id, s.status_error(dxl.ErrorCode.CRC)))]
            return []
        if ev.is_status:
            return []  # another device's reply
        try:
            req = dxl.decode_request(ev)
        except ProtocolError as e:
            s = self.servo(ev.id) if ev.id != dxl.BROADCAST_ID else None
            return [(s, dxl.encode_status(s.id, s.status_error(e.code)))] if s is not None else []
        if ev.id == dxl.BROADCAST_ID:
            return self._broadcast(req, t)
        s = self.servo(ev.id)
        if s is None:
            return []
        s.kick(t)
        return self._unicast(s, req, t)

    @staticmethod
    def _status(s: DynamixelServo, error: int, params: bytes = b"", level: int = 2) -> list:
        if s.get("Status_Return_Level") < level:
            return []
        return [(s, dxl.encode_status(s.id, error, params))]

    def _unicast(self, s: DynamixelServo, req, t: float) -> list:
        old_id = s.id
        if isinstance(req, dxl.Ping):
            return [(s, dxl.encode_status(s.id, s.status_error(), s.get("Model_Number").to_bytes(2, "little")
                                          + bytes([s.get("Firmware_Version")])))]
        if isinstance(req, dxl.Read):
            err, data = s.read(req.address, req.length, t)
            return self._status(s, err, data, level=1)
        if isinstance(req, dxl.Write):
            return self._status(s, s.write(req.address, req.data, t))
        if isinstance(req, dxl.RegWrite):
            return self._status(s, s.reg_write(req.address, req.data, t))
        if isinstance(req, dxl.Action):
            return self._status(s, s.action(t))
        if isinstance(req, dxl.Reboot):
            reply = self._status(s, s.status_error())
            s.reboot(t)
            return reply
        if isinstance(req, dxl.FactoryReset):
            level = s.get("Status_Return_Level")
            err = s.factory_reset(req.option, t)
            return [(s, dxl.encode_status(old_id, err))] if level == 2 else []
        if isinstance(req, dxl.Clear):
            return self._status(s, s.status_error())
        return self._status(s, s.status_error(dxl.ErrorCode.INSTRUCTION))

    def _broadcast(self, req, t: float) -> list:
        if isinstance(req, (dxl.SyncRead, dxl.BulkRead)):
            items = [(i, req.address, req.length) for i in req.ids] if isinstance(req, dxl.SyncRead) else list(req.items)
            return self._group_read(items, req.fast, t)
        if isinstance(req, (dxl.SyncWrite, dxl.BulkWrite)):
            items = [(i, req.address, d) for i, d in req.data.items()] if isinstance(req, dxl.SyncWrite) else list(req.items)
            for i, address, data in items:
                s = self.servo(i)
                if s is not None:
                    s.kick(t)
                    s.write(address, data, t)
            return []
        everyone = self.present()
        for s in everyone:
            s.kick(t)
        if isinstance(req, dxl.Ping):  # every servo answers, in id order
            return [(s, dxl.encode_status(s.id, s.status_error(), s.get("Model_Number").to_bytes(2, "little")
                                          + bytes([s.get("Firmware_Version")]))) for s in everyone]
        actions: dict[type, Callable] = {
            dxl.Write: lambda s: s.write(req.address, req.data, t),
            dxl.RegWrite: lambda s: s.reg_write(req.address, req.data, t),
            dxl.Action: lambda s: s.action(t),
            dxl.Reboot: lambda s: s.reboot(t),
            dxl.FactoryReset: lambda s: s.factory_reset(req.option, t),
        }
        act = actions.get(type(req))
        for s in everyone if act else ():
            act(s)
        return []

    def _group_read(self, items: list[tuple[int, int, int]], fast: bool, t: float) -> list:
        replies, entries, first = [], [], None
        for i, address, length in items:
            s = self.servo(i)
            if s is None:
                if fast:
                    break  # the servos after it wait for its slot, which never comes
                continue
            s.kick(t)
            err, data = s.read(address, length, t)
            if fast:
                first = first or s
                entries.append((err, s.id, data if data else bytes(length)))
            else:
                replies.append((s, dxl.encode_status(s.id, err, data)))
        if fast and entries:
            return [(first, dxl.encode_fast_status(entries))]
        return replies


class FeetechBusEmulator(ServoBusEmulator):
    def __init__(self, servos: Iterable[FeetechServo], faults: FaultConfig | None = None):
        self.parser = ft.FeetechParser(replies=False)
        super().__init__(servos, faults)

    def handle(self, ev, t: float) -> list[tuple[FeetechServo, bytes]]:
        if isinstance(ev, Rejected):
            return []  # Feetech servos ignore a frame with a bad checksum
        try:
            req = ft.decode_request(ev)
        except ProtocolError:
            return []
        if ev.id == ft.BROADCAST_ID:
            return self._broadcast(req, t)
        s = self.servo(ev.id)
        if s is None:
            return []
        if isinstance(req, ft.Ping):
            return [(s, ft.encode_status(s.id, s.status_error()))]
        if isinstance(req, ft.Read):
            err, data = s.read(req.address, req.length, t)
            return [(s, ft.encode_status(s.id, err, data))] if data is not None else []
        old_id = s.id
        if isinstance(req, ft.Write):
            err = s.write(req.address, req.data, t)
        elif isinstance(req, ft.RegWrite):
            err = s.reg_write(req.address, req.data, t)
        elif isinstance(req, ft.Action):
            err = s.action(t)
        elif isinstance(req, ft.Reset):
            err = s.factory_reset(t)
        else:
            return []
        return [(s, ft.encode_status(old_id, err))] if s.replies_to_all else []

    def _broadcast(self, req, t: float) -> list:
        if isinstance(req, ft.SyncRead):
            replies = []
            for i in req.ids:
                s = self.servo(i)
                if s is not None:
                    err, data = s.read(req.address, req.length, t)
                    if data is not None:
                        replies.append((s, ft.encode_status(s.id, err, data)))
            return replies
        if isinstance(req, ft.SyncWrite):
            for i, data in req.data.items():
                s = self.servo(i)
                if s is not None:
                    s.write(req.address, data, t)
            return []
        everyone = self.present()
        if isinstance(req, ft.Ping):
            return [(s, ft.encode_status(s.id, s.status_error())) for s in everyone]
        for s in everyone:
            if isinstance(req, ft.Write):
                s.write(req.address, req.data, t)
            elif isinstance(req, ft.RegWrite):
                s.reg_write(req.address, req.data, t)
            elif isinstance(req, ft.Action):
                s.action(t)
        return []


def make_bus(protocol: str, model: str | list[str], ids: list[int], *, now: float, baud: int = 1_000_000,
             positions: list[float] | None = None, return_delay_us: int | None = None,
             faults: FaultConfig | None = None) -> ServoBusEmulator:
    """A bus of servos ``ids`` starting at ``positions`` (shaft ticks, default 2048); ``model`` names one model
    for every servo or one per id (a Koch arm mixes XL430 and XL330 on one bus)."""
    positions = positions or [2048.0] * len(ids)
    if len(positions) != len(ids):
        raise ValueError(f"{len(positions)} start positions given for {len(ids)} servos {ids}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"servo ids must be distinct, got {ids}")
    models = [model] * len(ids) if isinstance(model, str) else list(model)
    if len(models) != len(ids):
        raise ValueError(f"{len(models)} models given for {len(ids)} servos {ids}; give one model or one per id")
    if protocol == "dynamixel":
        known, cls, bus_cls, max_id = DYNAMIXEL_MODELS, DynamixelServo, DynamixelBusEmulator, dxl.MAX_ID
    elif protocol == "feetech":
        known, cls, bus_cls, max_id = FEETECH_MODELS, FeetechServo, FeetechBusEmulator, ft.MAX_ID
    else:
        raise ValueError(f"protocol {protocol!r} is not 'dynamixel' or 'feetech'")
    for m in models:
        if m not in known:
            raise ValueError(f"{protocol} model {m!r} is not emulated; known: {', '.join(sorted(known))}")
    bad = [i for i in ids if not 0 <= i <= max_id]
    if bad:
        raise ValueError(f"{protocol} servo ids must be 0..{max_id}, got {bad}")
    servos = []
    for i, p, m in zip(ids, positions, models):
        s = cls(known[m], i, now=now, position=p, baud=baud)
        if return_delay_us is not None:
            s.set("Return_Delay_Time", max(0, min(254, round(return_delay_us / 2))))
            s.saved[:] = s.memory
        servos.append(s)
    return bus_cls(servos, faults)
