"""Serve an emulated bus on a pseudo-terminal, so a host opens it like /dev/ttyUSB0 with pyserial.

``PtyServer(bus).serve(stop)`` runs the event loop: bytes the host writes to the slave side go to the
bus; replies are written to the master side when their modelled wire time is due; every few milliseconds
the servos are advanced (so a bus watchdog trips with no traffic) and half-received frames expire. The
host's baud rate is read back from the pty (Linux TCGETS2), so a servo set to another baud rate stays
silent as on a real bus. An optional control stream (JSON lines, e.g. the process's stdin) lets a test
inject faults and inspect servo state; see ``Control``.
"""

from __future__ import annotations

import array
import errno
import fcntl
import heapq
import json
import os
import select
import time
import tty
from collections.abc import Callable

from .bus import ServoBusEmulator
from .faults import FaultConfig

__all__ = ["PtyServer", "Control"]

TICK_S = 0.002
_TCGETS2 = 0x802C542A


class PtyServer:
    def __init__(self, bus: ServoBusEmulator):
        self.bus = bus
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        self._queue: list[tuple[float, int, bytes]] = []
        self._seq = 0

    def port_baud(self) -> int | None:
        """The baud rate the host configured on the port (None where the platform cannot tell)."""
        buf = array.array("i", [0] * 64)
        try:
            fcntl.ioctl(self.slave, _TCGETS2, buf)
        except OSError:
            return None
        return buf[10] or None

    def serve(self, stop: Callable[[], bool], control: "Control | None" = None) -> None:
        """Run until ``stop()`` is true (checked every tick) or the control stream says stop."""
        clock = time.monotonic
        try:
            while not stop():
                now = clock()
                timeout = TICK_S
                if self._queue:
                    timeout = max(0.0, min(timeout, self._queue[0][0] - now))
                fds = [self.master] + ([control.fd] if control else [])
                readable, _, _ = select.select(fds, [], [], timeout)
                now = clock()
                if self.master in readable:
                    self._read(now)
                if control and control.fd in readable and not control.handle(self, now):
                    return
                self._schedule(self.bus.expire_partial(now))
                self._send_due(clock())
                self.bus.tick(now)
        finally:
            self.close()

    def _read(self, now: float) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError as e:  # EIO: no host has the slave open right now
            if e.errno not in (errno.EIO, errno.EAGAIN):
                raise
            time.sleep(TICK_S)
            return
        self._schedule(self.bus.receive(data, now, self.port_baud()))

    def _schedule(self, replies: list[tuple[float, bytes]]) -> None:
        for due, reply in replies:
            heapq.heappush(self._queue, (due, self._seq, reply))
            self._seq += 1

    def _send_due(self, now: float) -> None:
        while self._queue and self._queue[0][0] <= now:
            _, _, reply = heapq.heappop(self._queue)
            try:
                os.write(self.master, reply)
            except BlockingIOError:
                pass  # nobody drains the port: the bytes are lost, as on a wire

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class Control:
    """JSON-lines commands on ``fd`` with answers on ``out``: one object per line each way.

    Commands (``{"cmd": ...}``): ``state`` (id) -> registers, shaft ticks and velocity; ``set_shaft`` (id,
    ticks): move a shaft by hand (a twin, or a user turning a joint with torque off); ``faults`` (the
    FaultConfig fields) replaces the fault settings; ``unplug`` / ``plug`` (id); ``overload`` (id): trip it
    now; ``power_cycle`` (id); ``stats``; ``stop``. With a twin (``--twin``): ``set_shaft`` moves the twin's
    joint; ``twin`` -> ``joints`` (name -> rad) and the twin's ``time``; ``set_joint`` (joint name, rad) moves a
    joint by hand. Every answer has ``ok``; failures carry ``error``.
    """

    def __init__(self, fd: int, out: Callable[[str], None]):
        self.fd = fd
        self._out = out
        self._buf = b""

    def handle(self, server: PtyServer, now: float) -> bool:
        chunk = os.read(self.fd, 65536)
        if not chunk:
            return False  # the parent went away: stop serving
        self._buf += chunk
        keep_going = True
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
                answer = self.run(server.bus, cmd, now)
            except (ValueError, KeyError, TypeError) as e:
                answer = {"ok": False, "error": str(e)}
            if answer.pop("_stop", False):
                keep_going = False
            self._out(json.dumps(answer))
        return keep_going

    @staticmethod
    def run(bus: ServoBusEmulator, cmd: dict, now: float) -> dict:
        name = cmd.get("cmd")

        def servo():
            for s in bus.servos:
                if s.id == int(cmd["id"]):
                    return s
            raise KeyError(f"no emulated servo has id {cmd['id']}; ids: {[s.id for s in bus.servos]}")

        if name == "state":
            s = servo()
            s.advance(now)
            return {"ok": True, "id": s.id, "shaft": s.shaft.position, "shaft_velocity": s.shaft.velocity,
                    "blocked": s.blocked, "registers": s.registers()}
        if name == "set_shaft":
            s = servo()
            if bus.twin is not None and bus.twin.drives(s):
                bus.twin.move_shaft(s, float(cmd["ticks"]), now)
            else:
                s.place_shaft(float(cmd["ticks"]), 0.0, now)
            return {"ok": True}
        if name in ("twin", "set_joint"):
            if bus.twin is None:
                raise ValueError(f"control command {name!r} needs a twin; start the emulator with --twin (e.g. so101)")
            if name == "set_joint":
                bus.twin.move_joint(str(cmd["joint"]), float(cmd["rad"]), now)
            return {"ok": True, **bus.twin.state(now)}
        if name == "faults":
            bus.apply_faults(FaultConfig.from_json({k: v for k, v in cmd.items() if k != "cmd"}))
            return {"ok": True}
        if name in ("unplug", "plug"):
            sid = int(cmd["id"])
            unplugged = set(bus.faults.config.unplugged)
            unplugged = unplugged | {sid} if name == "unplug" else unplugged - {sid}
            bus.faults.config.unplugged = tuple(sorted(unplugged))
            return {"ok": True}
        if name == "overload":
            s = servo()
            s.advance(now)
            s.trip(0x20)
            return {"ok": True}
        if name == "power_cycle":
            servo().power_cycle(now)
            return {"ok": True}
        if name == "stats":
            return {"ok": True, **bus.stats()}
        if name == "stop":
            return {"ok": True, "_stop": True}
        raise ValueError(f"unknown control command {name!r}; accepted: state, set_shaft, faults, unplug, plug, "
                         "overload, power_cycle, stats, stop, twin, set_joint")
