"""Generated-frame fuzzing of the servo parsers (used by the tests and benchmarks/fuzz_servo_codecs.py).

Each case draws one of:

- ``valid``: a random request or reply, built by the codec, must parse back to exactly what was built;
- ``stream``: several valid frames glued with random garbage and cut into random chunks must all come
  back, in order, with every other byte rejected;
- ``random``: random bytes must never crash or hang; any frame found in them must really be a valid frame
  (re-encoding gives the same bytes), everything else is rejected with a reason;
- ``truncated``: a valid frame cut short must yield no frame, only rejections (after ``flush``);
- ``bitflip``: a valid frame with one bit flipped must not be accepted. A request is accepted when it parses
  and decodes as a request; a reply when it is the reply its request expects (id and length).

Bytes are conserved in every case: accepted frames + rejected bytes + pending bytes = bytes fed, and the
pending tail never exceeds one maximal frame. A flipped bit in the length field of a variable-length
request can shorten it to a prefix whose checksum happens to match (2^-16 for CRC-16, 2^-8 for Feetech's
sum); those are counted apart as ``length_flips_accepted`` since no parser can catch them. Likewise
Feetech line noise can form a valid frame that swallows the start of the next real one
(``stream_frames_lost_to_noise_frames``); Dynamixel's 4-byte header, stuffing and CRC-16 make both vanishingly rare.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from . import dynamixel as dxl
from . import feetech as ft
from .stream import ProtocolError, Rejected

__all__ = ["FuzzStats", "fuzz", "random_frame", "flip_outcome"]


@dataclass
class FuzzStats:
    protocol: str
    cases: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    bitflips: int = 0
    bitflips_rejected: int = 0
    length_flips_accepted: int = 0
    """Accepted flips of a length bit that shortened a variable-length request (see module doc)."""
    other_flips_accepted: int = 0
    """Accepted flips anywhere else: must stay 0."""
    stream_frames_lost_to_noise_frames: int = 0
    """Streams where garbage formed a checksum-valid frame that swallowed a real frame's start."""
    failures: list[str] = field(default_factory=list)
    max_pending: int = 0
    max_case_s: float = 0.0
    seconds: float = 0.0

    def fail(self, what: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(what)

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def _bytes(rng: random.Random, lo: int, hi: int) -> bytes:
    # Bias toward header bytes so stuffing and resync paths are exercised.
    return bytes(rng.choice((0xFF, 0xFD, 0x00, rng.randrange(256))) for _ in range(rng.randint(lo, hi)))


def random_frame(rng: random.Random, protocol: str) -> tuple[bytes, str, object]:
    """(wire bytes, "request" | "reply", what it must decode to: the request, or (id, error, params))."""
    if protocol == "dynamixel":
        i = rng.randrange(dxl.MAX_ID + 1)
        a = rng.randrange(700)
        n = rng.randint(1, 8)
        ids = rng.sample(range(dxl.MAX_ID + 1), rng.randint(1, 6))
        kind = rng.randrange(10)
        if kind == 0:
            return dxl.ping(i), "request", dxl.Ping()
        if kind == 1:
            return dxl.read(i, a, n), "request", dxl.Read(a, n)
        if kind == 2:
            d = _bytes(rng, 1, 8)
            return dxl.write(i, a, d), "request", dxl.Write(a, d)
        if kind == 3:
            d = _bytes(rng, 1, 8)
            return dxl.reg_write(i, a, d), "request", dxl.RegWrite(a, d)
        if kind == 4:
            fast = rng.random() < 0.5
            return dxl.sync_read(a, n, ids, fast), "request", dxl.SyncRead(a, n, tuple(ids), fast)
        if kind == 5:
            data = {k: _bytes(rng, n, n) for k in ids}
            return dxl.sync_write(a, n, data), "request", dxl.SyncWrite(a, n, data)
        if kind == 6:
            items = [(k, rng.randrange(700), rng.randint(1, 8)) for k in ids]
            return dxl.bulk_read(items), "request", dxl.BulkRead(tuple(items))
        if kind == 7:
            items = [(k, rng.randrange(700), _bytes(rng, 1, 6)) for k in ids]
            return dxl.bulk_write(items), "request", dxl.BulkWrite(tuple(items))
        if kind == 8:
            return rng.choice([(dxl.reboot(i), "request", dxl.Reboot()),
                               (dxl.factory_reset(i, 0x02), "request", dxl.FactoryReset(0x02))])
        err, params = rng.choice((0, 0, 0x80, rng.randint(1, 7))), _bytes(rng, 0, 12)
        return dxl.encode_status(i, err, params), "reply", (i, err, params)
    i = rng.randrange(ft.MAX_ID + 1)
    a = rng.randrange(256)
    n = rng.randint(1, 8)
    ids = rng.sample(range(ft.MAX_ID + 1), rng.randint(1, 6))
    kind = rng.randrange(7)
    if kind == 0:
        return ft.ping(i), "request", ft.Ping()
    if kind == 1:
        return ft.read(i, a, n), "request", ft.Read(a, n)
    if kind == 2:
        d = _bytes(rng, 1, 8)
        return ft.write(i, a, d), "request", ft.Write(a, d)
    if kind == 3:
        return ft.sync_read(a, n, ids), "request", ft.SyncRead(a, n, tuple(ids))
    if kind == 4:
        data = {k: _bytes(rng, n, n) for k in ids}
        return ft.sync_write(a, n, data), "request", ft.SyncWrite(a, n, data)
    if kind == 5:
        return rng.choice([(ft.action(), "request", ft.Action()), (ft.reset(i), "request", ft.Reset())])
    err, params = rng.choice((0, 0, 32, 8, 1)), _bytes(rng, 0, 12)
    return ft.encode_status(i, err, params), "reply", (i, err, params)


def _parser(protocol: str, direction: str):
    if protocol == "dynamixel":
        return dxl.DynamixelParser()
    return ft.FeetechParser(replies=direction == "reply")


def _accepts(protocol: str, direction: str, pkt, expect) -> bool:
    """Would the consumer act on ``pkt``? (a request that decodes; the expected reply)."""
    codec = dxl if protocol == "dynamixel" else ft
    try:
        if direction == "request":
            if protocol == "dynamixel" and pkt.is_status:
                return False
            codec.decode_request(pkt)
            return True
        sid, _, params = expect
        codec.decode_status(pkt, sid, len(params))
        return True
    except ProtocolError:
        return False


def _decoded(protocol: str, direction: str, pkt):
    if direction == "request":
        return (dxl if protocol == "dynamixel" else ft).decode_request(pkt)
    err = pkt.error if protocol == "dynamixel" else pkt.code
    return pkt.id, err, pkt.params


def _run(parser, chunks: list[bytes], stats: FuzzStats) -> list:
    events, fed = [], 0
    for c in chunks:
        events += parser.feed(c)
        fed += len(c)
        stats.max_pending = max(stats.max_pending, parser.pending)
        if parser.pending > parser.max_frame:
            stats.fail(f"pending {parser.pending} bytes exceeds one frame ({parser.max_frame})")
    events += parser.flush()
    got = sum(len(e.data) if isinstance(e, Rejected) else len(e.raw) for e in events)
    if got != fed:
        stats.fail(f"bytes not conserved: fed {fed}, accounted {got}")
    for e in events:
        if isinstance(e, Rejected) and not e.reason:
            stats.fail("a rejection without a reason")
    return events


def _length_bit(protocol: str, frame: bytes, bit: int) -> bool:
    byte = bit // 8
    if protocol == "dynamixel":
        return byte in (5, 6) and frame[byte] & (1 << (bit % 8)) != 0  # a set bit cleared: shorter
    return byte == 3 and frame[3] & (1 << (bit % 8)) != 0


def flip_outcome(protocol: str, frame: bytes, direction: str, expect, bit: int, stats: FuzzStats) -> None:
    """Flip ``bit`` of ``frame`` and record whether the consumer still accepted something."""
    bad = bytearray(frame)
    bad[bit // 8] ^= 1 << (bit % 8)
    events = _run(_parser(protocol, direction), [bytes(bad)], stats)
    accepted = [e for e in events if not isinstance(e, Rejected) and _accepts(protocol, direction, e, expect)]
    stats.bitflips += 1
    if not accepted:
        stats.bitflips_rejected += 1
    elif direction == "request" and _length_bit(protocol, frame, bit):
        stats.length_flips_accepted += 1
    else:
        stats.other_flips_accepted += 1
        stats.fail(f"bit {bit} flipped in {frame.hex()} was accepted as {accepted[0]}")


def fuzz(n: int, protocol: str, seed: int = 0) -> FuzzStats:
    """Run ``n`` generated cases against one protocol's parser."""
    rng = random.Random(seed)
    stats = FuzzStats(protocol)
    t_start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        u = rng.random()
        frame, direction, expect = random_frame(rng, protocol)
        if u < 0.35:
            kind = "valid"
            events = _run(_parser(protocol, direction), [frame], stats)
            if len(events) != 1 or isinstance(events[0], Rejected) or events[0].raw != frame:
                stats.fail(f"valid frame {frame.hex()} parsed as {events}")
            elif _decoded(protocol, direction, events[0]) != expect:
                stats.fail(f"valid frame {frame.hex()} decoded as {_decoded(protocol, direction, events[0])}, built from {expect}")
        elif u < 0.45:
            kind = "stream"
            frames = [frame] + [f for f, d, _ in (random_frame(rng, protocol) for _ in range(rng.randint(1, 4)))
                                if d == direction]
            wire = b"".join(_bytes(rng, 0, 6) + f for f in frames)
            cuts = sorted(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.randint(0, 6))))
            chunks = [wire[a:b] for a, b in zip([0] + cuts, cuts + [len(wire)])]
            got = [e.raw for e in _run(_parser(protocol, direction), chunks, stats) if not isinstance(e, Rejected)]
            # The built frames must all come back, in order. Garbage can by chance hold a frame of its
            # own (a Feetech checksum matches 1 time in 256); if that frame runs into the next real one,
            # the real one is lost: counted apart, a failure only when no such noise frame was accepted.
            it = iter(got)
            if not all(any(g == f for g in it) for f in frames):
                if any(g not in frames for g in got):
                    stats.stream_frames_lost_to_noise_frames += 1
                else:
                    stats.fail(f"stream of {len(frames)} frames with garbage lost one: {wire.hex()}")
        elif u < 0.60:
            kind = "random"
            blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
            if rng.random() < 0.5:  # start like a frame to reach the deeper checks
                blob = (dxl.HEADER if protocol == "dynamixel" else ft.HEADER) + blob
            for e in _run(_parser(protocol, direction), [blob], stats):
                if not isinstance(e, Rejected):
                    codec = dxl if protocol == "dynamixel" else ft
                    rebuilt = (codec.encode_packet(e.id, e.instruction, (bytes([e.error]) if e.is_status else b"") + e.params)
                               if protocol == "dynamixel" else codec.encode_packet(e.id, e.code, e.params))
                    if rebuilt != e.raw and not (protocol == "dynamixel" and e.id == dxl.BROADCAST_ID and e.is_status):
                        stats.fail(f"random bytes {blob.hex()} yielded a frame that is not valid: {e}")
        elif u < 0.75:
            kind = "truncated"
            cut = rng.randrange(1, len(frame))
            events = _run(_parser(protocol, direction), [frame[:cut]], stats)
            if any(not isinstance(e, Rejected) for e in events):
                stats.fail(f"truncated frame {frame[:cut].hex()} was accepted")
        else:
            kind = "bitflip"
            flip_outcome(protocol, frame, direction, expect, rng.randrange(8 * len(frame)), stats)
        stats.counts[kind] = stats.counts.get(kind, 0) + 1
        stats.cases += 1
        stats.max_case_s = max(stats.max_case_s, time.perf_counter() - t0)
    stats.seconds = time.perf_counter() - t_start
    return stats
