"""The policy server's wire format: msgpack frames with raw arrays, authenticated with HMAC-SHA256.

One frame is one ZeroMQ message part::

    b"RLPS" | version (u16 LE) | payload (msgpack) | HMAC-SHA256(key, everything before it) (32 bytes)

The payload is a map ``{"kind", "seq", "t", "client", "session", "body"}``: ``seq`` numbers the sender's
frames (strictly new per sender, checked by the receiver's ``ReplayWindow``), ``t`` is the sender's
``time.monotonic_ns()``, ``client`` the client's random id (it names the policy state on the server and
is covered by the MAC, unlike ZeroMQ's routing id), ``session`` the server's random id for its lifetime
(a frame from before a server restart is refused). ``body`` holds what the kind needs (``BODIES``).
Arrays travel as msgpack extension ``1``: ``u8 len | dtype string (e.g. "<f4") | u8 ndim | ndim x u64
LE | raw bytes``; only the plain numeric dtypes of ``DTYPES`` are accepted (object dtypes never), and the
byte count must match the shape exactly.

``unpack`` checks, in this order and before any decoding: size (``max_frame``), length, magic, version,
MAC; then msgpack (with a C decoder, nesting bounded) and the schema. Every refusal is a ``WireError``
with a short reason code (``REASONS``) and a sentence; nothing in the format can name a Python type to
build, and nothing uses pickle.

The key is 32 random bytes kept as hex in a file only its owner may read (``load_key``): created once,
with mode 0600, never overwritten.

Example::

    key, _ = load_key(default_key_file())
    frame = pack(key, "infer", {"obs": {"state": np.zeros(2, np.float32)}, ...}, seq=1, client=cid)
    msg = unpack(key, frame)                  # Message(kind="infer", seq=1, ...) or WireError
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from robolearn.errors import InvalidValueError
from robolearn.runtime.backends import ChunkPrefix, ChunkRequest

__all__ = [
    "BODIES",
    "DEFAULT_MAX_FRAME",
    "DTYPES",
    "MAGIC",
    "REASONS",
    "VERSION",
    "Message",
    "ReplayWindow",
    "WireError",
    "default_key_file",
    "infer_body",
    "load_key",
    "pack",
    "request_from_body",
    "unpack",
]

VERSION = 1
MAGIC = b"RLPS"
_HEADER = struct.Struct("<4sH")
HEADER_SIZE = _HEADER.size
MAC_SIZE = 32
DEFAULT_MAX_FRAME = 32 * 2**20
"""Bytes; a DP observation (2 cameras 96x96 + state) is ~55 KB, two 640x480 cameras ~1.8 MB."""
ARRAY_EXT = 1
MAX_NDIM = 16
MAX_ID = 64
"""Longest client or session id (characters)."""
DTYPES = frozenset({"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"})
KEY_BYTES = 32

REASONS = {
    "too_large": "the frame is larger than the receiver's maximum frame size",
    "truncated": "the frame is shorter than header + MAC",
    "magic": "the frame does not start with the robolearn policy server magic",
    "version": "the frame is another wire version",
    "bad_mac": "the HMAC does not match: tampered, or the two sides use different key files",
    "malformed": "the payload is not valid msgpack of this format",
    "schema": "a field is missing, unexpected or of the wrong type",
    "dtype": "an array has a dtype outside the accepted numeric ones",
    "replay": "a frame with this sequence number was already received",
    "too_old": "the sequence number is older than the replay window",
    "session": "the frame belongs to another server session (the server restarted): send a reset",
    "unknown_client": "the server holds no state for this client: send a reset",
    "unexpected_kind": "this side does not accept frames of that kind",
    "missing_keys": "the observation lacks keys the policy reads",
    "task_required": "the policy is language-conditioned: the reset must name the task",
    "policy_error": "the policy raised (the server logs the traceback; none is sent)",
    "internal": "the server failed on this frame (logged on the server)",
}
"""Every reason code a peer may receive, with what it means."""


class WireError(Exception):
    """A frame refused; ``reason`` is a code of ``REASONS``, ``detail`` one sentence."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Message:
    kind: str
    seq: int
    t_ns: int
    client: str
    session: str
    body: dict[str, Any]


# ---------------------------------------------------------------- arrays

def _encode_array(a: np.ndarray) -> msgpack.ExtType:
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    dtype = a.dtype.str
    if dtype not in DTYPES:
        raise WireError("dtype", f"cannot send an array of dtype {a.dtype} ({dtype!r}); accepted: {sorted(DTYPES)}")
    if a.ndim > MAX_NDIM:
        raise WireError("schema", f"cannot send an array with {a.ndim} dimensions (at most {MAX_NDIM})")
    if not a.flags.c_contiguous:
        a = a.copy(order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    head = struct.pack(f"<B{len(dtype)}sB{a.ndim}Q", len(dtype), dtype.encode(), a.ndim, *a.shape)
    return msgpack.ExtType(ARRAY_EXT, head + memoryview(a.reshape(-1)).cast("B") if a.size else head)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _encode_array(obj)
    if isinstance(obj, np.generic):
        if obj.dtype.kind in "biuf":
            return obj.item()
    raise WireError("schema", f"cannot send a value of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> np.ndarray:
    if code != ARRAY_EXT:
        raise WireError("malformed", f"unknown msgpack extension type {code}")
    if len(data) < 2:
        raise WireError("malformed", "array header truncated")
    n = data[0]
    if len(data) < 2 + n:
        raise WireError("malformed", "array header truncated")
    dtype = data[1:1 + n].decode("ascii", errors="replace")
    if dtype not in DTYPES:
        raise WireError("dtype", f"array dtype {dtype[:16]!r} refused; accepted: {sorted(DTYPES)}")
    ndim = data[1 + n]
    if ndim > MAX_NDIM:
        raise WireError("malformed", f"array with {ndim} dimensions (at most {MAX_NDIM})")
    offset = 2 + n + 8 * ndim
    if len(data) < offset:
        raise WireError("malformed", "array shape truncated")
    shape = struct.unpack_from(f"<{ndim}Q", data, 2 + n)
    count = 1
    for s in shape:
        count *= s  # Python ints: no overflow, compared with the bytes really present below
    itemsize = int(dtype[2:])
    if count * itemsize != len(data) - offset:
        raise WireError("malformed", f"array of shape {shape} and dtype {dtype} needs {count * itemsize} bytes, "
                                     f"the frame holds {len(data) - offset}")
    arr = np.frombuffer(data, np.dtype(dtype), count, offset).reshape(shape)
    return arr != 0 if dtype == "|b1" else arr  # bool bytes other than 0/1 become proper bools


# ---------------------------------------------------------------- schema

_INT = "int"
_ARRAY = "array"
_OBS = "obs"
_OPT = "?"
BODIES: dict[str, dict[str, Any]] = {
    # client -> server
    "reset": {"task": (str, None), "seed": (_INT, None)},
    "infer": {"obs": _OBS, "tick": _INT, "mark": _INT, "req": _INT, "delay": _INT, "prefix": ("prefix", None)},
    # server -> client
    "ready": {"ack": _INT, "info": dict, "max_frame": _INT},
    "chunk": {"req": _INT, "chunk": _ARRAY, "queued_ns": _INT, "infer_ns": _INT, "server_ns": _INT},
    "error": {"reason": str, "detail": str, "req": _INT},
}
"""Each kind's body: field -> type (or a tuple of accepted types, None for nil)."""
_PREFIX = {"actions": _ARRAY, "d": _INT, "s": _INT, "hold": (_ARRAY, None)}
_TOP = ("kind", "seq", "t", "client", "session", "body")


def _is(value: Any, kind: Any) -> bool:
    if kind is None:
        return value is None
    if kind == _INT:
        return type(value) is int
    if kind == _ARRAY:
        return isinstance(value, np.ndarray)
    if kind == _OBS:
        return (type(value) is dict and len(value) <= 256
                and all(type(k) is str and isinstance(v, np.ndarray) for k, v in value.items()))
    if kind == "prefix":
        return type(value) is dict and _fields_ok(value, _PREFIX) is None
    return type(value) is kind


def _fields_ok(obj: dict, spec: dict[str, Any]) -> str | None:
    if set(obj) != set(spec):
        missing, extra = sorted(set(spec) - set(obj)), sorted(map(str, set(obj) - set(spec)))
        return f"fields missing {missing}, unexpected {[e[:32] for e in extra[:4]]}"
    for name, kind in spec.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not any(_is(obj[name], k) for k in kinds):
            return f"field {name!r} has type {type(obj[name]).__name__}"
    return None


def _check(payload: Any) -> Message:
    if type(payload) is not dict:
        raise WireError("schema", f"the payload is a {type(payload).__name__}, not a map")
    if set(payload) != set(_TOP):
        raise WireError("schema", f"the payload has fields {sorted(map(str, payload))[:8]}, expected {list(_TOP)}")
    kind, seq, t, client, session, body = (payload[k] for k in _TOP)
    if type(kind) is not str or kind not in BODIES:
        raise WireError("schema", f"unknown kind {str(kind)[:32]!r}; known: {sorted(BODIES)}")
    if type(seq) is not int or not 0 <= seq < 2**63 or type(t) is not int:
        raise WireError("schema", "seq must be an int in [0, 2**63) and t an int (ns)")
    if (type(client) is not str or type(session) is not str or len(client) > MAX_ID
            or len(session) > MAX_ID):
        raise WireError("schema", f"client and session must be strings of at most {MAX_ID} characters")
    if type(body) is not dict:
        raise WireError("schema", f"the body of a {kind!r} frame must be a map")
    problem = _fields_ok(body, BODIES[kind])
    if problem is not None:
        raise WireError("schema", f"{kind!r} body: {problem}")
    return Message(kind, seq, t, client, session, body)


def infer_body(r: ChunkRequest) -> dict[str, Any]:
    """The body of an ``infer`` frame for ``r`` (``BODIES["infer"]``)."""
    prefix = None
    if r.prefix is not None:
        p = r.prefix
        prefix = {"actions": np.asarray(p.actions), "d": int(p.d), "s": int(p.s),
                  "hold": None if p.hold is None else np.asarray(p.hold)}
    return {"obs": {k: np.asarray(v) for k, v in r.obs.items()}, "tick": int(r.tick), "mark": int(r.mark),
            "req": int(r.seq), "delay": int(r.delay), "prefix": prefix}


def request_from_body(body: dict[str, Any]) -> ChunkRequest:
    """The ``ChunkRequest`` an ``infer`` body (checked by ``unpack``) carries."""
    p = body["prefix"]
    prefix = None if p is None else ChunkPrefix(p["actions"], p["d"], p["s"], p["hold"])
    return ChunkRequest(body["obs"], body["tick"], body["mark"], body["req"], body["delay"], prefix)


# ---------------------------------------------------------------- frames

def pack(key: bytes, kind: str, body: dict[str, Any], *, seq: int, client: str = "", session: str = "",
         t_ns: int | None = None, version: int = VERSION) -> bytes:
    """One signed frame. Raises WireError for a value the format cannot carry (e.g. an object array)."""
    payload = msgpack.packb(
        {"kind": kind, "seq": seq, "t": time.monotonic_ns() if t_ns is None else t_ns, "client": client,
         "session": session, "body": body},
        default=_default, use_bin_type=True)
    signed = _HEADER.pack(MAGIC, version) + payload
    return signed + hmac.digest(key, signed, "sha256")


def unpack(key: bytes, frame: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> Message:
    """Check and decode one frame (module doc for the order); raises WireError naming why it is refused."""
    n = len(frame)
    if n > max_frame:
        raise WireError("too_large", f"{n} bytes, over the maximum frame size of {max_frame}")
    if n < HEADER_SIZE + MAC_SIZE + 1:
        raise WireError("truncated", f"{n} bytes, shorter than header + MAC + 1")
    magic, version = _HEADER.unpack_from(frame)
    if magic != MAGIC:
        raise WireError("magic", "not a robolearn policy server frame")
    if version != VERSION:
        raise WireError("version", f"the frame is wire version {version}; this side speaks version {VERSION}")
    view = memoryview(frame)
    if not hmac.compare_digest(hmac.digest(key, view[:-MAC_SIZE], "sha256"), view[-MAC_SIZE:]):
        raise WireError("bad_mac", "the HMAC does not match (tampered, or the two sides use different key files)")
    try:
        payload = msgpack.unpackb(view[HEADER_SIZE:-MAC_SIZE], raw=False, strict_map_key=True, use_list=True,
                                  ext_hook=_ext_hook)
    except WireError:
        raise
    except Exception as e:  # noqa: BLE001  (msgpack raises several types; every one is a malformed frame)
        raise WireError("malformed", f"the payload is not valid msgpack ({type(e).__name__})") from None
    return _check(payload)


class ReplayWindow:
    """Sequence numbers already received from one sender: a repeat, or one older than the newest minus
    ``size``, is refused (``replay`` / ``too_old``). Numbers may arrive out of order within the window."""

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError(f"ReplayWindow: size must be >= 1, got {size}")
        self.size = int(size)
        self.newest = -1
        self._seen: set[int] = set()

    def check(self, seq: int) -> None:
        """Raise WireError if ``seq`` is a replay or too old; otherwise remember it."""
        if seq <= self.newest - self.size:
            raise WireError("too_old", f"sequence number {seq} is older than the window (newest {self.newest}, "
                                       f"window {self.size})")
        if seq in self._seen:
            raise WireError("replay", f"sequence number {seq} was already received")
        self._seen.add(seq)
        if seq > self.newest:
            self.newest = seq
            if len(self._seen) > 2 * self.size:
                floor = self.newest - self.size
                self._seen = {s for s in self._seen if s > floor}


# ---------------------------------------------------------------- key file

def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/robolearn/policy-server.key`` (``~/.config/...`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "robolearn" / "policy-server.key"


def load_key(path: str | os.PathLike, create: bool = True, what: str = "policy server key") -> tuple[bytes, bool]:
    """The key in ``path`` and whether this call created it (``what`` names it in messages: the policy
    server's HMAC key, or the live view's token).

    A missing file is created (with ``create``) with mode 0600 through ``O_CREAT | O_EXCL``, so an
    existing file is never overwritten, and its path is printed to stderr. A file others may read or
    write, that its user does not own, or that holds no key is refused with a message saying what to do.
    """
    path = Path(path).expanduser()
    created = False
    if not os.path.lexists(path):
        if not create:
            raise InvalidValueError(f"key file {path} does not exist; start `robolearn serve` once to create it, "
                                    "or pass --key-file with the server's key file")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass  # another process created it meanwhile: read theirs
        else:
            try:
                os.write(fd, (secrets.token_hex(KEY_BYTES) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            created = True
            hint = "give the robot's client the same file (--key-file)" if what == "policy server key" else \
                "the URL printed at start carries it"
            print(f"robolearn: created the {what} file {path} (mode 0600); {hint}", file=sys.stderr)
    return _read_key(path), created


def _read_key(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise InvalidValueError(f"key file {path} cannot be opened ({e.strerror}); it must be a regular file "
                                "readable by its owner") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidValueError(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise InvalidValueError(f"key file {path} has mode {mode:04o}: others may read or change it; "
                                    f"run `chmod 600 {path}` (owner read/write only)")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise InvalidValueError(f"key file {path} belongs to uid {st.st_uid}, not to this user ({os.getuid()})")
        text = os.read(fd, 4096).decode("ascii", errors="replace").strip()
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise InvalidValueError(f"key file {path} does not hold a key ({2 * KEY_BYTES} or more hex digits); it is "
                                "never overwritten: move it away and a new one is created")
    return key
