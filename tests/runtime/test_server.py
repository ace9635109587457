"""The policy server and its client backend on 127.0.0.1: round trips with a scripted policy (no torch) and a tiny
trained one, per-client state, refusals a peer sees as reason codes (tampered, replayed, stale session, other
version, oversize, object dtype, missing keys, a raising policy), loopback-only binding, reconnection after a
server restart with bounded retries. Every server is stopped by its handle in a finalizer and every receive has
a timeout."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from robolearn.errors import CannotCompleteError, UserError
from robolearn.runtime import wire
from robolearn.runtime.backends import ChunkPrefix, ChunkRequest, InferenceBackend
from robolearn.runtime.server import PolicyServer, ServerBackend, check_bind_host

KEY = bytes(range(32))
T, DA = 6, 2


class CountingPolicy:
    """A scripted ServedPolicy: each client's chunk i is filled with [calls since its reset, state[0]]."""

    info = {"policy": "counting", "input_keys": ["state"]}

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.requests: list[ChunkRequest] = []

    def new_client(self, task, seed):
        calls = [0]

        def chunk(request: ChunkRequest) -> np.ndarray:
            self.requests.append(request)
            if request.obs["state"].dtype == np.float64:
                raise ValueError("the policy fails on float64 (scripted)")
            time.sleep(self.delay_s)
            calls[0] += 1
            return np.stack([np.full(T, calls[0], np.float32), np.full(T, request.obs["state"][0], np.float32)], 1)

        return chunk


def obs(value: float = 0.0) -> dict[str, np.ndarray]:
    return {"state": np.array([value, 0.5], np.float32)}


def wait_results(backend, n: int = 1, timeout_s: float = 10.0) -> list:
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        assert time.monotonic() < deadline, f"{len(out)} of {n} results within {timeout_s} s"
        out += backend.poll()
        time.sleep(0.001)
    return out


@pytest.fixture
def serve(request):
    """serve(policy, port=0, **kw) -> a started PolicyServer, stopped by its handle at teardown."""

    def start(policy=None, port: int = 0, **kw) -> PolicyServer:
        server = PolicyServer(policy or CountingPolicy(), KEY, "127.0.0.1", port, **kw).start()
        request.addfinalizer(server.stop)
        return server

    return start


@pytest.fixture
def connect(request):
    def make(server_or_address, **kw) -> ServerBackend:
        address = getattr(server_or_address, "address", server_or_address)
        backend = ServerBackend(address, key=KEY, connect_timeout_s=kw.pop("connect_timeout_s", 10.0), **kw)
        request.addfinalizer(backend.close)
        return backend

    return make


class RawPeer:
    """A bare DEALER that sends hand-made frames and reads the server's answer (with a timeout)."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 5000)
        self.sock.connect(address)

    def ask(self, frame: bytes) -> wire.Message:
        self.sock.send(frame)
        return wire.unpack(KEY, self.sock.recv())

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def raw(request):
    def make(address: str) -> RawPeer:
        peer = RawPeer(address)
        request.addfinalizer(peer.close)
        return peer

    return make


def infer_frame(seq: int, client: str, session: str, req: int = 0, state=None) -> bytes:
    body = {"obs": {"state": np.zeros(2, np.float32) if state is None else state}, "tick": 0, "mark": 0, "req": req,
            "delay": 0, "prefix": None}
    return wire.pack(KEY, "infer", body, seq=seq, client=client, session=session)


def test_round_trip_with_a_scripted_policy(serve, connect):
    server = serve()
    backend = connect(server)
    assert isinstance(backend, InferenceBackend) and backend.info["policy"] == "counting"
    prefix = ChunkPrefix(np.ones((3, DA), np.float32), d=1, s=2, hold=np.zeros(DA, np.float32))
    backend.submit(ChunkRequest(obs(7.0), tick=12, mark=10, seq=4, delay=1, prefix=prefix))
    assert backend.pending == 1
    (result,) = wait_results(backend)
    assert result.request.seq == 4 and result.chunk.shape == (T, DA)
    assert result.chunk[:, 0].tolist() == [1] * T and result.chunk[:, 1].tolist() == [7.0] * T
    assert result.t_request <= result.t_infer_start <= result.t_infer_end <= result.t_delivered
    seen = server.served.requests[-1]  # what the policy got: the request, rebuilt field by field
    assert (seen.tick, seen.mark, seen.seq, seen.delay) == (12, 10, 4, 1)
    assert seen.prefix.actions.tolist() == [[1, 1]] * 3 and (seen.prefix.d, seen.prefix.s) == (1, 2)
    assert backend.pending == 0 and backend.poll() == []
    assert server.counts["chunks"] == 1 and server.counts["resets"] == 1


def test_results_come_in_request_order_with_server_timing(serve, connect):
    backend = connect(serve(CountingPolicy(delay_s=0.02)))
    for seq in range(3):
        backend.submit(ChunkRequest(obs(seq), tick=seq, mark=seq, seq=seq))
    results = wait_results(backend, 3)
    assert [r.request.seq for r in results] == [0, 1, 2]
    assert [r.chunk[0, 0] for r in results] == [1, 2, 3]
    for r in results:  # the scripted 20 ms of inference are accounted as inference, not as network
        assert r.t_infer_end - r.t_infer_start >= 15e6


def test_two_clients_keep_separate_state_and_reset_restarts_one(serve, connect):
    server = serve()
    a, b = connect(server), connect(server)
    for seq in range(3):
        a.submit(ChunkRequest(obs(1.0), tick=seq, mark=seq, seq=seq))
        wait_results(a)
    b.submit(ChunkRequest(obs(2.0), tick=0, mark=0, seq=0))
    (rb,) = wait_results(b)
    assert rb.chunk[0].tolist() == [1.0, 2.0]  # b's first call, whatever a did
    a.reset(seed=3)
    a.submit(ChunkRequest(obs(1.0), tick=0, mark=0, seq=10))  # goes out behind the reset, no poll in between
    deadline = time.monotonic() + 10
    while server.counts["chunks"] < 5:
        assert time.monotonic() < deadline, server.counts
        time.sleep(0.005)
    (ra,) = wait_results(a)
    assert ra.chunk[0].tolist() == [1.0, 1.0]
    b.submit(ChunkRequest(obs(2.0), tick=1, mark=1, seq=1))
    assert wait_results(b)[0].chunk[0].tolist() == [2.0, 2.0]
    assert server.counts["resets"] == 3


def test_tampered_replayed_stale_and_foreign_frames_get_reason_codes(serve, connect, raw):
    server = serve()
    peer = raw(server.address)
    hello = peer.ask(wire.pack(KEY, "reset", {"task": None, "seed": None}, seq=1, client="robot-a"))
    assert hello.kind == "ready" and hello.body["ack"] == 1 and hello.session == server.session
    good = infer_frame(2, "robot-a", server.session)
    assert peer.ask(good).kind == "chunk"
    answer = peer.ask(good)  # the same frame again
    assert answer.kind == "error" and answer.body["reason"] == "replay" and answer.body["req"] == 0
    flipped = bytearray(infer_frame(3, "robot-a", server.session))
    flipped[len(flipped) // 2] ^= 0x10
    assert peer.ask(bytes(flipped)).body["reason"] == "bad_mac"
    flipped = bytearray(infer_frame(3, "robot-a", server.session))
    flipped[-1] ^= 0x01
    assert peer.ask(bytes(flipped)).body["reason"] == "bad_mac"
    assert peer.ask(infer_frame(4, "robot-a", "0" * 16)).body["reason"] == "session"
    assert peer.ask(infer_frame(5, "robot-b", server.session)).body["reason"] == "unknown_client"
    other = wire.pack(KEY, "reset", {"task": None, "seed": None}, seq=6, client="robot-a", version=wire.VERSION + 1)
    answer = peer.ask(other)
    assert answer.body["reason"] == "version" and f"speaks version {wire.VERSION}" in answer.body["detail"]
    assert peer.ask(b"GET / HTTP/1.1\r\nHost: robot\r\nAccept: */*\r\n\r\n").body["reason"] == "magic"
    fake_reply = wire.pack(KEY, "ready", {"ack": 1, "info": {}, "max_frame": 1}, seq=7, client="robot-a")
    assert peer.ask(fake_reply).body["reason"] == "unexpected_kind"
    assert peer.ask(infer_frame(8, "robot-a", server.session)).kind == "chunk"  # still serving robot-a
    for reason in ("replay", "bad_mac", "session", "unknown_client", "version", "magic", "unexpected_kind"):
        assert server.counts[reason] >= 1


def test_a_raising_policy_gives_a_reason_code_not_a_traceback(serve, connect, raw):
    server = serve()
    peer = raw(server.address)
    peer.ask(wire.pack(KEY, "reset", {"task": None, "seed": None}, seq=1, client="c"))
    answer = peer.ask(infer_frame(2, "c", server.session, state=np.zeros(2, np.float64)))
    assert answer.body == {"reason": "policy_error", "detail": "ValueError", "req": 0}  # no message, no traceback
    backend = connect(server)
    backend.submit(ChunkRequest({"state": np.zeros(2, np.float64)}, tick=0, mark=0, seq=0))
    with pytest.raises(RuntimeError, match=r"refused request 0: policy_error \(ValueError\)"):
        wait_results(backend)
    backend.submit(ChunkRequest({"image": np.zeros(2, np.float32)}, tick=1, mark=1, seq=1))
    with pytest.raises(RuntimeError, match=r"refused request 1: missing_keys \(the observation lacks \['state'\]\)"):
        wait_results(backend)


def test_object_dtypes_are_never_sent(serve, connect):
    backend = connect(serve())
    with pytest.raises(wire.WireError, match="dtype object"):
        backend.submit(ChunkRequest({"state": np.array([None, 1], dtype=object)}, tick=0, mark=0, seq=0))
    assert backend.pending == 0


def test_oversize_frames_are_refused_and_the_server_keeps_serving(serve, connect, raw):
    server = serve(max_frame=4096)
    backend = connect(server)
    with pytest.raises(UserError, match=r"exceeds the policy server's maximum frame size of 4096 bytes"):
        backend.submit(ChunkRequest({"state": np.zeros(2000, np.float32)}, tick=0, mark=0, seq=0))
    assert backend.pending == 0
    peer = raw(server.address)  # a peer that sends one anyway: ZeroMQ drops it (MAXMSGSIZE) before it is buffered
    peer.sock.send(b"x" * 10_000)
    peer.sock.setsockopt(zmq.RCVTIMEO, 300)
    with pytest.raises(zmq.Again):
        peer.sock.recv()
    backend.submit(ChunkRequest(obs(3.0), tick=0, mark=0, seq=1))
    assert wait_results(backend)[0].chunk[0, 1] == 3.0


def test_bind_is_loopback_unless_allow_remote():
    assert check_bind_host("127.0.0.1", False) == "127.0.0.1"
    assert check_bind_host("::1", False) == "::1"
    assert check_bind_host("localhost", False) == "127.0.0.1"
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(UserError, match=f"--host {host} is not a loopback address.*--allow-remote"):
            check_bind_host(host, False)
        assert check_bind_host(host, True) == host
    with pytest.raises(UserError, match="not an IP address"):
        check_bind_host("robot.example.com", True)
    with pytest.raises(UserError, match="not a loopback address"):
        PolicyServer(CountingPolicy(), KEY, "0.0.0.0", 0)


def test_wrong_key_and_no_server_are_one_sentence_errors(serve):
    server = serve()
    with pytest.raises(CannotCompleteError, match="different key files"):
        ServerBackend(server.address, key=bytes(32), connect_timeout_s=5)
    port = server.port
    server.stop()
    t0 = time.monotonic()
    with pytest.raises(CannotCompleteError, match=rf"no answer from a policy server at tcp://127.0.0.1:{port} within"):
        ServerBackend(f"127.0.0.1:{port}", key=KEY, connect_timeout_s=0.5, timeout_s=0.2)
    assert time.monotonic() - t0 < 3


def served_once_then_stopped(serve, connect) -> tuple[PolicyServer, ServerBackend]:
    first = serve()
    backend = connect(first, timeout_s=0.3, retries=20)
    backend.submit(ChunkRequest(obs(1.0), tick=0, mark=0, seq=0))
    wait_results(backend)
    first.stop()
    return first, backend


def test_reconnects_after_a_server_restart(serve, connect):
    first, backend = served_once_then_stopped(serve, connect)
    # Between requests: the socket reconnects by itself, the new server says "session", the client resets.
    second = serve(port=first.port)
    assert second.session != first.session
    backend.submit(ChunkRequest(obs(2.0), tick=1, mark=1, seq=1))
    (r,) = wait_results(backend)
    assert r.chunk[0].tolist() == [1.0, 2.0] and second.counts["resets"] == 1 and second.counts["session"] == 1
    assert backend.counts["reconnects"] == 0, backend.counts
    # Mid-request: the server dies holding it; the client times out, makes a new socket and sends again.
    second.stop()
    ctx = zmq.Context()
    sink = ctx.socket(zmq.ROUTER)  # takes the frame and never answers
    sink.setsockopt(zmq.LINGER, 0)
    sink.setsockopt(zmq.RCVTIMEO, 5000)
    try:
        sink.bind(first.address)
        backend.submit(ChunkRequest(obs(3.0), tick=2, mark=2, seq=2))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sink.poll(10) == 0:
            backend.poll()
        assert len(sink.recv_multipart()) == 2
    finally:
        sink.close(0)
        ctx.term()
    serve(port=first.port)
    (r,) = wait_results(backend)
    assert r.request.seq == 2 and r.chunk[0].tolist() == [1.0, 3.0] and backend.counts["reconnects"] >= 1


def test_an_episode_reset_across_a_server_restart_converges(serve, connect):
    first, backend = served_once_then_stopped(serve, connect)
    second = serve(port=first.port)
    backend.reset(seed=1)  # sent on the old session's socket: the new server answers with its own session
    backend.submit(ChunkRequest(obs(4.0), tick=0, mark=0, seq=1))
    (r,) = wait_results(backend)
    assert r.request.seq == 1 and r.chunk[0].tolist() == [1.0, 4.0] and second.counts["chunks"] == 1


def test_retries_are_bounded_when_the_server_stays_away(serve, connect):
    server = serve()
    backend = connect(server, timeout_s=0.1, retries=2)
    server.stop()
    backend.submit(ChunkRequest(obs(), tick=0, mark=0, seq=0))
    t0 = time.monotonic()
    with pytest.raises(CannotCompleteError, match="did not answer 3 times in a row"):
        wait_results(backend, timeout_s=5)
    assert time.monotonic() - t0 < 2 and backend.counts["reconnects"] == 2


# ---------------------------------------------------------------- a tiny trained policy, in a thread and via the CLI

TINY_DP = ["policy=diffusion", "model.down_dims=[16,32]", "model.vision_backbone=small", "model.image_feature_dim=8",
           "model.spatial_softmax_num_keypoints=4", "model.diffusion_step_embed_dim=16", "model.horizon=8",
           "model.n_action_steps=4", "model.crop_shape=[12,12]", "model.num_inference_steps=2", "train.steps=2",
           "train.batch_size=8", "train.val_ratio=0", "train.val_every=0", "train.device=cpu", "train.log_every=1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A diffusion policy trained for 2 steps on the dot store of tests/policies (16x16 camera + 2-D state)."""
    import torch

    from robolearn.experiment import build_config
    from robolearn.train.run import train_policy
    from tests.policies.conftest import write_dot_store

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve")
    store = write_dot_store(root / "dot.zarr", episodes=3, length=12)
    train_policy(build_config(TINY_DP), str(store), root / "run", progress=False)
    return root / "run"


def stacked_obs(rng, To: int = 2) -> dict[str, np.ndarray]:
    """What the deploy loop puts in a request: each key's last To observations stacked."""
    return {"state": rng.uniform(0, 1, (To, 2)).astype(np.float32),
            "images/front": rng.integers(0, 255, (To, 16, 16, 3), dtype=np.uint8)}


def test_a_trained_policy_served_gives_the_in_process_chunk(tiny_run, serve, connect):
    from robolearn.policies import load
    from robolearn.runtime.chunk_policy import ChunkPolicyAdapter
    from robolearn.runtime.server import TorchServedPolicy

    policy = load(tiny_run)
    server = serve(TorchServedPolicy(policy))
    a, b = connect(server, seed=5), connect(server, seed=5)
    assert a.info["input_keys"] == ["state", "images/front"] and a.info["action_dim"] == 2
    local = ChunkPolicyAdapter(policy)
    local.reset(5)
    rng = np.random.default_rng(0)
    for seq in range(2):
        request = ChunkRequest(stacked_obs(rng), tick=seq, mark=seq, seq=seq)
        a.submit(request)
        (remote,) = wait_results(a, timeout_s=30)
        expected = local(request)
        assert remote.chunk.shape == (8, 2) and remote.chunk.dtype == np.float32
        assert np.array_equal(remote.chunk, expected)
    b.submit(ChunkRequest(stacked_obs(np.random.default_rng(0)), tick=0, mark=0, seq=0))
    (first_of_b,) = wait_results(b, timeout_s=30)  # b's generator is its own: it repeats a's first chunk
    local.reset(5)
    assert np.array_equal(first_of_b.chunk, local(ChunkRequest(stacked_obs(np.random.default_rng(0)), 0, 0)))


def test_serve_refuses_a_remote_host_before_loading_anything(tmp_path):
    from typer.testing import CliRunner

    from robolearn.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--checkpoint", str(tmp_path / "absent"), "--host", "0.0.0.0",
                                      "--key-file", str(tmp_path / "k")])
    assert result.exit_code == 2
    assert "--host 0.0.0.0 is not a loopback address" in result.output and "--allow-remote" in result.output
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("args,msg", [
    (["--rtc-vjp-steps", "-2"], "--rtc-vjp-steps -2 is not accepted; use an integer >= 0"),
    (["--rtc-vjp-steps", "some"], "--rtc-vjp-steps 'some' is not accepted"),
    (["--max-guidance", "-1"], "--max-guidance -1.0 is not accepted; use a finite number > 0"),
])
def test_serve_refuses_bad_rtc_guidance_before_loading_anything(tmp_path, args, msg):
    from typer.testing import CliRunner

    from robolearn.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--checkpoint", str(tmp_path / "absent"), "--key-file",
                                      str(tmp_path / "k"), *args])
    assert result.exit_code == 2 and msg in result.output and "Traceback" not in result.output
    assert not (tmp_path / "k").exists()


def test_serve_command_in_a_subprocess_round_trip_and_sigterm(tiny_run, tmp_path, request):
    key_file = tmp_path / "conf" / "server.key"
    proc = subprocess.Popen([sys.executable, "-m", "robolearn.cli.main", "serve", "--checkpoint", str(tiny_run),
                             "--port", "0", "--key-file", str(key_file), "--max-guidance", "3",
                             "--rtc-vjp-steps", "all", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})

    def stop():
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    request.addfinalizer(stop)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    address = None
    while address is None:
        assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
        if select.select([proc.stderr], [], [], 1.0)[0]:
            line = proc.stderr.readline()
            lines.append(line)
            if " on tcp://" in line:
                address = line.split(" on ")[1].split()[0]
    assert any(f"created the policy server key file {key_file}" in line for line in lines)
    assert "RTC guidance max 3 with all VJP step(s)" in lines[-1]
    assert (key_file.stat().st_mode & 0o777) == 0o600
    backend = ServerBackend(address, key_file=str(key_file), seed=1, connect_timeout_s=30)
    request.addfinalizer(backend.close)
    backend.submit(ChunkRequest(stacked_obs(np.random.default_rng(1)), tick=0, mark=0, seq=0))
    (result,) = wait_results(backend, timeout_s=60)
    assert result.chunk.shape == (8, 2) and np.isfinite(result.chunk).all()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["chunks"] == 1 and summary["resets"] == 1 and summary["address"] == address
    assert summary["rtc_guidance"] == {"max_guidance": 3.0, "vjp_steps": None}
