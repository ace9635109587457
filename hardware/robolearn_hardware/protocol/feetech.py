"""Feetech STS/SMS and SCS servo protocol: packet encoding, checksum and a streaming parser.

Frame: ``FF FF | ID | LEN | INST (or ERR in a reply) | params | CHK`` with LEN = len(params) + 2 and
CHK = ~(ID + LEN + INST + sum(params)) & 0xFF. Requests and replies share the layout, so a parser is told
which it reads. Multi-byte values are little-endian on STS/SMS (protocol "end" 0) and big-endian on SCS
(end 1); signed registers are sign-magnitude (see ``registers.encode_sign_magnitude``). Sync Read is
answered by one status packet per servo, in request order. Reply error bits: ``feetech_tables.STATUS_BITS``.

The 8-bit checksum catches every single-bit error inside a frame of known length, but a flipped length bit
can shorten a reply to a prefix whose last byte happens to match (1 in 256): ``decode_status`` therefore
checks the reply length against the request, and ``decode_request`` checks each instruction's layout.

Example::

    from robolearn_hardware.protocol import feetech as ft

    wire = ft.read(1, 56, 2)                            # Read Present_Position of id 1
    [pkt] = ft.FeetechParser(replies=False).feed(wire)
    ft.decode_request(pkt)                              # Read(address=56, length=2)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from .requests import Action, Ping, Read, RegWrite, SyncRead, SyncWrite, Write
from .stream import ProtocolError, Rejected, StreamParser

__all__ = [
    "HEADER", "BROADCAST_ID", "MAX_ID", "MAX_LENGTH", "Instruction", "checksum", "Packet", "FeetechParser",
    "encode_packet", "encode_status", "ping", "read", "write", "reg_write", "action", "reset", "sync_read",
    "sync_write", "Ping", "Read", "Write", "RegWrite", "Action", "Reset", "SyncRead", "SyncWrite", "Request",
    "decode_request", "decode_status",
]

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_ID = 0xFD
MAX_LENGTH = 246
"""Largest LEN field accepted (the SDK's 250-byte packets)."""


class Instruction(IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    RESET = 0x06
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


def checksum(body: bytes | bytearray | memoryview) -> int:
    """~sum(body) & 0xFF over ID, LEN, INST/ERR and params."""
    return ~sum(body) & 0xFF


@dataclass(frozen=True)
class Packet:
    """A checked frame; ``code`` is the instruction of a request or the error byte of a reply."""

    id: int
    code: int
    params: bytes
    raw: bytes = field(default=b"", repr=False, compare=False)


def encode_packet(scs_id: int, code: int, params: bytes = b"") -> bytes:
    body = bytes([scs_id, len(params) + 2, code]) + bytes(params)
    if len(params) + 2 > MAX_LENGTH:
        raise ValueError(f"a Feetech packet holds at most {MAX_LENGTH - 2} parameter bytes, got {len(params)}")
    return HEADER + body + bytes([checksum(body)])


def encode_status(scs_id: int, error: int, params: bytes = b"") -> bytes:
    return encode_packet(scs_id, error, params)


# --- request builders ---

def ping(scs_id: int) -> bytes:
    return encode_packet(scs_id, Instruction.PING)


def read(scs_id: int, address: int, length: int) -> bytes:
    return encode_packet(scs_id, Instruction.READ, bytes([address, length]))


def write(scs_id: int, address: int, data: bytes) -> bytes:
    return encode_packet(scs_id, Instruction.WRITE, bytes([address]) + bytes(data))


def reg_write(scs_id: int, address: int, data: bytes) -> bytes:
    return encode_packet(scs_id, Instruction.REG_WRITE, bytes([address]) + bytes(data))


def action(scs_id: int = BROADCAST_ID) -> bytes:
    return encode_packet(scs_id, Instruction.ACTION)


def reset(scs_id: int) -> bytes:
    """Factory reset of the control table."""
    return encode_packet(scs_id, Instruction.RESET)


def sync_read(address: int, length: int, ids: list[int]) -> bytes:
    return encode_packet(BROADCAST_ID, Instruction.SYNC_READ, bytes([address, length]) + bytes(ids))


def sync_write(address: int, length: int, data: dict[int, bytes]) -> bytes:
    params = bytearray([address, length])
    for scs_id, d in data.items():
        if len(d) != length:
            raise ValueError(f"sync_write of {length} bytes got {len(d)} bytes for id {scs_id}")
        params += bytes([scs_id]) + bytes(d)
    return encode_packet(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params))


# --- parsing ---

class FeetechParser(StreamParser[Packet]):
    """Streaming parser for requests (``replies=False``, what a servo reads) or replies (what a host reads)."""

    header = HEADER
    prelude = 4
    _resync_from = 2  # a header one byte in would make the id 0xFF

    def __init__(self, replies: bool, max_length: int = MAX_LENGTH):
        super().__init__(max_frame=max_length + 4)
        self.replies = replies
        self.max_length = max_length

    def _frame_size(self, buf: bytearray, i: int) -> tuple[int, str, int]:
        scs_id, length = buf[i + 2], buf[i + 3]
        if scs_id == 0xFF:
            return 0, "id 255 (a third FF) is not an id", 1
        if self.replies and scs_id > MAX_ID:
            return 0, f"a reply comes from id 0..{MAX_ID}, not {scs_id}", 2
        if length < 2 or length > self.max_length:
            return 0, f"length {length} is not 2..{self.max_length}", 2
        return length + 4, "", 0

    def _decode(self, frame: bytes) -> Packet | Rejected:
        want = checksum(memoryview(frame)[2:-1])
        if frame[-1] != want:
            return Rejected("checksum", f"checksum {frame[-1]:02X} on the wire, {want:02X} computed (id {frame[2]})", b"")
        if self.replies and frame[4] & 0x80:
            return Rejected("header", f"error byte 0x{frame[4]:02X} from id {frame[2]} has bit 7 set", b"")
        return Packet(frame[2], frame[4], frame[5:-1], frame)


@dataclass(frozen=True)
class Reset:
    """Factory reset of the control table."""


Request = Ping | Read | Write | RegWrite | Action | Reset | SyncRead | SyncWrite


def decode_request(pkt: Packet) -> Request:
    """The typed request in an instruction packet; ProtocolError if its layout is wrong."""
    p, inst, n = pkt.params, pkt.code, len(pkt.params)

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ProtocolError(f"instruction 0x{inst:02X} with {n} parameter bytes: {what}")

    if inst in (Instruction.SYNC_READ, Instruction.SYNC_WRITE) and pkt.id != BROADCAST_ID:
        raise ProtocolError(f"instruction 0x{inst:02X} must go to the broadcast id, not {pkt.id}")
    if inst == Instruction.PING:
        need(n == 0, "PING takes none")
        return Ping()
    if inst == Instruction.READ:
        need(n == 2 and p[1] >= 1, "READ takes (address, length >= 1)")
        return Read(p[0], p[1])
    if inst in (Instruction.WRITE, Instruction.REG_WRITE):
        need(n >= 2, "WRITE takes an address and at least one data byte")
        return (Write if inst == Instruction.WRITE else RegWrite)(p[0], p[1:])
    if inst == Instruction.ACTION:
        need(n == 0, "ACTION takes none")
        return Action()
    if inst == Instruction.RESET:
        need(n == 0, "RESET takes none")
        return Reset()
    if inst == Instruction.SYNC_READ:
        need(n >= 3 and p[1] >= 1, "SYNC_READ takes an address, a length >= 1 and at least one id")
        need(len(set(p[2:])) == n - 2, "an id appears twice")
        return SyncRead(p[0], p[1], tuple(p[2:]))
    if inst == Instruction.SYNC_WRITE:
        length = p[1] if n >= 2 else 0
        need(n > 2 and length >= 1 and (n - 2) % (length + 1) == 0,
             "SYNC_WRITE takes an address, a length >= 1 and (id + length bytes) per servo")
        data = {p[k]: p[k + 1:k + 1 + length] for k in range(2, n, length + 1)}
        need(len(data) == (n - 2) // (length + 1), "an id appears twice")
        return SyncWrite(p[0], length, data)
    raise ProtocolError(f"instruction 0x{inst:02X} is not a Feetech instruction")


def decode_status(pkt: Packet, scs_id: int, n_params: int) -> tuple[int, bytes]:
    """(error byte, params) of the reply from ``scs_id`` to a request returning ``n_params`` bytes."""
    if pkt.id != scs_id:
        raise ProtocolError(f"expected a reply from id {scs_id}, got one from id {pkt.id}")
    if len(pkt.params) != n_params:
        raise ProtocolError(f"reply from id {scs_id} carries {len(pkt.params)} parameter bytes, {n_params} expected")
    return pkt.code, pkt.params
