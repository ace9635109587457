"""Bytes in, frames out: the resynchronising, bounded stream parser shared by the servo codecs.

A serial bus delivers bytes, not packets: replies arrive split across reads, glued together, after line
noise, or cut short. ``StreamParser.feed(data)`` returns, in stream order, every complete frame found and a
``Rejected`` record for every byte run that is not one (garbage before a header, a header with an impossible
id or length, a frame whose checksum fails). ``flush()`` (call it when a read times out) rejects the frame
still waiting for bytes and parses what followed its header. Every byte fed ends up in exactly one accepted frame, one ``Rejected`` or the
pending tail, so nothing is dropped silently, and the pending tail never exceeds one maximal frame.

When a frame fails its check the parser rejects it up to the next header found inside it, so a corrupted
length field cannot swallow the valid frame that follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Rejected", "StreamParser", "ProtocolError"]

P = TypeVar("P")


class ProtocolError(ValueError):
    """A frame that is well formed on the wire but not a valid request or reply; ``code`` is the servo
    error code a servo answers with (Dynamixel), or 0 where the protocol has none."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Rejected:
    """Bytes that are not a frame, and why."""

    kind: str
    """"garbage", "header", "checksum", "stuffing" or "truncated"."""
    reason: str
    data: bytes


class StreamParser(Generic[P]):
    """Resynchronising frame parser; subclasses define the header and the per-frame checks."""

    header: bytes = b""
    prelude: int = 0
    """Bytes from the header start needed to know the frame length."""

    def __init__(self, max_frame: int):
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame (at most one maximal frame)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[P | Rejected]:
        """Append ``data`` and return the frames and rejections it completes, in stream order."""
        buf = self._buf
        buf += data
        out: list[P | Rejected] = []
        i, n, h = 0, len(buf), self.header
        while i < n:
            j = buf.find(h, i)
            if j < 0:
                keep = n
                for k in range(min(len(h) - 1, n - i), 0, -1):  # a header split across reads
                    if buf.endswith(h[:k]):
                        keep = n - k
                        break
                if keep > i:
                    out.append(Rejected("garbage", f"{keep - i} bytes with no frame header", bytes(buf[i:keep])))
                i = keep
                break
            if j > i:
                out.append(Rejected("garbage", f"{j - i} bytes before a frame header", bytes(buf[i:j])))
                i = j
            if n - i < self.prelude:
                break
            size, why, skip = self._frame_size(buf, i)
            if why:
                out.append(Rejected("header", why, bytes(buf[i:i + skip])))
                i += skip
                continue
            if n - i < size:
                break
            frame = bytes(buf[i:i + size])
            result = self._decode(frame)
            if isinstance(result, Rejected):
                # Resync: the rejected span ends where the next header inside it starts.
                k = buf.find(h, i + self._resync_from, min(i + size + len(h) - 1, n))
                end = k if 0 <= k < i + size else i + size
                out.append(Rejected(result.kind, result.reason, bytes(buf[i:end])))
                i = end
                continue
            out.append(result)
            i += size
        del buf[:i]
        return out

    def flush(self) -> list[P | Rejected]:
        """The stream paused (a read timed out): the frame that was waiting for bytes is cut short. Reject
        it up to the next header inside it and parse what follows, since a false header in line noise can
        announce a length that hides complete frames behind it. The parser ends empty."""
        out: list[P | Rejected] = []
        while self._buf:
            k = self._buf.find(self.header, self._resync_from)
            cut = k if k > 0 else len(self._buf)
            out.append(Rejected("truncated", f"stream paused {len(self._buf)} bytes into a frame", bytes(self._buf[:cut])))
            rest = bytes(self._buf[cut:])
            self._buf.clear()
            out += self.feed(rest)
        return out

    _resync_from = 1
    """Offset inside a rejected frame from which to look for the next header."""

    def _frame_size(self, buf: bytearray, i: int) -> tuple[int, str, int]:
        """(total frame bytes, "", 0) or (0, reason, bytes to reject) for an impossible header."""
        raise NotImplementedError

    def _decode(self, frame: bytes) -> P | Rejected:
        """The frame checked and decoded, or a Rejected (its ``data`` is filled in by ``feed``)."""
        raise NotImplementedError
