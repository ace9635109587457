"""The process backend: the policy runs in a child process on its own cores, fed through a socket pair.

The child is a fresh interpreter (``python -m robolearn.runtime.process_worker``; the same clean start as
multiprocessing's spawn, without spawn's pickled bootstrap). It builds its policy itself from a factory named
the way entry points name one, ``"package.module:function"`` with JSON keyword arguments (for a checkpoint:
its path and the load options, ``ProcessBackend.for_checkpoint``), warms it up, and only then says ``ready``.

Between the two, on one ``AF_UNIX`` stream socket: first a bootstrap (``u32 LE length | JSON``: the factory,
its arguments, the cores, the thread count, ``sys.path`` and a fresh HMAC key), then ``robolearn.runtime.wire``
frames, each preceded by its ``u32 LE`` length -- the policy server's protocol (``reset`` -> ``ready``,
``infer`` -> ``chunk`` | ``error``): msgpack with raw arrays, never pickle. Stamps: the child sends each chunk
with ``t`` = inference end and ``infer_ns``; ``CLOCK_MONOTONIC`` is one clock for every process on the
machine, so ``ChunkResult``'s stamps compare directly with the loop's ``time.monotonic_ns()``.

- ``submit`` never blocks: the socket is non-blocking; what the socket does not take at once waits in a
  buffer that ``submit`` and ``poll`` keep flushing.
- ``poll`` never blocks: it reads what arrived. An exception in the policy (an ``error`` frame) or a dead
  child (end of stream; its exit code or signal) is raised there as a ``RuntimeError`` naming it.
- ``reset(seed, task)``: a new episode: the child restarts its policy state; chunks of the old episode that
  are still on the way are dropped (everything before the ``ready`` answering the reset).
- ``close()``: closes the socket (the child exits at end of stream), waits ``timeout`` s, then kills the
  child by its pid. Only this backend's own child is ever signalled.

Example::

    backend = ProcessBackend.for_checkpoint("runs/push", compile=True, cpus={1})   # returns once warm
    backend.reset(seed=0)
    backend.submit(ChunkRequest(obs, tick=12, mark=10, seq=0))     # returns at once
    results = backend.poll()                                      # [] until the chunk is there
    backend.close()
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import OrderedDict
from typing import Any, Protocol

import numpy as np

from robolearn.errors import CannotCompleteError, InvalidValueError
from robolearn.runtime import wire
from robolearn.runtime.backends import ChunkPolicy, ChunkRequest, ChunkResult, delivered
from robolearn.runtime.rt import thread_env
from robolearn.runtime.wire import ReplayWindow, WireError

__all__ = ["CHECKPOINT_FACTORY", "LENGTH", "ProcessBackend", "ProcessPolicy"]

LENGTH = struct.Struct("<I")
"""The length before every bootstrap and frame on the socket."""
CHECKPOINT_FACTORY = "robolearn.runtime.process_worker:checkpoint_policy"
WORKER_MODULE = "robolearn.runtime.process_worker"


class ProcessPolicy(Protocol):
    """What a factory returns in the child: the served policy (``robolearn.runtime.server.ServedPolicy``)
    plus a request to warm it up with."""

    info: dict[str, Any]
    """Sent with ``ready`` (msgpack types only)."""

    def new_client(self, task: str | None, seed: int | None) -> ChunkPolicy:
        """The chunk function holding one episode's state (history, noise seeded by ``seed``)."""

    def example_request(self) -> ChunkRequest:
        """A request of the right keys, shapes and dtypes (e.g. zeros) for the warm-up."""


def _check_factory(factory: str) -> None:
    module, _, name = factory.partition(":")
    if not (module and name and all(p.isidentifier() for p in [*module.split("."), name])):
        raise InvalidValueError(f"process backend factory {factory!r} is not 'package.module:function'")


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is not answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ProcessBackend:
    """An ``InferenceBackend`` whose policy runs in a child process (module doc).

    Args:
        factory: ``"package.module:function"``, imported and called in the child with ``kwargs``; returns a
            ``ProcessPolicy``.
        kwargs: JSON-serialisable keyword arguments for the factory.
        task, seed: the first episode's (``reset`` changes them).
        cpus: cores the child may run on (None: any).
        threads: the child's native thread pools (OMP/MKL/OpenBLAS; torch's intra-op threads).
        warmup: requests the child runs before it says ready.
        ready_timeout_s: how long the constructor waits for ``ready`` (loading + compiling + warm-up).
        max_frame: largest frame either side accepts.
    """

    def __init__(self, factory: str, kwargs: dict[str, Any] | None = None, *, task: str | None = None,
                 seed: int | None = None, cpus: set[int] | None = None, threads: int = 1, warmup: int = 2,
                 ready_timeout_s: float = 900.0, max_frame: int = wire.DEFAULT_MAX_FRAME,
                 env: dict[str, str] | None = None) -> None:
        _check_factory(factory)
        self.factory = factory
        self.cpus = set(cpus) if cpus else None
        self.max_frame = int(max_frame)
        self._key = secrets.token_bytes(wire.KEY_BYTES)
        self._seq = 0
        self._window = ReplayWindow()
        self._awaiting: int | None = 0
        """Seq of the reset whose ``ready`` has not come (0: the bootstrap's)."""
        self._open: OrderedDict[int, int] = OrderedDict()  # request seq -> t_request
        self._requests: dict[int, ChunkRequest] = {}
        self._raw: list[tuple[ChunkRequest, np.ndarray, int, int, int]] = []
        self._out = bytearray()
        self._in = bytearray()
        self._failed: str | None = None
        self._closed = False
        self.info: dict[str, Any] = {}
        """The policy's description, from ``ready`` (with the child's load/compile/warm-up times)."""
        self.ready_s: float | None = None
        """Seconds from start to ``ready``."""
        self.counts: dict[str, int] = {"dropped_stale": 0}
        boot = {"key": self._key.hex(), "factory": factory, "kwargs": kwargs or {}, "task": task, "seed": seed,
                "cpus": sorted(self.cpus) if self.cpus else None, "threads": int(threads), "warmup": int(warmup),
                "max_frame": self.max_frame, "sys_path": [p for p in sys.path if p]}
        try:
            blob = json.dumps(boot).encode()
        except TypeError as e:
            raise InvalidValueError(f"process backend: the factory's kwargs must be JSON values ({e})") from None
        t0 = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, env=thread_env(threads, env), close_fds=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child holds the only other end: its death is our end of stream
        self.pid = self.proc.pid
        self._sock = ours
        try:
            try:
                ours.sendall(LENGTH.pack(len(blob)) + blob)
            except OSError:
                self._died(starting=True)
            ours.setblocking(False)
            deadline = t0 + ready_timeout_s
            while self._awaiting is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CannotCompleteError(f"the inference process (pid {self.pid}) was not ready within "
                                              f"{ready_timeout_s:g} s (loading, compiling and warming up "
                                              f"{factory}); raise ready_timeout_s or deploy with --no-compile")
                select.select([ours], [], [], min(left, 0.5))
                self._receive(starting=True)
            self.ready_s = time.monotonic() - t0
        except BaseException:
            self.close()
            raise

    @classmethod
    def for_checkpoint(cls, checkpoint: str | os.PathLike, *, compile: bool = True, device: str = "cpu",
                       max_guidance: float | None = None, vjp_steps: int | None = 0, threads: int = 1,
                       inference_steps: int | None = None, **kwargs: Any) -> ProcessBackend:
        """The policy of a checkpoint (EMA weights when saved), loaded by the child and compiled there when
        ``compile`` (checked against eager; inductor's on-disk cache makes a second start fast);
        ``inference_steps``: `robolearn.policies.load`'s."""
        return cls(CHECKPOINT_FACTORY, {"checkpoint": os.fspath(checkpoint), "compile": bool(compile),
                                        "device": device, "max_guidance": max_guidance, "vjp_steps": vjp_steps,
                                        "threads": int(threads), "inference_steps": inference_steps},
                   threads=threads, **kwargs)

    # -- InferenceBackend

    def submit(self, request: ChunkRequest) -> None:
        self._raise_if_failed()
        if self._closed:
            raise RuntimeError("ProcessBackend: submit after close()")
        t_request = time.monotonic_ns()
        self._send("infer", wire.infer_body(request))
        self._open[request.seq] = t_request
        self._requests[request.seq] = request

    def poll(self) -> list[ChunkResult]:
        if self._closed:
            return []
        self._raise_if_failed()
        self._flush()
        self._receive()
        self._raise_if_failed()
        return delivered(self._raw, time.monotonic_ns()) if self._raw else []

    @property
    def pending(self) -> int:
        return len(self._open) + len(self._raw)

    def reset(self, seed: int | None = None, task: str | None = None) -> None:
        """A new episode (module doc); requests may follow at once."""
        self._raise_if_failed()
        self._open.clear()
        self._requests.clear()
        self._raw.clear()
        self._awaiting = self._send("reset", {"task": task, "seed": seed})

    def close(self, timeout: float = 5.0) -> None:
        """End the child: end of stream, ``timeout`` s to exit, then SIGKILL to its pid; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.close()
        finally:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # this Popen's own pid, nothing else
                self.proc.wait(timeout)

    def __enter__(self) -> ProcessBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the socket

    def _send(self, kind: str, body: dict[str, Any]) -> int:
        self._seq += 1
        frame = wire.pack(self._key, kind, body, seq=self._seq)
        if len(frame) > self.max_frame:
            raise InvalidValueError(f"a {kind!r} frame of {len(frame)} bytes exceeds the process backend's "
                                    f"maximum frame size of {self.max_frame} bytes")
        self._out += LENGTH.pack(len(frame))
        self._out += frame
        self._flush()
        return self._seq

    def _flush(self) -> None:
        while self._out:
            try:
                n = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return  # the child is busy; the rest goes with the next submit or poll
            except OSError:
                self._died()  # broken pipe: the child is gone
                return
            del self._out[:n]

    def _receive(self, starting: bool = False) -> None:
        ended = False
        while True:
            try:
                data = self._sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                ended = True
                break
            self._in += data
        self._parse(starting)  # what it said before it went (its error, its last chunks) comes first
        if ended:
            self._died(starting)

    def _parse(self, starting: bool) -> None:
        while len(self._in) >= LENGTH.size:
            (n,) = LENGTH.unpack_from(self._in)
            if n > self.max_frame:
                self._fail(f"the inference process (pid {self.pid}) sent a frame of {n} bytes, over the maximum "
                           f"of {self.max_frame}")
                return
            if len(self._in) < LENGTH.size + n:
                break
            frame = bytes(self._in[LENGTH.size:LENGTH.size + n])
            del self._in[:LENGTH.size + n]
            self._on_frame(frame, starting)

    def _on_frame(self, frame: bytes, starting: bool) -> None:
        try:
            msg = wire.unpack(self._key, frame, self.max_frame)
            self._window.check(msg.seq)
        except WireError as e:
            self._fail(f"the inference process (pid {self.pid}) sent a frame that was refused: {e}")
            return
        body = msg.body
        if msg.kind == "ready":
            if body["ack"] == self._awaiting:
                self._awaiting = None
                if body["ack"] == 0:
                    self.info = body["info"]
            return
        if msg.kind == "error":
            what = "could not start its policy" if starting else f"failed on request {body['req']}"
            self._fail(f"the inference process (pid {self.pid}) {what}: {body['detail']}")
            if starting:
                raise CannotCompleteError(f"ProcessBackend: {self._failed}")
            return
        if msg.kind != "chunk" or self._awaiting is not None:
            self.counts["dropped_stale"] += 1  # answers to the episode before the last reset
            return
        t_request = self._open.pop(body["req"], None)
        request = self._requests.pop(body["req"], None)
        if t_request is None or request is None:
            self.counts["dropped_stale"] += 1
            return
        chunk = body["chunk"]
        if chunk.ndim != 2 or len(chunk) == 0:
            self._fail(f"the inference process sent a chunk of shape {chunk.shape} for request {body['req']}; "
                       "expected (T, Da)")
            return
        t_end = msg.t_ns
        self._raw.append((request, chunk, t_request, t_end - body["infer_ns"], t_end))

    def _died(self, starting: bool = False) -> None:
        code = None
        deadline = time.monotonic() + 1.0
        while code is None and time.monotonic() < deadline:  # its socket closed as it exited: reap it
            code = self.proc.poll()
            if code is None:
                time.sleep(0.01)
        self._fail(f"the inference process (pid {self.pid}) {_describe_exit(code)} (its stderr is above)")
        if starting:
            raise CannotCompleteError(f"ProcessBackend: {self._failed} while loading {self.factory}")

    def _fail(self, why: str) -> None:
        if self._failed is None:
            self._failed = why

    def _raise_if_failed(self) -> None:
        if self._failed is not None:
            raise RuntimeError(f"ProcessBackend: {self._failed}")
