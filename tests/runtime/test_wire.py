"""The policy server's wire format: arrays round-trip bit for bit, every refusal has a reason code, the decoder
survives fuzzing (random, truncated, re-signed garbage), tampering and replays are refused, the size is checked
before anything is decoded, and the key file is created once with mode 0600 and never overwritten."""

from __future__ import annotations

import hmac
import os
import stat
import struct

import msgpack
import numpy as np
import pytest

from robolearn.errors import UserError
from robolearn.runtime import wire
from robolearn.runtime.wire import (
    DTYPES,
    HEADER_SIZE,
    MAC_SIZE,
    MAGIC,
    REASONS,
    VERSION,
    ReplayWindow,
    WireError,
    load_key,
    pack,
    unpack,
)

KEY = bytes(range(32))


def chunk_body(chunk) -> dict:
    return {"req": 3, "chunk": chunk, "queued_ns": 1, "infer_ns": 2, "server_ns": 4}


def infer_body(obs=None, prefix=None) -> dict:
    obs = {"state": np.arange(4, dtype=np.float32)} if obs is None else obs
    return {"obs": obs, "tick": 7, "mark": 5, "req": 2, "delay": 1, "prefix": prefix}


def signed(payload: bytes, version: int = VERSION) -> bytes:
    """A frame with a valid MAC around an arbitrary payload (reaches the msgpack decoder and the schema)."""
    body = struct.pack("<4sH", MAGIC, version) + payload
    return body + hmac.digest(KEY, body, "sha256")


def refused(frame, **kw) -> WireError:
    with pytest.raises(WireError) as info:
        unpack(KEY, frame, **kw)
    assert info.value.reason in REASONS
    return info.value


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_every_accepted_dtype_round_trips_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    a = (rng.integers(0, 2, (3, 5)) if dtype == "|b1" else rng.normal(0, 50, (3, 5))).astype(dtype)
    msg = unpack(KEY, pack(KEY, "chunk", chunk_body(a), seq=1, client="c", session="s", t_ns=123))
    got = msg.body["chunk"]
    assert got.dtype == np.dtype(dtype) and got.shape == (3, 5) and got.tobytes() == a.tobytes()
    assert (msg.kind, msg.seq, msg.t_ns, msg.client, msg.session) == ("chunk", 1, 123, "c", "s")


@pytest.mark.parametrize("a", [np.array(2.5), np.zeros((0, 3), np.float32), np.arange(12, dtype=">i4").reshape(3, 4),
                               np.arange(20, dtype=np.float64).reshape(4, 5)[:, ::2],
                               np.zeros((2, 96, 96, 3), np.uint8)], ids=["0d", "empty", "big-endian", "strided", "images"])
def test_shapes_byte_orders_and_layouts_round_trip(a):
    got = unpack(KEY, pack(KEY, "chunk", chunk_body(a), seq=1)).body["chunk"]
    assert got.shape == a.shape and np.array_equal(got, a) and got.dtype.byteorder in "<|="


def test_infer_with_prefix_round_trips():
    prefix = {"actions": np.ones((3, 2), np.float32), "d": 1, "s": 2, "hold": None}
    obs = {"state": np.ones(2, np.float32), "images/front": np.full((8, 8, 3), 9, np.uint8)}
    body = unpack(KEY, pack(KEY, "infer", infer_body(obs, prefix), seq=4, client="c")).body
    assert body["prefix"]["actions"].tolist() == [[1, 1]] * 3 and body["prefix"]["hold"] is None
    assert body["obs"]["images/front"].dtype == np.uint8 and int(body["obs"]["images/front"].sum()) == 9 * 192


def test_object_and_unlisted_dtypes_are_refused_both_ways():
    with pytest.raises(WireError) as info:
        pack(KEY, "chunk", chunk_body(np.array([object(), 1], dtype=object)), seq=1)
    assert info.value.reason == "dtype" and "object" in str(info.value)
    with pytest.raises(WireError, match="dtype"):
        pack(KEY, "chunk", chunk_body(np.array(["a", "b"])), seq=1)
    # A peer that claims an object (or complex) dtype in the array header.
    for dtype in (b"|O", b"<c8", b"<U1"):
        ext = msgpack.ExtType(wire.ARRAY_EXT, struct.pack(f"<B{len(dtype)}sBQ", len(dtype), dtype, 1, 8) + bytes(64))
        payload = msgpack.packb({"kind": "chunk", "seq": 1, "t": 0, "client": "", "session": "",
                                 "body": chunk_body(ext)}, use_bin_type=True)
        err = refused(signed(payload))
        assert err.reason == "dtype" and dtype.decode() in err.detail


def test_array_byte_count_must_match_the_shape():
    for shape, nbytes in (((2, 3), 23), ((2, 3), 25), ((2**40, 2**40), 8)):
        head = struct.pack(f"<B3sB{len(shape)}Q", 3, b"<f4", len(shape), *shape)
        payload = msgpack.packb({"kind": "chunk", "seq": 1, "t": 0, "client": "", "session": "",
                                 "body": chunk_body(msgpack.ExtType(1, head + bytes(nbytes)))}, use_bin_type=True)
        assert refused(signed(payload)).reason == "malformed"


def test_schema_names_what_is_wrong():
    def frame(**top):
        doc = {"kind": "infer", "seq": 1, "t": 0, "client": "c", "session": "s", "body": infer_body(), **top}
        return signed(msgpack.packb(doc, default=wire._default, use_bin_type=True))

    assert "unknown kind 'shell'" in refused(frame(kind="shell")).detail
    assert refused(frame(seq=True)).reason == "schema"  # a bool is not a sequence number
    assert refused(frame(seq=-1)).reason == "schema"
    assert refused(frame(client="x" * 65)).reason == "schema"
    body = infer_body()
    del body["tick"]
    assert "missing ['tick']" in refused(frame(body=body)).detail
    assert "unexpected ['__class__']" in refused(frame(body={**infer_body(), "__class__": "os.system"})).detail
    assert "'obs'" in refused(frame(body={**infer_body(), "obs": {"state": [1.0, 2.0]}})).detail
    assert refused(signed(msgpack.packb([1, 2, 3]))).reason == "schema"
    assert refused(signed(msgpack.packb({1: 2}))).reason == "malformed"  # non-string map keys
    assert refused(signed(msgpack.packb(msgpack.ExtType(5, b"x")))).reason == "malformed"


def test_version_mismatch_is_refused_with_both_versions_named():
    err = refused(pack(KEY, "reset", {"task": None, "seed": None}, seq=1, version=VERSION + 1))
    assert err.reason == "version" and f"version {VERSION + 1}" in err.detail and f"speaks version {VERSION}" in err.detail


def test_oversize_frames_are_refused_before_anything_is_decoded(monkeypatch):
    frame = pack(KEY, "chunk", chunk_body(np.zeros((1000, 10), np.float32)), seq=1)

    def forbidden(*a, **k):
        raise AssertionError("decoded or MACed an oversize frame")

    monkeypatch.setattr(wire.msgpack, "unpackb", forbidden)
    monkeypatch.setattr(wire.hmac, "digest", forbidden)
    err = refused(frame, max_frame=len(frame) - 1)
    assert err.reason == "too_large" and str(len(frame)) in err.detail


def test_a_flipped_bit_in_payload_or_mac_is_refused():
    frame = pack(KEY, "infer", infer_body(), seq=9, client="c")
    rng = np.random.default_rng(1)
    for pos in [*rng.integers(HEADER_SIZE, len(frame), 300), len(frame) - 1, len(frame) - MAC_SIZE, HEADER_SIZE]:
        bad = bytearray(frame)
        bad[pos] ^= 1 << int(rng.integers(8))
        assert refused(bytes(bad)).reason == "bad_mac"
    wrong_key = pack(bytes(32), "infer", infer_body(), seq=9, client="c")
    assert refused(wrong_key).reason == "bad_mac"


def test_decoder_fuzz_random_truncated_and_resigned_frames_never_crash():
    rng = np.random.default_rng(2)
    valid = [pack(KEY, "infer", infer_body(prefix={"actions": np.ones((2, 2), np.float32), "d": 0, "s": 1,
                                                   "hold": np.zeros(2, np.float32)}), seq=1, client="c"),
             pack(KEY, "chunk", chunk_body(np.ones((4, 2), np.float32)), seq=2),
             pack(KEY, "error", {"reason": "replay", "detail": "x", "req": 1}, seq=3)]
    reasons: dict[str, int] = {}
    accepted = 0
    for i in range(12_000):
        case = i % 4
        if case == 0:  # random bytes, sometimes behind a valid header
            frame = rng.bytes(int(rng.integers(0, 300)))
            if i % 8 == 0:
                frame = struct.pack("<4sH", MAGIC, VERSION) + frame
        elif case == 1:  # truncated valid frames
            v = valid[i % 3]
            frame = v[: int(rng.integers(0, len(v)))]
        elif case == 2:  # random payloads with a valid MAC: the msgpack decoder and schema see them
            frame = signed(rng.bytes(int(rng.integers(0, 200))))
        else:  # valid payloads with random bytes changed, re-signed
            v = bytearray(valid[i % 3][HEADER_SIZE:-MAC_SIZE])
            for _ in range(int(rng.integers(1, 4))):
                v[int(rng.integers(len(v)))] = int(rng.integers(256))
            frame = signed(bytes(v))
        try:
            msg = unpack(KEY, frame)
        except WireError as e:
            assert e.reason in REASONS, e
            reasons[e.reason] = reasons.get(e.reason, 0) + 1
        else:
            assert msg.kind in wire.BODIES  # a mutation that still spells a valid frame
            accepted += 1
    assert {"truncated", "magic", "bad_mac", "malformed", "schema"} <= set(reasons), reasons
    assert accepted < 3000, (accepted, reasons)


def test_replay_window_refuses_repeats_and_old_numbers():
    w = ReplayWindow(size=8)
    for seq in (1, 2, 5, 3):  # out of order within the window is fine
        w.check(seq)
    for seq in (2, 5):
        with pytest.raises(WireError) as info:
            w.check(seq)
        assert info.value.reason == "replay"
    w.check(40)
    with pytest.raises(WireError) as info:
        w.check(32)
    assert info.value.reason == "too_old"
    w.check(33)
    for seq in range(41, 100):
        w.check(seq)
    assert len(w._seen) <= 2 * w.size + 1  # pruned: memory bounded
    with pytest.raises(WireError, match="replay"):
        w.check(99)


def test_key_file_created_once_with_mode_0600_and_never_overwritten(tmp_path, capsys):
    path = tmp_path / "conf" / "server.key"
    old_umask = os.umask(0)  # even a permissive umask must not loosen it
    try:
        key, created = load_key(path)
    finally:
        os.umask(old_umask)
    assert created and len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in capsys.readouterr().err
    content = path.read_bytes()
    again, created_again = load_key(path)
    assert again == key and not created_again and path.read_bytes() == content
    assert capsys.readouterr().err == ""


def test_key_file_with_loose_mode_or_no_key_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "server.key"
    load_key(path)
    content = path.read_bytes()
    path.chmod(0o644)
    with pytest.raises(UserError, match=r"has mode 0644: others may read .*chmod 600 .*server\.key"):
        load_key(path)
    path.chmod(0o600)
    assert load_key(path)[0] == bytes.fromhex(content.decode())
    junk = tmp_path / "junk.key"
    fd = os.open(junk, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not a key")
    os.close(fd)
    with pytest.raises(UserError, match="does not hold a key .* never overwritten"):
        load_key(junk)
    assert junk.read_bytes() == b"not a key"
    with pytest.raises(UserError, match="does not exist"):
        load_key(tmp_path / "absent.key", create=False)
    link = tmp_path / "link.key"
    link.symlink_to(path)
    with pytest.raises(UserError, match="cannot be opened"):
        load_key(link)


def test_nothing_on_the_deploy_path_can_unpickle():
    """An AST check of the runtime package, the deploy command and the server benchmark: no pickle-family import,
    no torch.load, no eval/exec (LeRobot's async server unpickles what the network sends)."""
    import ast
    from pathlib import Path

    root = Path(wire.__file__).resolve().parents[2]
    files = [*sorted((root / "robolearn" / "runtime").glob("*.py")), root / "robolearn" / "deploy.py",
             root / "benchmarks" / "server.py"]
    banned = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in ("eval", "exec"):
                    names = [f.id]
                elif isinstance(f, ast.Attribute) and f.attr == "load" and getattr(f.value, "id", "") == "torch":
                    names = ["torch.load"]
            found += [f"{path.name}:{node.lineno} {n}" for n in names if n in banned | {"eval", "exec", "torch.load"}]
    assert len(files) >= 10 and found == []
