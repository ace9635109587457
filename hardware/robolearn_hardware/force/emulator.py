"""A Net F/T sensor on loopback: RDT over UDP at a configured rate, ``/netftapi2.xml`` over HTTP, run in its
own process (``python -m robolearn_hardware.force.emulator``) with a JSON control channel on stdin/stdout.

It speaks the real protocol (`robolearn_hardware.force.rdt`): a start request (command 0x0002, sample count
0 = until stopped) makes it send one 36-byte record per period to the requesting address, rdt_sequence
from 1 and counting every record it means to send, ft_sequence counting samples; a dropped record (fault
injection) still takes its rdt_sequence, which is how a client sees a lost packet. A bias request (0x0042)
makes the present load zero; stop (0x0000) ends the stream.

Control commands (one JSON object a line; each answered with ``{"ok": true, ...}``):

```
{"cmd": "wrench", "value": [fx, fy, fz, tx, ty, tz]}     load in N / N m (before bias)
{"cmd": "faults", "drop": 0.01, "drop_sequences": [5, 6], "seed": 0}   drop records
{"cmd": "status", "value": 2147483648}                  status word of the records from now on
{"cmd": "stats"}                                        -> sent, dropped, behind, requests, ...
```

The child exits when its stdin closes; `robolearn_hardware.force.process.NetFTEmulator` starts it and
ends it by its pid if it does not.

Example::

    with NetFTEmulator(rate=1000, wrench=(0, 0, -9.81, 0, 0, 0)) as emu:
        sensor = NetFTSensor("127.0.0.1", port=emu.rdt_port, http_port=emu.http_port)
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import select
import socket
import sys
import threading
import time

import numpy as np

from .rdt import CMD_BIAS, CMD_RESET_LATCH, CMD_START_STREAM, CMD_STOP, Calibration, pack_record, parse_request

__all__ = ["NETFTAPI2_XML", "RdtServer", "main"]

NETFTAPI2_XML = """<?xml version="1.0" encoding="ISO-8859-1"?>
<netft><setserial>FT-EMU</setserial><cfgcpf>{cpf:.0f}</cfgcpf><cfgcpt>{cpt:.0f}</cfgcpt>
<scfgfu>{fu}</scfgfu><scfgtu>{tu}</scfgtu><comrdtrate>{rate:.0f}</comrdtrate></netft>"""

MAX_BEHIND_S = 0.05  # further behind than this (emulator descheduled), it skips samples instead of bursting


class RdtServer:
    """The sensor's state and its UDP/HTTP servers (runs in the emulator process)."""

    def __init__(self, host: str, port: int, http_port: int | None, rate: float, calibration: Calibration,
                 force_code: int = 2, torque_code: int = 3) -> None:
        self.rate, self.cal = float(rate), calibration
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.0)
        self.lock = threading.Lock()
        self.wrench = np.zeros(6)
        self.bias = np.zeros(6)
        self.status = 0
        self.drop_rate, self.drop_sequences, self.rng = 0.0, set(), random.Random(0)
        self.stats = dict(sent=0, dropped=0, behind=0, requests=[], bad_requests=0)
        self.client: tuple[str, int] | None = None
        self.remaining = 0          # records left of a counted request (0 = unlimited)
        self.rdt_sequence = 0
        self.ft_sequence = 0
        self.next_t = 0.0
        self.stop_event = threading.Event()
        self.http = None
        if http_port is not None:
            xml = NETFTAPI2_XML.format(cpf=calibration.counts_per_force, cpt=calibration.counts_per_torque,
                                       fu=force_code, tu=torque_code, rate=rate).encode()

            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):  # noqa: N802 - http.server's name
                    if self.path.split("?")[0] != "/netftapi2.xml":
                        self.send_error(404)
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    self.wfile.write(xml)

                def log_message(self, *args):
                    pass

            self.http = http.server.ThreadingHTTPServer((host, http_port), Handler)
            threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @property
    def ports(self) -> dict[str, int]:
        return {"rdt_port": self.sock.getsockname()[1], "http_port": self.http.server_address[1] if self.http else None}

    def handle_requests(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(64)
            except (BlockingIOError, InterruptedError):
                return
            try:
                command, samples = parse_request(data)
            except ValueError:
                self.stats["bad_requests"] += 1
                continue
            with self.lock:
                self.stats["requests"].append([command, samples])
                if command == CMD_START_STREAM:
                    self.client, self.remaining, self.rdt_sequence = addr, samples, 0
                    self.next_t = time.monotonic()
                elif command == CMD_STOP:
                    self.client = None
                elif command == CMD_BIAS:
                    self.bias = self.wrench.copy()
                elif command == CMD_RESET_LATCH:
                    self.status &= ~0x8000_0000

    def send_due(self) -> None:
        period = 1.0 / self.rate
        now = time.monotonic()
        with self.lock:
            if self.client is None:
                return
            if now - self.next_t > MAX_BEHIND_S:  # descheduled: a real sensor would not have stalled; skip
                skipped = int((now - self.next_t) / period)
                self.ft_sequence += skipped
                self.stats["behind"] += skipped
                self.next_t += skipped * period
            while self.next_t <= now and self.client is not None:
                self.next_t += period
                self.ft_sequence += 1
                self.rdt_sequence += 1
                seq = self.rdt_sequence
                if seq in self.drop_sequences or (self.drop_rate and self.rng.random() < self.drop_rate):
                    self.stats["dropped"] += 1
                else:
                    record = pack_record(seq, self.ft_sequence, self.status, self.cal.to_counts(self.wrench - self.bias))
                    try:
                        self.sock.sendto(record, self.client)
                        self.stats["sent"] += 1
                    except OSError:
                        self.stats["dropped"] += 1
                if self.remaining:
                    self.remaining -= 1
                    if self.remaining == 0:
                        self.client = None

    def run(self) -> None:
        """Serve until `stop_event`: sleep to the next sample (or a request), send what is due."""
        while not self.stop_event.is_set():
            self.handle_requests()
            self.send_due()
            with self.lock:
                wait = self.next_t - time.monotonic() if self.client is not None else 0.005
            if wait > 0:
                select.select([self.sock], [], [], min(wait, 0.005))

    def control(self, msg: dict) -> dict:
        cmd = msg.get("cmd")
        with self.lock:
            if cmd == "wrench":
                value = np.asarray(msg["value"], np.float64)
                if value.shape != (6,):
                    return {"ok": False, "error": f"wrench needs 6 values, got {msg['value']!r}"}
                self.wrench = value
            elif cmd == "faults":
                self.drop_rate = float(msg.get("drop", 0.0))
                self.drop_sequences = set(int(s) for s in msg.get("drop_sequences", []))
                self.rng = random.Random(int(msg.get("seed", 0)))
            elif cmd == "status":
                self.status = int(msg["value"])
            elif cmd == "stats":
                return {"ok": True, **self.stats, "rdt_sequence": self.rdt_sequence, "ft_sequence": self.ft_sequence,
                        "streaming": self.client is not None, "bias": self.bias.tolist()}
            else:
                return {"ok": False, "error": f"unknown command {cmd!r}"}
        return {"ok": True}

    def close(self) -> None:
        self.stop_event.set()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        self.sock.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Net F/T RDT emulator on loopback (control channel on stdin/stdout).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--http-port", type=int, default=0, help="port of /netftapi2.xml; -1: no HTTP server")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--cpf", type=float, default=1_000_000.0)
    p.add_argument("--cpt", type=float, default=1_000_000.0)
    p.add_argument("--wrench", default="0,0,0,0,0,0")
    p.add_argument("--drop", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if not a.host.startswith("127."):
        raise SystemExit(f"the emulator listens on loopback only; --host {a.host} is not 127.x.x.x")
    server = RdtServer(a.host, a.port, None if a.http_port < 0 else a.http_port, a.rate, Calibration(a.cpf, a.cpt))
    server.wrench = np.array([float(v) for v in a.wrench.split(",")])
    server.control({"cmd": "faults", "drop": a.drop, "seed": a.seed})
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    print(json.dumps(server.ports), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = server.control(json.loads(line))
        except Exception as e:  # noqa: BLE001 - answered, the emulator keeps serving
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)
    server.close()
    thread.join(2.0)


if __name__ == "__main__":
    main()
