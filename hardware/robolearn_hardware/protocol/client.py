"""A small host-side client on our own codecs: the fallback backend when a vendor SDK is not installed.

It speaks Dynamixel Protocol 2.0 or Feetech STS over a pyserial port and reports failures as exceptions
rather than result codes: ``NoReply`` (the SDKs' COMM_RX_TIMEOUT, "There is no status packet") and
``CorruptReply`` (COMM_RX_CORRUPT, "Incorrect status packet": bytes came, no valid reply among them). A
reply is checked against its request (id and length), which the SDKs do not do. Replies from other ids or
late replies to earlier requests are skipped; the input buffer is cleared before each request.

Example::

    with OwnCodecPort("/dev/ttyUSB0", protocol="dynamixel") as bus:
        model, error = bus.ping(1)
        data, error = bus.read(1, 132, 4)            # Present_Position, little-endian
        bus.sync_write(116, 4, {1: (2048).to_bytes(4, "little")})
"""

from __future__ import annotations

import termios
import time
from typing import Literal

from . import dynamixel as dxl
from . import feetech as ft
from .stream import ProtocolError, Rejected

__all__ = ["OwnCodecPort", "NoReply", "CorruptReply"]

LATENCY_S = 0.032
"""Slack added to the wire time before a reply counts as missing (2 x a 16 ms USB latency timer, as the SDKs)."""


class NoReply(TimeoutError):
    """No byte of the expected reply arrived in time."""


class CorruptReply(IOError):
    """Bytes arrived but no valid reply among them (bad checksum, cut short, wrong length or id)."""


class OwnCodecPort:
    def __init__(self, port: str, baud: int = 1_000_000, protocol: Literal["dynamixel", "feetech"] = "dynamixel",
                 timeout_s: float | None = None):
        if protocol not in ("dynamixel", "feetech"):
            raise ValueError(f"protocol {protocol!r} is not 'dynamixel' or 'feetech'")
        self.port_name, self.baud, self.protocol = port, baud, protocol
        self.codec = dxl if protocol == "dynamixel" else ft
        self.timeout_s = timeout_s
        self.latency_s = LATENCY_S
        """Slack after the wire time before a reply counts as missing (2 x the USB latency timer + 2 ms)."""
        self.ser = None

    def open(self) -> "OwnCodecPort":
        import serial  # pyserial

        self.ser = serial.Serial(self.port_name, self.baud, timeout=0)
        self.ser.reset_input_buffer()
        return self

    def close(self) -> None:
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def __enter__(self) -> "OwnCodecPort":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport --
    def _parser(self):
        return dxl.DynamixelParser() if self.protocol == "dynamixel" else ft.FeetechParser(replies=True)

    def _send(self, frame: bytes) -> None:
        if self.ser is None:
            raise RuntimeError(f"port {self.port_name} is not open; call open() first")
        try:
            self.ser.reset_input_buffer()
        except termios.error as e:  # not an OSError: an adapter pulled out must still read as an I/O error
            raise OSError(e.args[0], f"{self.port_name}: the serial port stopped working ({e}); is the USB adapter "
                                     "unplugged? Plug it in and reconnect") from None
        self.ser.write(frame)

    def _wait_s(self, nbytes: int) -> float:
        return self.timeout_s if self.timeout_s is not None else nbytes * 10.0 / self.baud + self.latency_s

    def _collect(self, want: list[tuple[int, int]], timeout_s: float, fast: bool = False) -> dict[int, object]:
        """Replies for ``want`` = [(id, n_params)]: {id: packet}. Raises NoReply / CorruptReply."""
        got, missing, problems = self._gather(want, timeout_s, fast)
        if missing:
            if problems:  # bytes came that were not a valid reply
                raise CorruptReply(f"{self.port_name}: no valid reply from id(s) {missing} ({problems[-1]})")
            raise NoReply(f"{self.port_name}: no reply from id(s) {missing} within {timeout_s * 1e3:.0f} ms")
        return got

    def _gather(self, want: list[tuple[int, int]], timeout_s: float, fast: bool = False
                ) -> tuple[dict[int, object], list[int], list[str]]:
        """(replies {id: packet}, ids without a valid reply, what was wrong with the bytes that came)."""
        parser, got, pending = self._parser(), {}, dict(want)
        problems: list[str] = []

        def take(events: list) -> None:
            for ev in events:
                if isinstance(ev, Rejected):
                    problems.append(f"{ev.kind}: {ev.reason}")
                    continue
                sid = dxl.BROADCAST_ID if fast else ev.id
                if sid not in pending or (self.protocol == "dynamixel" and not ev.is_status):
                    continue  # someone else's reply, or our own echo
                if not fast:
                    try:
                        self.codec.decode_status(ev, sid, pending[sid])
                    except ProtocolError as e:
                        problems.append(str(e))
                        continue
                got[sid] = ev
                del pending[sid]

        deadline = time.monotonic() + timeout_s
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                take(parser.flush())
                break
            self.ser.timeout = min(left, 0.005)
            chunk = self.ser.read(max(1, self.ser.in_waiting))
            if chunk:
                take(parser.feed(chunk))
        return got, sorted(pending), problems

    def _error(self, pkt) -> int:
        return (pkt.error or 0) if self.protocol == "dynamixel" else pkt.code

    # -- instructions --
    def ping(self, servo_id: int) -> tuple[int | None, int]:
        """(model number, error byte). Feetech's PING carries no model: it is read from address 3."""
        self._send(self.codec.ping(servo_id))
        n = 3 if self.protocol == "dynamixel" else 0
        pkt = self._collect([(servo_id, n)], self._wait_s(20))[servo_id]
        if self.protocol == "dynamixel":
            return int.from_bytes(pkt.params[:2], "little"), self._error(pkt)
        data, err = self.read(servo_id, 3, 2)
        return int.from_bytes(data, "little"), err

    def read(self, servo_id: int, address: int, length: int) -> tuple[bytes, int]:
        """(data, error byte); a Dynamixel error reply carries no data (b"")."""
        self._send(self.codec.read(servo_id, address, length))
        pkt = self._collect([(servo_id, length)], self._wait_s(length + 20))[servo_id]
        return pkt.params, self._error(pkt)

    def write(self, servo_id: int, address: int, data: bytes) -> int:
        """Error byte of the reply."""
        self._send(self.codec.write(servo_id, address, data))
        return self._error(self._collect([(servo_id, 0)], self._wait_s(20))[servo_id])

    def sync_write(self, address: int, length: int, data: dict[int, bytes]) -> None:
        self._send(self.codec.sync_write(address, length, data))

    def sync_read(self, address: int, length: int, ids: list[int]) -> dict[int, tuple[bytes, int]]:
        """{id: (data, error)} for every id, or NoReply / CorruptReply naming the ids that did not answer."""
        self._send(self.codec.sync_read(address, length, ids))
        got = self._collect([(i, length) for i in ids], self._wait_s(len(ids) * (length + 20)))
        return {i: (got[i].params, self._error(got[i])) for i in ids}

    def sync_read_some(self, address: int, length: int, ids: list[int]
                       ) -> tuple[dict[int, tuple[bytes, int]], dict[int, str]]:
        """One sync read that keeps what came: ({id: (data, error)}, {id: "no reply" | "corrupt"} for the rest).
        A driver retries only the ids in the second dict."""
        self._send(self.codec.sync_read(address, length, ids))
        got, missing, problems = self._gather([(i, length) for i in ids], self._wait_s(len(ids) * (length + 20)))
        why = "corrupt" if problems else "no reply"
        return ({i: (p.params, self._error(p)) for i, p in got.items()}, {i: why for i in missing})

    def fast_sync_read(self, address: int, length: int, ids: list[int]) -> dict[int, tuple[bytes, int]]:
        """Dynamixel Fast Sync Read: one combined reply, every per-servo CRC checked."""
        if self.protocol != "dynamixel":
            raise ValueError("Fast Sync Read is a Dynamixel Protocol 2.0 instruction; Feetech has sync_read only")
        self._send(dxl.sync_read(address, length, ids, fast=True))
        pkt = self._collect([(dxl.BROADCAST_ID, 0)], self._wait_s(len(ids) * (length + 4) + 20), fast=True)[dxl.BROADCAST_ID]
        try:
            slots = dxl.decode_fast_status(pkt, [(i, length) for i in ids])
        except ProtocolError as e:
            raise CorruptReply(f"{self.port_name}: {e}") from None
        return {i: (data, err) for i, (err, data) in slots.items()}

    def broadcast_ping(self, wait_s: float = 0.05) -> dict[int, int]:
        """{id: error byte} of every servo that answers a broadcast ping within ``wait_s`` (setup: who is there)."""
        self._send(self.codec.ping(self.codec.BROADCAST_ID))
        parser, found = self._parser(), {}
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            self.ser.timeout = min(left, 0.005)
            chunk = self.ser.read(max(1, self.ser.in_waiting))
            for ev in parser.feed(chunk) if chunk else ():
                if not isinstance(ev, Rejected) and (self.protocol == "feetech" or ev.is_status):
                    found[ev.id] = self._error(ev)
        return found

    def reboot(self, servo_id: int) -> int:
        if self.protocol != "dynamixel":
            raise ValueError("REBOOT is a Dynamixel instruction; power-cycle a Feetech servo instead")
        self._send(dxl.reboot(servo_id))
        return self._error(self._collect([(servo_id, 0)], self._wait_s(20))[servo_id])
