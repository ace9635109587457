"""The child of ``ProcessBackend``: ``python -m robolearn.runtime.process_worker FD``.

It reads the bootstrap from the socket ``FD`` (``robolearn.runtime.process_backend`` module doc), pins itself
to its cores, builds the policy with the named factory, runs the warm-up requests, freezes the GC, says
``ready``, then serves ``reset`` and ``infer`` frames one at a time, in order, until the parent closes the
socket. A policy exception is printed here (stderr is the parent's) and answered with an ``error`` frame; the
child keeps serving. SIGINT is ignored: Ctrl-C goes to the parent, which closes the socket.

``checkpoint_policy`` is the factory for a trained checkpoint: ``robolearn.policies.load`` (compiled with
``compile``, where the policy supports it), behind ``TorchServedPolicy`` with a zero observation to warm up.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

from robolearn.runtime import wire
from robolearn.runtime.backends import ChunkRequest, _checked
from robolearn.runtime.process_backend import LENGTH, ProcessPolicy
from robolearn.runtime.server import TorchServedPolicy
from robolearn.runtime.wire import ReplayWindow, WireError

__all__ = ["CheckpointPolicy", "checkpoint_policy", "main"]


class CheckpointPolicy(TorchServedPolicy):
    """A loaded checkpoint served to the parent; ``info`` adds whether it was compiled and the load time."""

    def __init__(self, policy: Any, device: str, max_guidance: float | None, compiled: bool, load_s: float,
                 vjp_steps: int | None = 0) -> None:
        super().__init__(policy, device, max_guidance, vjp_steps)
        self.info.update({"compiled": compiled, "load_s": load_s})

    def example_request(self) -> ChunkRequest:
        from robolearn.policies.compile import dummy_observation

        obs = dummy_observation(self.policy)
        return ChunkRequest({k: obs[k][0].cpu().numpy() for k in self.policy.input_keys}, tick=0, mark=0)


def checkpoint_policy(checkpoint: str, compile: bool = True, device: str = "cpu", max_guidance: float | None = None,
                      vjp_steps: int | None = 0, threads: int = 1,
                      inference_steps: int | None = None) -> CheckpointPolicy:
    """The factory ``ProcessBackend.for_checkpoint`` names (module doc)."""
    import torch

    from robolearn.policies import load
    from robolearn.policies.compile import compile_if_supported

    torch.set_num_threads(threads)
    t0 = time.monotonic()
    policy = load(checkpoint, device=device, inference_steps=inference_steps)
    compiled = compile_if_supported(policy) if compile else False
    return CheckpointPolicy(policy, device, max_guidance, compiled, time.monotonic() - t0, vjp_steps)


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            return None
        buf += data
    return bytes(buf)


def _read(sock: socket.socket, max_frame: int) -> bytes | None:
    head = _read_exact(sock, LENGTH.size)
    if head is None:
        return None
    (n,) = LENGTH.unpack(head)
    if n > max_frame:
        raise WireError("too_large", f"a frame of {n} bytes, over the maximum of {max_frame}")
    return _read_exact(sock, n)


class _Link:
    def __init__(self, sock: socket.socket, key: bytes) -> None:
        self.sock, self.key, self.seq = sock, key, 0

    def send(self, kind: str, body: dict[str, Any], t_ns: int | None = None) -> None:
        self.seq += 1
        frame = wire.pack(self.key, kind, body, seq=self.seq, t_ns=t_ns)
        self.sock.sendall(LENGTH.pack(len(frame)) + frame)

    def error(self, e: BaseException, req: int = -1) -> None:
        traceback.print_exception(e, file=sys.stderr)
        self.send("error", {"reason": "policy_error", "detail": f"{type(e).__name__}: {e}"[:1000], "req": req})


def _start(boot: dict[str, Any]) -> tuple[ProcessPolicy, dict[str, Any]]:
    module, _, name = boot["factory"].partition(":")
    t0 = time.monotonic()
    served: ProcessPolicy = getattr(importlib.import_module(module), name)(**boot["kwargs"])
    t1 = time.monotonic()
    warm = served.new_client(boot["task"], None)
    example = served.example_request()
    for _ in range(boot["warmup"]):
        _checked(warm(example), example)
    t2 = time.monotonic()
    gc.collect()
    gc.freeze()
    info = {**served.info, "start_s": t1 - t0, "warmup_s": t2 - t1, "pid": os.getpid(),
            "cpus": sorted(os.sched_getaffinity(0))}
    return served, info


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    argv = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(argv[0]))
    try:
        return _serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the parent closed the socket while an answer was going out


def _serve(sock: socket.socket) -> int:
    head = _read_exact(sock, LENGTH.size)
    if head is None:
        return 0
    boot = json.loads(_read_exact(sock, LENGTH.unpack(head)[0]) or b"{}")
    if boot.get("cpus"):
        os.sched_setaffinity(0, boot["cpus"])
    sys.path[:0] = [p for p in boot["sys_path"] if p not in sys.path]
    link = _Link(sock, bytes.fromhex(boot["key"]))
    max_frame = int(boot["max_frame"])
    try:
        served, info = _start(boot)
        client = served.new_client(boot["task"], boot["seed"])
    except Exception as e:  # noqa: BLE001  (reported to the parent, which raises it)
        link.error(e)
        return 1
    link.send("ready", {"ack": 0, "info": info, "max_frame": max_frame})
    window = ReplayWindow()
    while True:
        frame = _read(sock, max_frame)
        if frame is None:
            return 0  # the parent closed the socket
        t_recv = time.monotonic_ns()
        msg = wire.unpack(link.key, frame, max_frame)  # a refused frame from our own parent is a bug: raise
        window.check(msg.seq)
        body = msg.body
        if msg.kind == "reset":
            try:
                client = served.new_client(body["task"], body["seed"])
            except Exception as e:  # noqa: BLE001
                link.error(e)
                continue
            link.send("ready", {"ack": msg.seq, "info": served.info, "max_frame": max_frame})
        elif msg.kind == "infer":
            request = wire.request_from_body(body)
            t_start = time.monotonic_ns()
            try:
                chunk = _checked(client(request), request)
            except Exception as e:  # noqa: BLE001
                link.error(e, request.seq)
                continue
            t_end = time.monotonic_ns()
            link.send("chunk", {"req": request.seq, "chunk": chunk, "queued_ns": t_start - t_recv,
                                "infer_ns": t_end - t_start, "server_ns": time.monotonic_ns() - t_recv}, t_ns=t_end)
        else:
            raise WireError("unexpected_kind", f"the inference process does not accept {msg.kind!r} frames")


if __name__ == "__main__":
    sys.exit(main())
