"""An emulated UR e-Series controller on loopback, in its own process: the ports ur_rtde talks to.

    python -m robolearn_hardware.ur.emulator --control
    {"host": "127.83.14.201", "ports": {"rtde": 30004, "dashboard": 29999, ...}, "pid": 4242}

=========  =====  ======================================================================================
port       kind   what it does here
=========  =====  ======================================================================================
30004      RTDE   protocol v2: version negotiation, URControl version, output/input recipes (NOT_FOUND,
                  IN_USE), start/pause, data packages at each recipe's frequency (500 Hz at most)
29999      text   the dashboard server (power on/off, brake release, robotmode, safetymode/safetystatus,
                  unlock protective stop, play/stop/pause, load, programState, PolyscopeVersion, ...)
30001-3    text   URScript programs (ur_rtde uploads its control script to 30003): a program replaces the
                  running one; ur_rtde's control script is emulated by `controller.Controller`
63352      text   the Robotiq URCap's gripper socket (`robotiq_model.GripperModel`)
=========  =====  ======================================================================================

The primary/secondary/real-time ports only take programs here; they stream no robot state packages (ur_rtde
never reads them). ur_rtde cannot be told other ports, so each emulator binds its own loopback address
(127.x.y.z, chosen at random unless ``--host`` is given); ``RTDEControlInterface`` then asks the dashboard
"is in remote control", which answers true.

``--control`` reads JSON-line commands on stdin and answers on stdout: ``state``, ``protective_stop``
(a collision), ``drop_inputs`` (seconds of lost RTDE input packages: the watchdog's test), ``gripper_object``
(an object between the fingers), ``estop``. The emulator exits when stdin closes, so it never outlives the
process that started it. One thread runs everything (sockets, the 500 Hz cycle), bounded by ``--max-s``;
it runs at SCHED_FIFO ``--rt-priority`` (a real controller runs on a real-time kernel) where the user may
(root, CAP_SYS_NICE or an rtprio limit), else at normal priority with one line on stderr saying so; the
hello line's ``sched_fifo`` says which.

Cycle timing, as a real-time controller has it: cycle k starts at t0 + k * 2 ms (its nominal start, whatever
this process's own wake-up delay). RTDE input packages are stamped with the time the kernel received them
(SO_TIMESTAMPNS; the time they are read where the kernel gives none) and handed to the cycle that starts
after they arrived, so a late wake-up here neither rescues a command that came after its cycle started nor
drops one that came before; the cycle's data package is stamped with its nominal start. When this process
itself wakes a whole cycle late or more (the VM stalled it; a real controller runs on a real-time kernel), the
cycles it missed are counted (``overruns``) and run late at their own nominal starts, each with the packages
that had arrived before it, so the client's stream is judged by when its packages arrived, not by when the
emulator got to them; only the newest state is published after such a catch-up. A stall longer than
``CATCH_UP_CYCLES`` skips the cycles beyond that (``skipped_cycles``), never bursting more.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from robolearn.runtime.rt import RealtimeLoop

from .controller import Controller, ControllerConfig, RobotMode, RuntimeState, SafetyMode
from .robotiq_model import GripperModel, GripperModelConfig
from .rtde import INPUT_TYPES, OUTPUT_TYPES, TYPE_FORMATS, FrameReader, Message, Recipe, RTDEError, frame

__all__ = ["PORTS", "Emulator", "main"]

PORTS = {"rtde": 30004, "dashboard": 29999, "primary": 30001, "secondary": 30002, "realtime": 30003,
         "gripper": 63352}
MAX_FREQUENCY = 500.0
DEFAULT_RT_PRIORITY = 80
CATCH_UP_CYCLES = 25  # the most cycles run late after a stall of this process (50 ms at 500 Hz); the rest are skipped
"""SCHED_FIFO priority of the emulated controller's cycle (it runs everything: one thread)."""
SO_TIMESTAMPNS = 35  # Linux's SO_TIMESTAMPNS(_OLD): kernel receive times as timespec; Python's socket module lacks it


def _stamp_arrivals(sock: socket.socket) -> None:
    if sys.platform.startswith("linux"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass  # the read time stands in for the arrival time


def _recv_stamped(sock: socket.socket) -> tuple[bytes, float]:
    """Bytes from ``sock`` and the monotonic time the kernel received them (the time now if it gave none)."""
    data, ancillary, _, _ = sock.recvmsg(65536, 64)
    now = time.monotonic()
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
            sec, nsec = struct.unpack("qq", raw[:16])
            return data, min(now, now - (time.time() - (sec + nsec * 1e-9)))  # realtime stamp -> monotonic
    return data, now


def _zero(kind: str) -> object:
    fmt = TYPE_FORMATS[kind]
    return [0] * int(fmt[:-1]) if len(fmt) > 1 else 0


@dataclass
class _RTDEConn:
    sock: socket.socket
    reader: FrameReader = field(default_factory=FrameReader)
    output: Recipe | None = None
    divider: int = 1
    inputs: dict[int, Recipe] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    started: bool = False


@dataclass
class _TextConn:
    sock: socket.socket
    kind: str
    buf: bytes = b""


class Emulator:
    """The servers and the control cycle of one emulated UR (+ Robotiq gripper) on ``host``."""

    def __init__(self, host: str, controller: Controller, gripper: GripperModel | None = None,
                 ports: dict[str, int] | None = None):
        self.host, self.controller, self.gripper = host, controller, gripper
        self.ports = dict(ports or PORTS)
        if gripper is None:
            self.ports.pop("gripper", None)
        # select(2) waits to the microsecond; epoll and poll round a timeout up to whole milliseconds (half a cycle)
        self.sel = selectors.SelectSelector()
        self.listeners: list[socket.socket] = []
        try:
            for kind, port in self.ports.items():
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.listeners.append(s)
                s.bind((host, port))
                s.listen(8)
                s.setblocking(False)
                self.sel.register(s, selectors.EVENT_READ, ("listen", kind))
        except OSError:
            self.close()
            raise
        self.claimed_inputs: dict[str, _RTDEConn] = {}
        self.rtde_conns: list[_RTDEConn] = []
        self.inputs: list[tuple[float, dict]] = []  # (arrival, values): input packages no cycle has read yet
        self.tick = 0
        self.next_tick = time.monotonic()
        """Nominal start of the next cycle."""
        self.stop_requested = False
        self.on_control = None

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            if isinstance(key.fileobj, socket.socket):
                key.fileobj.close()
        for s in self.listeners:
            s.close()
        self.sel.close()

    # -- the loop --
    def serve(self, max_s: float, control_fd: int | None = None) -> None:
        c = self.controller
        dt = c.config.dt
        if control_fd is not None:
            self.sel.register(control_fd, selectors.EVENT_READ, ("control", None))
        end = time.monotonic() + max_s
        self.next_tick = time.monotonic()
        while not self.stop_requested:
            now = time.monotonic()
            if now >= end:
                break
            for key, _ in self.sel.select(max(0.0, self.next_tick - now)):  # select(2): microsecond timeouts
                self._event(key.data, key.fileobj)
            now = time.monotonic()
            if now >= self.next_tick:
                self.run_due(now)

    def run_due(self, now: float) -> None:
        """Run every cycle whose nominal start is at or before ``now``, oldest first (module doc): the ones this
        process woke too late for are caught up at their own starts, each reading the packages that had arrived
        before it, and only the newest state is published; beyond ``CATCH_UP_CYCLES`` they are skipped."""
        c, dt = self.controller, self.controller.config.dt
        late = int((now - self.next_tick) // dt)
        skip = max(0, late - CATCH_UP_CYCLES)
        c.counters["overruns"] += late
        c.counters["skipped_cycles"] += skip
        self.next_tick += skip * dt
        n_events = len(c.events)
        c.run_at = now
        for k in range(late - skip + 1):
            self.hand_over(self.next_tick)
            c.step(self.next_tick)  # the cycle's nominal start: what a real-time controller reads and decides then
            if self.gripper is not None:
                self.gripper.step(dt * (1 + skip) if k == 0 else dt)
            self.tick += 1
            self.next_tick += dt
        self._publish(self.next_tick - dt)  # stamped with the newest cycle's own time, as the controller does
        sent = time.monotonic()
        c.last_publish = (self.next_tick - dt, sent)
        c.publish_lag_ms.append((sent - (self.next_tick - dt)) * 1e3)
        if len(c.events) > n_events:  # when these cycles' decisions (a watchdog stop, ...) went out
            published = time.monotonic()
            for e in c.events[n_events:]:
                e.detail["t_published"] = published

    def hand_over(self, cycle_start: float) -> None:
        """Give the controller the input packages that arrived before the cycle starting at ``cycle_start``."""
        later = []
        for arrival, values in self.inputs:
            if arrival <= cycle_start:
                self.controller.on_input(values, arrival)
            else:
                later.append((arrival, values))
        self.inputs = later

    def _event(self, data: tuple[str, str | None], obj) -> None:
        what, kind = data
        if what == "listen":
            sock, _ = obj.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if kind == "rtde":
                _stamp_arrivals(sock)
            sock.setblocking(False)
            conn: object = _RTDEConn(sock) if kind == "rtde" else _TextConn(sock, kind)
            self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))
            if kind == "rtde":
                self.rtde_conns.append(conn)  # type: ignore[arg-type]
            elif kind == "dashboard":
                self._send(sock, b"Connected: Universal Robots Dashboard Server\n")
        elif what == "control":
            line = os.read(obj, 65536) if isinstance(obj, int) else b""
            if not line:
                self.stop_requested = True
                return
            for raw in line.decode().splitlines():
                if raw.strip() and self.on_control is not None:
                    self.on_control(raw)
        else:
            conn = kind  # the connection object
            arrival = time.monotonic()
            try:
                if isinstance(conn, _RTDEConn):
                    chunk, arrival = _recv_stamped(conn.sock)
                else:
                    chunk = conn.sock.recv(65536)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._drop(conn)
                return
            try:
                if isinstance(conn, _RTDEConn):
                    self._rtde(conn, chunk, arrival)
                else:
                    self._text(conn, chunk)
            except (RTDEError, struct.error, ValueError, UnicodeDecodeError) as e:
                self.controller.last_error = f"dropped a client after a malformed message: {e}"
                self._drop(conn)

    def _drop(self, conn) -> None:
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        if isinstance(conn, _RTDEConn):
            self.rtde_conns.remove(conn)
            for name in conn.claimed:
                self.claimed_inputs.pop(name, None)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.sendall(data)
        except (BlockingIOError, OSError):
            pass  # a client that does not read loses packages, as on the robot

    # -- RTDE --
    def _rtde(self, conn: _RTDEConn, chunk: bytes, arrival: float) -> None:
        for kind, body in conn.reader.feed(chunk):
            if kind == Message.DATA_PACKAGE:
                recipe = conn.inputs.get(body[0]) if body else None
                if recipe is None:
                    raise RTDEError(f"data package for unknown input recipe {body[:1]!r}")
                self.inputs.append((arrival, recipe.unpack(body)))  # read by the next cycle (hand_over)
            elif kind == Message.REQUEST_PROTOCOL_VERSION:
                version = struct.unpack(">H", body[:2])[0]
                self._send(conn.sock, frame(kind, bytes([1 if version in (1, 2) else 0])))
            elif kind == Message.GET_URCONTROL_VERSION:
                self._send(conn.sock, frame(kind, struct.pack(">IIII", *self.controller.config.version)))
            elif kind == Message.SETUP_OUTPUTS:
                freq = struct.unpack(">d", body[:8])[0]
                names = [n for n in body[8:].decode().split(",") if n]
                types = [OUTPUT_TYPES.get(n, "NOT_FOUND") for n in names]
                ok = "NOT_FOUND" not in types and 0 < freq <= MAX_FREQUENCY
                if ok:
                    conn.output = Recipe(1, names, types)
                    conn.divider = max(1, round(MAX_FREQUENCY / freq))
                self._send(conn.sock, frame(kind, bytes([1 if ok else 0]) + ",".join(types).encode()))
            elif kind == Message.SETUP_INPUTS:
                names = [n for n in body.decode().split(",") if n]
                types = []
                for n in names:
                    owner = self.claimed_inputs.get(n)
                    types.append("NOT_FOUND" if n not in INPUT_TYPES else "IN_USE" if owner not in (None, conn)
                                 else INPUT_TYPES[n])
                ok = not ({"NOT_FOUND", "IN_USE"} & set(types)) and len(conn.inputs) < 255
                rid = len(conn.inputs) + 1 if ok else 0
                if ok:
                    conn.inputs[rid] = Recipe(rid, names, types)
                    conn.claimed.update(names)
                    self.claimed_inputs.update({n: conn for n in names})
                self._send(conn.sock, frame(kind, bytes([rid]) + ",".join(types).encode()))
            elif kind == Message.START:
                conn.started = conn.output is not None or bool(conn.inputs)
                self._send(conn.sock, frame(kind, bytes([int(conn.started)])))
            elif kind == Message.PAUSE:
                conn.started = False
                self._send(conn.sock, frame(kind, b"\x01"))
            else:
                raise RTDEError(f"unknown RTDE message type {kind}")

    def _publish(self, now: float) -> None:
        streaming = [c for c in self.rtde_conns if c.started and c.output is not None and self.tick % c.divider == 0]
        if not streaming:
            return
        names = set().union(*(c.output.names for c in streaming))  # type: ignore[union-attr]
        values = self.controller.outputs(now, names)
        for c in streaming:
            recipe = c.output
            assert recipe is not None
            full = {n: values[n] if n in values else _zero(t) for n, t in zip(recipe.names, recipe.types)}
            self._send(c.sock, frame(Message.DATA_PACKAGE, recipe.pack(full)))

    # -- text ports --
    def _text(self, conn: _TextConn, chunk: bytes) -> None:
        conn.buf += chunk
        if conn.kind in ("primary", "secondary", "realtime"):
            self._programs(conn)
            return
        while b"\n" in conn.buf:
            line, conn.buf = conn.buf.split(b"\n", 1)
            text = line.decode().strip()
            if conn.kind == "dashboard":
                answer = self.dashboard(text)
                self._send(conn.sock, (answer + "\n").encode())
                if text == "quit":
                    self._drop(conn)
                    return
            elif self.gripper is not None:
                answer = self.gripper.line(text)
                if answer:
                    self._send(conn.sock, (answer + "\n").encode())

    def _programs(self, conn: _TextConn) -> None:
        """Run each complete program: ``def``/``sec`` ... ``end`` at column 0, or a single line of script."""
        text = conn.buf.decode()
        while text:
            if text.lstrip().startswith(("def ", "sec ")):
                lines = text.splitlines(keepends=True)
                ends = [i for i, ln in enumerate(lines) if ln.rstrip() == "end"]
                if not ends:
                    break
                program, text = "".join(lines[:ends[0] + 1]), "".join(lines[ends[0] + 1:])
            elif "\n" in text:
                program, text = text.split("\n", 1)
                if not program.strip():
                    continue
            else:
                break
            self.controller.run_program(program, time.monotonic())
        conn.buf = text.encode()

    def dashboard(self, text: str) -> str:
        """The dashboard server's answer to one command (PolyScope 5 wording)."""
        c, t = self.controller, time.monotonic()
        cmd = text.lower()
        version = ".".join(map(str, c.config.version))
        name = c.program.name if c.program else "<unnamed>"
        answers = {
            "polyscopeversion": lambda: f"URSoftware {version} (Jul 12 2023)",
            "version": lambda: f"Version: {version}",
            "get serial number": lambda: c.config.serial,
            "get robot model": lambda: "UR5",
            "is in remote control": lambda: "true",
            "robotmode": lambda: f"Robotmode: {c.robot_mode.name}",
            "safetymode": lambda: f"Safetymode: {c.safety_mode.name}",
            "safetystatus": lambda: f"Safetystatus: {c.safety_mode.name}",
            "programstate": lambda: f"{c.runtime.name} {name}",
            "running": lambda: f"Program running: {str(c.runtime == RuntimeState.PLAYING).lower()}",
            "power on": lambda: c.power(t, True),
            "power off": lambda: c.power(t, False),
            "brake release": lambda: c.brake_release(t),
            "unlock protective stop": lambda: c.unlock_protective_stop(t),
            "play": lambda: c.play(t),
            "stop": lambda: c.stop(t),
            "pause": lambda: c.pause(t),
            "close popup": lambda: "closing popup",
            "close safety popup": lambda: "closing safety popup",
            "restart safety": lambda: self._restart_safety(t),
            "get loaded program": lambda: "No program loaded",
            "isprogramsaved": lambda: f"true {name}",
            "quit": lambda: "Disconnected",
            "shutdown": lambda: "Shutting down",
        }
        if cmd in answers:
            return answers[cmd]()
        if cmd.startswith("load "):
            return f"File not found: {text[5:]}"  # the emulator has no program files
        if cmd.startswith("popup "):
            return "showing popup"
        if cmd.startswith("addtolog "):
            return "Added log message"
        return f"could not understand: '{text}'"

    def _restart_safety(self, t: float) -> str:
        c = self.controller
        c.power(t, False)
        c.safety_mode = SafetyMode.NORMAL
        c.t_protective = None
        return "Restarting safety"

    # -- control channel --
    def control(self, request: dict) -> dict:
        c, t = self.controller, time.monotonic()
        cmd = request.get("cmd")
        if cmd == "state":
            return {"ok": True, **c.stats(), "tick": self.tick, "t": t, "rtde_clients": len(self.rtde_conns),
                    "gripper": self.gripper.state() if self.gripper else None}
        if cmd == "protective_stop":
            c.protective_stop(t, request.get("cause", "injected collision"))
            return {"ok": True}
        if cmd == "estop":
            c.safety_mode = SafetyMode.ROBOT_EMERGENCY_STOP
            c._end_program(t, "emergency stop")
            c.robot_mode = RobotMode.POWER_OFF
            if self.gripper is not None:
                self.gripper.estop = True
            return {"ok": True}
        if cmd == "drop_inputs":
            c.drop_inputs_until = t + float(request["seconds"])
            return {"ok": True, "until": c.drop_inputs_until}
        if cmd == "gripper_object":
            if self.gripper is None:
                return {"ok": False, "error": "this emulator has no gripper (started with --no-gripper)"}
            pos = request.get("position")
            self.gripper.config.object_position = None if pos is None else int(pos)
            return {"ok": True}
        return {"ok": False, "error": f"unknown control command {cmd!r}; known: state, protective_stop, estop, "
                                      "drop_inputs, gripper_object"}


def _random_host() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def bind(host: str | None, controller: Controller, gripper: GripperModel | None, tries: int = 20) -> Emulator:
    """An `Emulator` on ``host``, or on the first free random loopback address."""
    last: OSError | None = None
    for _ in range(1 if host else tries):
        try:
            return Emulator(host or _random_host(), controller, gripper)
        except OSError as e:
            last = e
    raise OSError(f"could not bind the UR ports on {host or 'any of ' + str(tries) + ' loopback addresses'}: {last}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robolearn_hardware.ur.emulator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=None, help="loopback address to bind (default: a random free 127.x.y.z)")
    p.add_argument("--q0", default=None, help="start joint angles, 6 comma-separated radians")
    p.add_argument("--robot-mode", choices=["POWER_OFF", "RUNNING"], default="RUNNING")
    p.add_argument("--unlock-delay", type=float, default=5.0, help="seconds before a protective stop can be unlocked")
    p.add_argument("--no-twin", action="store_true", help="actual = target (no MuJoCo)")
    p.add_argument("--no-gripper", action="store_true", help="no Robotiq socket on 63352")
    p.add_argument("--gripper-activation", type=float, default=1.5, help="seconds from ACT 1 to STA 3")
    p.add_argument("--control", action="store_true", help="JSON-line control on stdin/stdout; exit when stdin closes")
    p.add_argument("--max-s", type=float, default=3600.0, help="exit after this many seconds")
    p.add_argument("--rt-priority", type=int, default=DEFAULT_RT_PRIORITY,
                   help="SCHED_FIFO priority of the control cycle where permitted (0: normal priority)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.q0:
        q0 = tuple(float(x) for x in args.q0.split(","))
        if len(q0) != 6:
            raise SystemExit(f"--q0 needs 6 joint angles, got {len(q0)}: {args.q0!r}")
    else:
        q0 = ControllerConfig.q0
    t0 = time.monotonic()
    controller = Controller(ControllerConfig(q0=q0, robot_mode=args.robot_mode, unlock_delay_s=args.unlock_delay,
                                             twin=not args.no_twin), t0)
    gripper = None if args.no_gripper else GripperModel(GripperModelConfig(activation_s=args.gripper_activation))
    emu = bind(args.host, controller, gripper)
    out = sys.stdout

    def answer(raw: str) -> None:
        try:
            reply = emu.control(json.loads(raw))
        except (ValueError, KeyError, TypeError) as e:
            reply = {"ok": False, "error": f"bad control line {raw!r}: {e}"}
        out.write(json.dumps(reply, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)) + "\n")
        out.flush()

    emu.on_control = answer
    try:
        with RealtimeLoop(rt_priority=args.rt_priority or None) as rt:
            out.write(json.dumps({"host": emu.host, "ports": emu.ports, "pid": os.getpid(),
                                  "sched_fifo": rt.sched_fifo}) + "\n")
            out.flush()
            emu.serve(args.max_s, sys.stdin.fileno() if args.control else None)
    except KeyboardInterrupt:
        pass
    finally:
        emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
