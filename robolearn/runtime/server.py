"""The policy server (ZeroMQ ROUTER) and its client, ``ServerBackend`` (DEALER), an ``InferenceBackend``.

A robot's control loop submits ``ChunkRequest``s and polls for ``ChunkResult``s exactly as with the
thread backend; the policy runs in another process or on another machine. Frames are ``robolearn.runtime.
wire`` frames: msgpack with raw arrays, HMAC-SHA256 on every frame, sequence numbers checked against a
replay window per peer, a maximum frame size, and short reason codes for every refusal (never a
traceback). Nothing uses pickle.

Protocol (client -> server / server -> client)::

    reset {task, seed}                    -> ready {ack: the reset's seq, info, max_frame}
    infer {obs, tick, mark, req, delay, prefix} -> chunk {req, chunk (T, Da), queued_ns, infer_ns, server_ns}
    anything refused                      -> error {reason, detail, req}

The server keeps one policy state per client id (a ``ChunkPolicy`` from ``ServedPolicy.new_client``:
observation history, sampling generator), so several robots can share a server; a reset replaces it.
The server runs one request at a time, in arrival order (one policy, one core: requests of several clients queue,
and each chunk reports its queueing time). It binds to loopback unless ``allow_remote``. Its ``session`` id changes with every start: a
client whose frames name an old session is told so and resends its reset.

``ServerBackend`` never blocks in ``submit``/``poll`` (only its constructor waits for the first ``ready``).
When the server does not answer within ``timeout_s`` it recreates its socket and resends its reset and
the requests still open, at most ``retries`` times in a row; then ``poll`` raises. Timing on the client's
monotonic clock: the server reports its queueing and inference times, the network time is split evenly.

Example::

    server = PolicyServer(TorchServedPolicy(load(run)), key, port=0).start()   # a thread
    backend = ServerBackend(server.address, key=key)
    backend.submit(ChunkRequest(obs, tick=0, mark=0))
    results = backend.poll()                                                   # [] until it arrives
    backend.close(); server.stop()
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zmq

from robolearn.errors import CannotCompleteError, InvalidValueError
from robolearn import net
from robolearn.runtime import wire
from robolearn.runtime.backends import ChunkPolicy, ChunkRequest, ChunkResult, _checked, delivered
from robolearn.runtime.wire import DEFAULT_MAX_FRAME, Message, ReplayWindow, WireError

__all__ = ["PolicyServer", "ServedPolicy", "ServerBackend", "TorchServedPolicy", "check_bind_host", "serve_checkpoint"]

log = logging.getLogger("robolearn.server")

DEFAULT_PORT = 5555
_CLIENT_KINDS = ("reset", "infer")
_RESYNC = ("session", "unknown_client")
"""Refusals that a reset answers (the server restarted, or forgot this client)."""


class ServedPolicy(Protocol):
    """What a server serves: its description and a fresh per-client state."""

    info: dict[str, Any]
    """Sent to each client in ``ready`` (msgpack types only); ``input_keys`` there are checked per request."""

    def new_client(self, task: str | None, seed: int | None) -> ChunkPolicy:
        """The chunk function holding one client's state (history, noise), reset for a new episode."""


class TorchServedPolicy:
    """A loaded `robolearn.policies.Policy` behind the server: one ``ChunkPolicyAdapter`` per client (its own
    sampling generator, seeded by the client's reset; the weights are shared).

    Requests carry what the deploy loop puts in them: each input key's last ``To`` observations stacked,
    ``(To, ...)`` (the history lives with the loop, which sees every tick; a server only sees the ticks that
    request), and for Real-Time Chunking the frozen prefix, which the adapter inpaints.
    """

    def __init__(self, policy: Any, device: str = "cpu", max_guidance: float | None = None,
                 vjp_steps: int | None = 0) -> None:
        if policy.make_action_source(device) is not None:
            raise InvalidValueError(f"the {type(policy).__name__} acts through its own action source (it runs at its "
                                    "own rates); the policy server serves chunking policies (diffusion, flow, pad, "
                                    "uwm)")
        from robolearn.policies.rtc import DEFAULT_MAX_GUIDANCE, DEFAULT_VJP_STEPS, check_guidance

        check_guidance(max_guidance, vjp_steps)
        if (max_guidance is not None or vjp_steps != DEFAULT_VJP_STEPS) and policy.rtc_variant != "guided":
            raise InvalidValueError(f"--max-guidance and --rtc-vjp-steps set inference-time RTC guidance; this "
                                    f"{type(policy).__name__} does not guide (RTC variant: {policy.rtc_variant}): "
                                    "drop them")
        self.policy = policy
        self.device = device
        self.max_guidance = DEFAULT_MAX_GUIDANCE if max_guidance is None else float(max_guidance)
        self.vjp_steps = vjp_steps  # RTC's VJP steps (robolearn.policies.rtc.Inpainting.vjp_steps)
        cfg = policy.config
        self.info = {"policy": type(policy).__name__, "n_obs_steps": int(cfg.n_obs_steps),
                     "n_action_steps": int(cfg.n_action_steps), "horizon": int(cfg.horizon),
                     "action_dim": int(policy.action_dim), "input_keys": list(policy.input_keys),
                     "uses_language": bool(policy.uses_language),
                     "inference_steps": getattr(cfg, "num_inference_steps", None),  # per chunk, as run
                     # how this server guides RTC prefixes (a deploy run records it; vjp_steps None: every step)
                     "rtc_guidance": ({"max_guidance": self.max_guidance, "vjp_steps": vjp_steps}
                                      if policy.rtc_variant == "guided" else None)}

    def new_client(self, task: str | None, seed: int | None) -> ChunkPolicy:
        from robolearn.runtime.chunk_policy import ChunkPolicyAdapter

        if self.policy.uses_language and not task:
            raise WireError("task_required", "this policy is language-conditioned: reset with the task")
        adapter = ChunkPolicyAdapter(self.policy, self.device, task, max_guidance=self.max_guidance,
                                     vjp_steps=self.vjp_steps)
        adapter.reset(seed)
        return adapter


def check_bind_host(host: str, allow_remote: bool) -> str:
    """The address to bind for ``host``; a host that is not loopback needs ``allow_remote`` (a UserError
    otherwise). ``localhost`` binds 127.0.0.1."""
    return net.check_bind_host(host, allow_remote, "the policy server", "frames are authenticated, not encrypted")


def _endpoint(host: str, port: int | str) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


@dataclass
class _Client:
    handler: ChunkPolicy
    window: ReplayWindow


class PolicyServer:
    """Serves chunks from ``served`` to any number of clients, one state per client id.

    Args:
        served: the policy (``TorchServedPolicy`` or any ``ServedPolicy``).
        key: the HMAC key (``wire.load_key``).
        host, port: where to bind (port 0: a free port, see ``port`` after construction).
        allow_remote: permit a host that is not loopback.
        max_frame: largest accepted frame in bytes (also ZeroMQ's MAXMSGSIZE: an oversize message drops the
            connection before it is buffered).
        max_clients: client states kept; the least recently used goes first.
    """

    def __init__(self, served: ServedPolicy, key: bytes, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 allow_remote: bool = False, max_frame: int = DEFAULT_MAX_FRAME, max_clients: int = 64,
                 replay_window: int = 4096, time_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.served = served
        self._key = key
        self.host = check_bind_host(host, allow_remote)
        self.max_frame = int(max_frame)
        self.max_clients = int(max_clients)
        self.replay_window = int(replay_window)
        self._time_ns = time_ns
        self.session = secrets.token_hex(8)
        self._seq = 0
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self.counts: dict[str, int] = {"frames": 0, "chunks": 0, "resets": 0}
        """Frames received, chunks served, resets, and refusals by reason code."""
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame)
        if ":" in self.host:
            self._sock.setsockopt(zmq.IPV6, 1)
        try:
            if int(port) == 0:
                self.port = self._sock.bind_to_random_port(_endpoint(self.host, "").rstrip(":"))
            else:
                self._sock.bind(_endpoint(self.host, port))
                self.port = int(port)
        except zmq.ZMQError as e:
            self._sock.close()
            self._ctx.term()
            raise CannotCompleteError(f"cannot listen on {_endpoint(self.host, port)}: {e}; pick another --port"
                                      ) from None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serving = False
        self._closed = False

    @property
    def address(self) -> str:
        return _endpoint(self.host, self.port)

    # -- running

    def serve(self, poll_ms: int = 50) -> None:
        """Serve until ``stop()`` (from another thread or a signal handler); closes the socket on return."""
        self._serving = True
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(poll_ms):
                    continue
                while not self._stop.is_set():
                    try:
                        parts = self._sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(parts)
        finally:
            self._close_socket()

    def start(self) -> PolicyServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve, name="robolearn-policy-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        elif not self._serving:
            self._close_socket()  # never served; a serve() running in this thread closes it on return

    def __enter__(self) -> PolicyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _close_socket(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close(0)
            self._ctx.term()

    # -- one frame

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def _send(self, identity: bytes, kind: str, body: dict, client: str) -> None:
        self._seq += 1
        frame = wire.pack(self._key, kind, body, seq=self._seq, client=client, session=self.session,
                          t_ns=self._time_ns())
        try:
            self._sock.send_multipart([identity, frame], zmq.NOBLOCK)
        except zmq.ZMQError:
            self._count("send_dropped")  # peer gone or its queue full: it times out and retries

    def _refuse(self, identity: bytes, err: WireError, client: str = "", req: int = -1) -> None:
        self._count(err.reason)
        log.debug("refused a frame from client %r: %s", client, err)
        self._send(identity, "error", {"reason": err.reason, "detail": err.detail[:200], "req": req}, client)

    def _handle(self, parts: list[bytes]) -> None:
        self.counts["frames"] += 1
        identity = parts[0]
        if len(parts) != 2:
            self._refuse(identity, WireError("malformed", f"expected one message part, got {len(parts) - 1}"))
            return
        t_recv = self._time_ns()
        try:
            msg = wire.unpack(self._key, parts[1], self.max_frame)
        except WireError as e:
            self._refuse(identity, e)
            return
        req = msg.body.get("req", -1) if msg.kind == "infer" else -1
        try:
            if msg.kind not in _CLIENT_KINDS or not msg.client:
                raise WireError("unexpected_kind", f"the server accepts {list(_CLIENT_KINDS)} frames with a client id")
            if msg.kind == "reset":
                self._reset(identity, msg)
            else:
                self._infer(identity, msg, t_recv)
        except WireError as e:
            self._refuse(identity, e, msg.client, req)
        except Exception:  # noqa: BLE001  (logged here; the peer only gets the reason code)
            log.exception("policy server: failed on a %r frame from client %r", msg.kind, msg.client)
            self._refuse(identity, WireError("internal", "the server failed on this frame"), msg.client, req)

    def _reset(self, identity: bytes, msg: Message) -> None:
        client = self._clients.get(msg.client)
        window = client.window if client is not None else ReplayWindow(self.replay_window)
        window.check(msg.seq)
        try:
            handler = self.served.new_client(msg.body["task"], msg.body["seed"])
        except WireError:
            raise
        except Exception:
            log.exception("policy server: new_client failed for client %r", msg.client)
            raise WireError("policy_error", "the policy could not start a client state") from None
        self._clients[msg.client] = _Client(handler, window)
        self._clients.move_to_end(msg.client)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        self.counts["resets"] += 1
        self._send(identity, "ready", {"ack": msg.seq, "info": self.served.info, "max_frame": self.max_frame},
                   msg.client)

    def _infer(self, identity: bytes, msg: Message, t_recv: int) -> None:
        if msg.session != self.session:
            raise WireError("session", "this frame names another server session; send a reset")
        client = self._clients.get(msg.client)
        if client is None:
            raise WireError("unknown_client", "no state for this client; send a reset")
        client.window.check(msg.seq)
        self._clients.move_to_end(msg.client)
        body = msg.body
        keys = self.served.info.get("input_keys") or []
        missing = [k for k in keys if k not in body["obs"]]
        if missing:
            raise WireError("missing_keys", f"the observation lacks {missing}"[:200])
        request = wire.request_from_body(body)
        t_start = self._time_ns()
        try:
            chunk = _checked(client.handler(request), request)
            if chunk.dtype.kind not in "fiu":
                raise ValueError(f"chunk dtype {chunk.dtype}")
        except Exception as e:
            log.exception("policy server: the policy raised on request %d of client %r", request.seq, msg.client)
            raise WireError("policy_error", type(e).__name__) from None
        t_end = self._time_ns()
        self.counts["chunks"] += 1
        self._send(identity, "chunk", {"req": request.seq, "chunk": chunk, "queued_ns": t_start - t_recv,
                                       "infer_ns": t_end - t_start, "server_ns": self._time_ns() - t_recv},
                   msg.client)


@dataclass
class _Open:
    request: ChunkRequest
    t_request: int
    t_sent: int | None = None
    """When it last went out; None: (re)send when the server is ready."""


@dataclass
class _Link:
    """One socket's life: what the client expects from the server on it."""

    session: str = ""
    window: ReplayWindow = field(default_factory=ReplayWindow)
    awaiting: int | None = None
    """Seq of the reset whose ``ready`` has not come yet; requests wait for it (a new socket, a new session)."""
    episode: int | None = None
    """Seq of an episode's reset on a live session: requests go out right behind it (frames arrive in order)."""


class ServerBackend:
    """An ``InferenceBackend`` whose policy runs in a ``PolicyServer`` (module doc).

    Args:
        address: ``tcp://host:port`` or ``host:port`` of the server.
        key: the HMAC key; or ``key_file`` (default ``wire.default_key_file()``, created if missing).
        task, seed: sent with each reset (a language-conditioned policy needs the task).
        timeout_s: no answer for this long while requests are open: recreate the socket and resend.
        retries: consecutive recreations before ``poll`` raises.
        connect_timeout_s: how long the constructor waits for the server's first ``ready``.
    """

    def __init__(self, address: str = f"127.0.0.1:{DEFAULT_PORT}", *, key: bytes | None = None,
                 key_file: str | None = None, task: str | None = None, seed: int | None = None,
                 timeout_s: float = 5.0, retries: int = 5, connect_timeout_s: float = 10.0,
                 max_frame: int = DEFAULT_MAX_FRAME, time_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.address = address if "://" in address else f"tcp://{address}"
        if key is None:
            key, _ = wire.load_key(key_file or wire.default_key_file())
        self._key = key
        self._key_file = key_file
        self.client_id = secrets.token_hex(16)
        self.task, self.seed = task, seed
        self.timeout_ns = int(timeout_s * 1e9)
        self.retries = int(retries)
        self.max_frame = int(max_frame)
        self._time_ns = time_ns
        self._ctx = zmq.Context()
        self._sock: zmq.Socket | None = None
        self._seq = 0
        self._link = _Link()
        self._open: OrderedDict[int, _Open] = OrderedDict()
        self._results: list[ChunkResult] = []
        self._raw: list[tuple[ChunkRequest, np.ndarray, int, int, int]] = []
        self._last_heard = 0
        self._tries = 0
        self._closed = False
        self.info: dict[str, Any] = {}
        """The served policy's description (from ``ready``)."""
        self.server_max_frame = self.max_frame
        self.counts: dict[str, int] = {"reconnects": 0, "ignored": 0}
        try:
            self._connect()
            deadline = time.monotonic() + connect_timeout_s
            while self._link.awaiting is not None:
                if time.monotonic() > deadline:
                    raise CannotCompleteError(
                        f"no answer from a policy server at {self.address} within {connect_timeout_s:g} s; start "
                        "one with `robolearn serve --checkpoint RUN` (same --port and --key-file)")
                if self._sock.poll(50):
                    self._drain()
                elif self._time_ns() - self._last_heard > self.timeout_ns:
                    self._connect()
        except BaseException:
            self.close()
            raise

    # -- InferenceBackend

    def submit(self, request: ChunkRequest) -> None:
        if self._closed:
            raise RuntimeError("ServerBackend: submit after close()")
        entry = _Open(request, self._time_ns())
        if not self._open:
            self._last_heard = entry.t_request  # the answer is due timeout_s from now
        self._open[request.seq] = entry
        if self._link.awaiting is None:
            self._send_request(entry)

    def poll(self) -> list[ChunkResult]:
        if self._closed:
            return []
        self._drain()
        if (self._open or self._link.awaiting is not None) and self._time_ns() - self._last_heard > self.timeout_ns:
            if self._tries >= self.retries:
                raise CannotCompleteError(
                    f"the policy server at {self.address} did not answer {self._tries + 1} times in a row "
                    f"({self.timeout_ns / 1e9:g} s each); is it running?")
            self._tries += 1
            self.counts["reconnects"] += 1
            self._connect()
        return delivered(self._raw, self._time_ns()) if self._raw else []

    @property
    def pending(self) -> int:
        return len(self._open) + len(self._raw)

    def reset(self, seed: int | None = None, task: str | None = None) -> None:
        """A new episode: the server restarts this client's state (its noise seeded by ``seed``); open
        requests and undelivered results are dropped. Requests may follow at once."""
        self.seed = seed
        if task is not None:
            self.task = task
        self._open.clear()
        self._raw.clear()
        if self._link.session and self._link.awaiting is None:
            self._link.episode = self._send("reset", {"task": self.task, "seed": self.seed})
        else:
            self._send_reset()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sock is not None:
            self._sock.close(0)
        self._ctx.term()

    def __enter__(self) -> ServerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- frames

    def _connect(self) -> None:
        """A new socket (a lost frame or a restarted server leaves the old one stuck), then the reset."""
        if self._sock is not None:
            self._sock.close(0)
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame)
        self._sock.setsockopt(zmq.IPV6, 1)
        self._sock.connect(self.address)
        self._link = _Link()
        for entry in self._open.values():
            entry.t_sent = None
        self._send_reset()

    def _send(self, kind: str, body: dict) -> int:
        self._seq += 1
        frame = wire.pack(self._key, kind, body, seq=self._seq, client=self.client_id, session=self._link.session,
                          t_ns=self._time_ns())
        if len(frame) > self.server_max_frame:
            raise InvalidValueError(f"a {kind!r} frame of {len(frame)} bytes exceeds the policy server's maximum "
                                    f"frame size of {self.server_max_frame} bytes (serve --max-frame)")
        try:
            self._sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            self.counts["send_blocked"] = self.counts.get("send_blocked", 0) + 1  # retried after timeout_s
        return self._seq

    def _send_reset(self) -> None:
        self._link.awaiting = self._send("reset", {"task": self.task, "seed": self.seed})
        self._last_heard = self._time_ns()

    def _send_request(self, entry: _Open) -> None:
        entry.t_sent = self._time_ns()
        try:
            self._send("infer", wire.infer_body(entry.request))
        except (WireError, InvalidValueError):
            self._open.pop(entry.request.seq, None)  # cannot be sent as it is: not open
            raise

    def _drain(self) -> None:
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._on_frame(frame, self._time_ns())

    def _on_frame(self, frame: bytes, t_recv: int) -> None:
        try:
            msg = wire.unpack(self._key, frame, self.max_frame)
        except WireError as e:
            if e.reason in ("bad_mac", "version"):
                raise CannotCompleteError(self._mismatch(e.reason)) from None
            self.counts["ignored"] += 1
            return
        if msg.client not in (self.client_id, ""):
            self.counts["ignored"] += 1
            return
        link = self._link
        if msg.kind == "ready":
            ack = msg.body["ack"]
            if msg.client != self.client_id or ack not in (link.awaiting, link.episode):
                self.counts["ignored"] += 1  # the answer to an older reset
                return
            if ack == link.episode and msg.session == link.session:
                link.episode = None
                if self._fresh(msg.seq):
                    self._heard(t_recv)
                return
            # A new session: this socket's first, a resync, or a server that restarted under an episode reset
            # (requests sent with the old session are refused with "session", which resyncs).
            link.session, link.window, link.awaiting, link.episode = msg.session, ReplayWindow(), None, None
            link.window.check(msg.seq)
            self.info = msg.body["info"]
            self.server_max_frame = min(self.max_frame, msg.body["max_frame"])
            self._heard(t_recv)
            for entry in self._open.values():
                if entry.t_sent is None:
                    self._send_request(entry)
            return
        if msg.session != link.session:
            # A restarted server ("session") or the refusal of our reset comes from a session we do not know yet
            # (authenticated by the MAC; a replayed one costs one more reset at most).
            if msg.kind == "error" and (link.awaiting is not None or msg.body["reason"] in _RESYNC):
                self._heard(t_recv)
                self._on_error(msg.body)
            else:
                self.counts["ignored"] += 1  # from a server session this socket no longer talks to
            return
        if not self._fresh(msg.seq):
            return
        self._heard(t_recv)
        if msg.kind == "chunk":
            self._on_chunk(msg.body, t_recv)
        elif msg.kind == "error":
            self._on_error(msg.body)
        else:
            self.counts["ignored"] += 1

    def _fresh(self, seq: int) -> bool:
        """Whether the server's frame ``seq`` is new on this session (a replay is ignored and counted)."""
        try:
            self._link.window.check(seq)
        except WireError:
            self.counts["ignored"] += 1
            return False
        return True

    def _heard(self, t_recv: int) -> None:
        self._last_heard = t_recv
        self._tries = 0

    def _on_chunk(self, body: dict, t_recv: int) -> None:
        entry = self._open.pop(body["req"], None)
        if entry is None or entry.t_sent is None:
            self.counts["ignored"] += 1  # dropped by reset(), or answered twice
            return
        chunk = body["chunk"]
        if chunk.ndim != 2 or len(chunk) == 0:
            raise RuntimeError(f"ServerBackend: the server sent a chunk of shape {chunk.shape} for request "
                               f"{body['req']}; expected (T, Da)")
        net = max(0, (t_recv - entry.t_sent) - body["server_ns"])
        t_start = min(t_recv, entry.t_sent + net // 2 + max(0, body["queued_ns"]))
        t_end = min(t_recv, t_start + max(0, body["infer_ns"]))
        self._raw.append((entry.request, chunk, entry.t_request, t_start, t_end))

    def _on_error(self, body: dict) -> None:
        reason = body["reason"]
        if reason in _RESYNC:
            # The server restarted (or forgot us): one reset, then the open requests go again.
            for entry in self._open.values():
                entry.t_sent = None
            if self._link.awaiting is None:
                self._send_reset()
            return
        if reason in ("bad_mac", "version"):
            raise CannotCompleteError(self._mismatch(reason))
        req = body["req"]
        if req >= 0 and req not in self._open:
            self.counts["ignored"] += 1  # about a request already dropped
            return
        self._open.pop(req, None)
        what = f"request {req}" if req >= 0 else "a frame"
        raise RuntimeError(f"ServerBackend: the policy server refused {what}: {reason} ({body['detail']}): "
                           f"{wire.REASONS.get(reason, 'unknown reason')}")

    def _mismatch(self, reason: str) -> str:
        if reason == "version":
            return (f"the policy server at {self.address} speaks another wire version (this client: "
                    f"{wire.VERSION}); run the same robolearn version on both sides")
        where = self._key_file or wire.default_key_file()
        return (f"frames between this client and the policy server at {self.address} fail the HMAC check: the "
                f"two sides use different key files (this client: {where}); give both the same --key-file")



def serve_checkpoint(checkpoint: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                     key_file: str | Path | None = None, allow_remote: bool = False, device: str = "cpu",
                     max_guidance: float | None = None, vjp_steps: int | None = 0,
                     inference_steps: int | None = None, max_frame: int = DEFAULT_MAX_FRAME,
                     announce: Callable[[str], None] = print) -> dict[str, Any]:
    """``robolearn serve``: load the policy in ``checkpoint`` and serve it until SIGINT/SIGTERM; returns the
    counts. The bind address and RTC's guidance (``max_guidance``, ``vjp_steps``: `TorchServedPolicy`) are
    checked before anything loads; ``inference_steps``: `robolearn.policies.load`'s; ``announce`` gets the line with
    the address."""
    from robolearn.policies.rtc import check_guidance

    bind = check_bind_host(host, allow_remote)
    check_guidance(max_guidance, vjp_steps)
    if inference_steps is not None and inference_steps < 1:
        raise InvalidValueError(f"--inference-steps must be >= 1, got {inference_steps}")
    key_path = Path(key_file).expanduser() if key_file else wire.default_key_file()
    key, _ = wire.load_key(key_path)
    from robolearn.policies import load

    policy = load(checkpoint, device=device, inference_steps=inference_steps)
    served = TorchServedPolicy(policy, device, max_guidance, vjp_steps)
    server = PolicyServer(served, key, bind, port, allow_remote=allow_remote, max_frame=max_frame)
    guided = served.info["rtc_guidance"]
    how = "" if guided is None else (f", RTC guidance max {guided['max_guidance']:g} with "
                                     f"{'all' if guided['vjp_steps'] is None else guided['vjp_steps']} VJP step(s)")
    steps = "" if inference_steps is None else f", {inference_steps} inference steps"
    announce(f"robolearn serve: {served.info['policy']} policy from {checkpoint} on {server.address} "
             f"(key file {key_path}{how}{steps}); Ctrl-C stops")
    net.serve_until_stopped(server.serve, server.stop)
    return {"address": server.address, "checkpoint": str(checkpoint), "key_file": str(key_path),
            "rtc_guidance": guided, "inference_steps": served.info["inference_steps"], **server.counts}
