"""Dynamixel Protocol 2.0: packet encoding, CRC-16, byte stuffing and a streaming parser.

Frame: ``FF FF FD 00 | ID | LEN_L LEN_H | INST | params | CRC_L CRC_H`` with LEN = len(params) + 3 counted
after stuffing, CRC-16 (polynomial 0x8005, init 0, not reflected: ROBOTIS' table) over everything before
it. Inside the body every ``FF FF FD`` is sent as ``FF FF FD FD``. A status packet has INST 0x55 followed by
an error byte: bit 7 is the alert (read Hardware_Error_Status), the low 7 bits one of ``ErrorCode``.

Fast Sync Read and Fast Bulk Read are answered with one packet from ID 0xFE holding, per servo,
``ERR | ID | data | CRC`` where each CRC is the running CRC of the packet up to that point and the last one
is the packet's own CRC; like ``dynamixel-sdk`` this packet is not byte-stuffed.

Example::

    from robolearn_hardware.protocol import dynamixel as dxl

    wire = dxl.read(1, 132, 4)                         # Read Present_Position of id 1
    parser = dxl.DynamixelParser()
    [pkt] = parser.feed(wire)
    dxl.decode_request(pkt)                            # Read(address=132, length=4)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from .requests import Action, Ping, Read, RegWrite, SyncRead, SyncWrite, Write
from .stream import ProtocolError, Rejected, StreamParser

__all__ = [
    "HEADER", "BROADCAST_ID", "MAX_ID", "STATUS", "ALERT", "Instruction", "ErrorCode", "crc16", "stuff", "unstuff",
    "Packet", "DynamixelParser", "encode_packet", "encode_status", "encode_fast_status", "ping", "read", "write",
    "reg_write", "action", "factory_reset", "reboot", "sync_read", "sync_write", "bulk_read", "bulk_write",
    "Ping", "Read", "Write", "RegWrite", "Action", "FactoryReset", "Reboot", "Clear", "SyncRead", "SyncWrite",
    "BulkRead", "BulkWrite", "Request", "decode_request", "decode_status", "decode_fast_status", "MAX_LENGTH",
]

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC
STATUS = 0x55
ALERT = 0x80
MAX_LENGTH = 1024 - 7
"""Largest LEN field accepted (the SDK's 1 KiB packet buffers)."""


class Instruction(IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    FACTORY_RESET = 0x06
    REBOOT = 0x08
    CLEAR = 0x10
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83
    FAST_SYNC_READ = 0x8A
    BULK_READ = 0x92
    BULK_WRITE = 0x93
    FAST_BULK_READ = 0x9A


class ErrorCode(IntEnum):
    """Low 7 bits of a status packet's error byte."""

    NONE = 0
    RESULT_FAIL = 1
    INSTRUCTION = 2
    CRC = 3
    DATA_RANGE = 4
    DATA_LENGTH = 5
    DATA_LIMIT = 6
    ACCESS = 7


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """ROBOTIS CRC-16 (poly 0x8005, MSB first) of ``data``, continuing from ``crc``."""
    t = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) ^ t[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Insert an FD after every FF FF FD in ``body`` (instruction and parameters)."""
    if b"\xff\xff\xfd" not in body:
        return bytes(body)
    out = bytearray()
    for b in body:
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Inverse of ``stuff``; raises ProtocolError on an FF FF FD that a stuffing sender cannot produce."""
    if b"\xff\xff\xfd" not in body:
        return bytes(body)
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        b = body[i]
        out.append(b)
        if b == 0xFD and i >= 2 and body[i - 2] == 0xFF and body[i - 1] == 0xFF:
            if i + 1 >= n or body[i + 1] != 0xFD:
                raise ProtocolError(f"unstuffed FF FF FD at body offset {i - 2}")
            i += 1  # skip the stuffed FD
        i += 1
    return bytes(out)


@dataclass(frozen=True)
class Packet:
    """A checked frame. For a status packet ``instruction`` is 0x55 and ``error`` holds the error byte."""

    id: int
    instruction: int
    params: bytes
    error: int | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def is_status(self) -> bool:
        return self.instruction == STATUS


def encode_packet(dxl_id: int, instruction: int, params: bytes = b"") -> bytes:
    """One instruction (or status) packet on the wire: stuffed, with length and CRC."""
    body = stuff(bytes([instruction]) + bytes(params))
    head = HEADER + bytes([dxl_id]) + (len(body) + 2).to_bytes(2, "little")
    frame = head + body
    return frame + crc16(frame).to_bytes(2, "little")


def encode_status(dxl_id: int, error: int, params: bytes = b"") -> bytes:
    return encode_packet(dxl_id, STATUS, bytes([error]) + bytes(params))


def encode_fast_status(entries: list[tuple[int, int, bytes]]) -> bytes:
    """The single reply to a Fast Sync/Bulk Read: ``entries`` = [(error, id, data), ...] in request order."""
    size = 1 + sum(len(d) + 4 for _, _, d in entries)  # INST + per servo ERR ID data CRC (last CRC = packet's)
    out = bytearray(HEADER + bytes([BROADCAST_ID]) + size.to_bytes(2, "little") + bytes([STATUS]))
    for err, dxl_id, data in entries:
        out += bytes([err, dxl_id]) + bytes(data)
        out += crc16(out).to_bytes(2, "little")
    return bytes(out)


# --- request builders (the bytes a client sends) ---

def ping(dxl_id: int) -> bytes:
    return encode_packet(dxl_id, Instruction.PING)


def read(dxl_id: int, address: int, length: int) -> bytes:
    return encode_packet(dxl_id, Instruction.READ, address.to_bytes(2, "little") + length.to_bytes(2, "little"))


def write(dxl_id: int, address: int, data: bytes) -> bytes:
    return encode_packet(dxl_id, Instruction.WRITE, address.to_bytes(2, "little") + bytes(data))


def reg_write(dxl_id: int, address: int, data: bytes) -> bytes:
    return encode_packet(dxl_id, Instruction.REG_WRITE, address.to_bytes(2, "little") + bytes(data))


def action(dxl_id: int = BROADCAST_ID) -> bytes:
    return encode_packet(dxl_id, Instruction.ACTION)


def factory_reset(dxl_id: int, option: int = 0xFF) -> bytes:
    """option 0xFF: everything; 0x01: all but ID; 0x02: all but ID and baud rate."""
    return encode_packet(dxl_id, Instruction.FACTORY_RESET, bytes([option]))


def reboot(dxl_id: int) -> bytes:
    return encode_packet(dxl_id, Instruction.REBOOT)


def sync_read(address: int, length: int, ids: list[int], fast: bool = False) -> bytes:
    inst = Instruction.FAST_SYNC_READ if fast else Instruction.SYNC_READ
    return encode_packet(BROADCAST_ID, inst, address.to_bytes(2, "little") + length.to_bytes(2, "little") + bytes(ids))


def sync_write(address: int, length: int, data: dict[int, bytes]) -> bytes:
    params = bytearray(address.to_bytes(2, "little") + length.to_bytes(2, "little"))
    for dxl_id, d in data.items():
        if len(d) != length:
            raise ValueError(f"sync_write of {length} bytes got {len(d)} bytes for id {dxl_id}")
        params += bytes([dxl_id]) + bytes(d)
    return encode_packet(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params))


def bulk_read(items: list[tuple[int, int, int]], fast: bool = False) -> bytes:
    """items = [(id, address, length), ...]."""
    params = b"".join(bytes([i]) + a.to_bytes(2, "little") + n.to_bytes(2, "little") for i, a, n in items)
    return encode_packet(BROADCAST_ID, Instruction.FAST_BULK_READ if fast else Instruction.BULK_READ, params)


def bulk_write(items: list[tuple[int, int, bytes]]) -> bytes:
    """items = [(id, address, data), ...]."""
    params = b"".join(bytes([i]) + a.to_bytes(2, "little") + len(d).to_bytes(2, "little") + bytes(d)
                      for i, a, d in items)
    return encode_packet(BROADCAST_ID, Instruction.BULK_WRITE, params)


# --- parsing ---

class DynamixelParser(StreamParser[Packet]):
    """Streaming Protocol 2.0 parser (instruction and status packets alike)."""

    header = HEADER
    prelude = 7
    _resync_from = 4

    def __init__(self, max_length: int = MAX_LENGTH):
        super().__init__(max_frame=max_length + 7)
        self.max_length = max_length

    def _frame_size(self, buf: bytearray, i: int) -> tuple[int, str, int]:
        dxl_id = buf[i + 4]
        length = buf[i + 5] | (buf[i + 6] << 8)
        if dxl_id > MAX_ID and dxl_id != BROADCAST_ID:
            return 0, f"id {dxl_id} is not 0..{MAX_ID} or broadcast {BROADCAST_ID}", 4
        if length < 3 or length > self.max_length:
            return 0, f"length {length} is not 3..{self.max_length}", 4
        return length + 7, "", 0

    def _decode(self, frame: bytes) -> Packet | Rejected:
        want = crc16(memoryview(frame)[:-2])
        got = frame[-2] | (frame[-1] << 8)
        if want != got:
            return Rejected("checksum", f"CRC {got:04X} on the wire, {want:04X} computed (id {frame[4]})", b"")
        dxl_id, body = frame[4], frame[7:-2]
        if not (dxl_id == BROADCAST_ID and body[0] == STATUS):  # fast replies are not stuffed
            try:
                body = unstuff(body)
            except ProtocolError as e:
                return Rejected("stuffing", f"{e} (id {dxl_id})", b"")
        if body[0] == STATUS:
            if len(body) < 2:
                return Rejected("header", f"status packet from id {dxl_id} has no error byte", b"")
            return Packet(dxl_id, STATUS, body[2:], body[1], frame)
        return Packet(dxl_id, body[0], body[1:], None, frame)


@dataclass(frozen=True)
class FactoryReset:
    option: int


@dataclass(frozen=True)
class Reboot:
    pass


@dataclass(frozen=True)
class Clear:
    params: bytes


@dataclass(frozen=True)
class BulkRead:
    items: tuple[tuple[int, int, int], ...]
    """(id, address, length) per servo."""
    fast: bool = False


@dataclass(frozen=True)
class BulkWrite:
    items: tuple[tuple[int, int, bytes], ...]
    """(id, address, data) per servo."""


Request = Ping | Read | Write | RegWrite | Action | FactoryReset | Reboot | Clear | SyncRead | SyncWrite | BulkRead | BulkWrite

_E_LEN = ErrorCode.DATA_LENGTH


def _u16(b: bytes, i: int) -> int:
    return b[i] | (b[i + 1] << 8)


def decode_request(pkt: Packet) -> Request:
    """The typed request in an instruction packet; ProtocolError (with the servo's error code) if malformed."""
    p, inst, n = pkt.params, pkt.instruction, len(pkt.params)
    if pkt.is_status:
        raise ProtocolError(f"a status packet from id {pkt.id} is not a request", ErrorCode.INSTRUCTION)
    broadcast_only = (Instruction.SYNC_READ, Instruction.SYNC_WRITE, Instruction.FAST_SYNC_READ,
                      Instruction.BULK_READ, Instruction.BULK_WRITE, Instruction.FAST_BULK_READ)
    if inst in broadcast_only and pkt.id != BROADCAST_ID:
        raise ProtocolError(f"instruction 0x{inst:02X} must go to the broadcast id, not {pkt.id}", ErrorCode.INSTRUCTION)

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ProtocolError(f"instruction 0x{inst:02X} with {n} parameter bytes: {what}", _E_LEN)

    if inst == Instruction.PING:
        need(n == 0, "PING takes none")
        return Ping()
    if inst == Instruction.READ:
        need(n == 4, "READ takes 4 (address, length)")
        return Read(_u16(p, 0), _u16(p, 2))
    if inst in (Instruction.WRITE, Instruction.REG_WRITE):
        need(n >= 3, "WRITE takes an address and at least one data byte")
        cls = Write if inst == Instruction.WRITE else RegWrite
        return cls(_u16(p, 0), p[2:])
    if inst == Instruction.ACTION:
        need(n == 0, "ACTION takes none")
        return Action()
    if inst == Instruction.FACTORY_RESET:
        need(n == 1, "FACTORY_RESET takes one option byte")
        if p[0] not in (0x01, 0x02, 0xFF):
            raise ProtocolError(f"factory reset option 0x{p[0]:02X} is not 0x01, 0x02 or 0xFF", ErrorCode.DATA_RANGE)
        return FactoryReset(p[0])
    if inst == Instruction.REBOOT:
        need(n == 0, "REBOOT takes none")
        return Reboot()
    if inst == Instruction.CLEAR:
        need(n == 5, "CLEAR takes 5")
        return Clear(p)
    if inst in (Instruction.SYNC_READ, Instruction.FAST_SYNC_READ):
        need(n >= 5, "SYNC_READ takes an address, a length and at least one id")
        length = _u16(p, 2)
        need(length >= 1, "the read length must be >= 1")
        return SyncRead(_u16(p, 0), length, tuple(p[4:]), inst == Instruction.FAST_SYNC_READ)
    if inst == Instruction.SYNC_WRITE:
        length = _u16(p, 2) if n >= 4 else 0
        need(n >= 4 and length >= 1 and (n - 4) % (length + 1) == 0 and n > 4,
             "SYNC_WRITE takes an address, a length >= 1 and (id + length bytes) per servo")
        data = {p[k]: p[k + 1:k + 1 + length] for k in range(4, n, length + 1)}
        need(len(data) == (n - 4) // (length + 1), "an id appears twice")
        return SyncWrite(_u16(p, 0), length, data)
    if inst in (Instruction.BULK_READ, Instruction.FAST_BULK_READ):
        need(n >= 5 and n % 5 == 0, "BULK_READ takes (id, address, length) = 5 bytes per servo")
        items = tuple((p[k], _u16(p, k + 1), _u16(p, k + 3)) for k in range(0, n, 5))
        need(len({i for i, _, _ in items}) == len(items), "an id appears twice")
        return BulkRead(items, inst == Instruction.FAST_BULK_READ)
    if inst == Instruction.BULK_WRITE:
        items_w, k = [], 0
        while k < n:
            need(k + 5 <= n, "a BULK_WRITE entry is cut short")
            length = _u16(p, k + 3)
            need(length >= 1 and k + 5 + length <= n, "a BULK_WRITE entry's data is cut short")
            items_w.append((p[k], _u16(p, k + 1), p[k + 5:k + 5 + length]))
            k += 5 + length
        need(bool(items_w) and len({i for i, _, _ in items_w}) == len(items_w), "no entries or an id twice")
        return BulkWrite(tuple(items_w))
    raise ProtocolError(f"instruction 0x{inst:02X} is not a Protocol 2.0 instruction", ErrorCode.INSTRUCTION)


def decode_status(pkt: Packet, dxl_id: int, n_params: int) -> tuple[int, bytes]:
    """(error byte, params) of the status packet answering a request to ``dxl_id`` that returns
    ``n_params`` bytes; ProtocolError when it is not that reply."""
    if not pkt.is_status:
        raise ProtocolError(f"expected a status packet from id {dxl_id}, got instruction 0x{pkt.instruction:02X}")
    if pkt.id != dxl_id:
        raise ProtocolError(f"expected a status packet from id {dxl_id}, got one from id {pkt.id}")
    if len(pkt.params) != n_params and not (pkt.error and not pkt.params):
        raise ProtocolError(f"status from id {dxl_id} carries {len(pkt.params)} parameter bytes, {n_params} expected")
    return pkt.error or 0, pkt.params


def decode_fast_status(pkt: Packet, items: list[tuple[int, int]]) -> dict[int, tuple[int, bytes]]:
    """{id: (error, data)} from a Fast Sync/Bulk Read reply; ``items`` = [(id, length)] in request order.
    Every per-servo CRC is checked (the last one was checked by the parser)."""
    if not pkt.is_status or pkt.id != BROADCAST_ID:
        raise ProtocolError(f"a fast read reply comes from id {BROADCAST_ID} as a status packet, got id {pkt.id}")
    want = sum(n + 4 for _, n in items) - 2
    raw = pkt.raw
    if len(raw) != 8 + want + 2:
        raise ProtocolError(f"fast read reply holds {len(raw) - 10} bytes, {want} expected for {len(items)} servos")
    out: dict[int, tuple[int, bytes]] = {}
    k = 8
    for idx, (dxl_id, n) in enumerate(items):
        err, got_id, data = raw[k], raw[k + 1], raw[k + 2:k + 2 + n]
        if got_id != dxl_id:
            raise ProtocolError(f"fast read reply slot {idx} is from id {got_id}, id {dxl_id} expected")
        k += 2 + n
        if idx < len(items) - 1:
            crc = raw[k] | (raw[k + 1] << 8)
            if crc != crc16(raw[:k]):
                raise ProtocolError(f"fast read reply: CRC of id {dxl_id}'s slot does not match")
        k += 2
        out[dxl_id] = (err, bytes(data))
    return out
