"""Start an emulated servo bus in its own process and talk to its control channel.

Example::

    from robolearn_hardware.emulators import EmulatorProcess

    with EmulatorProcess("dynamixel", "xl330", [1, 2, 3]) as emu:
        port = emu.port                       # open with dynamixel_sdk.PortHandler(port)
        emu.command("unplug", id=2)           # fault injection while running
        emu.state(1)["registers"]["Present_Position"]

``twin="so101"`` (or ``"koch"``) couples the servos to that arm's simulated twin (emulators/servo.py):
``emu.twin()`` gives its joint angles, ``emu.set_joint("shoulder_pan", 0.3)`` turns one by hand.

The child is ``python -m robolearn_hardware.emulators.servo --control``; it exits when its stdin closes, and
``stop()`` ends it by its pid (SIGTERM, then SIGKILL) if it does not.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

from .faults import FaultConfig

__all__ = ["ChildProcess", "EmulatorProcess"]


class ChildProcess:
    """A child process (an emulator) that prints one JSON line (its hello: ports, paths) once it serves,
    then answers one JSON line per command written to its stdin; it exits when its stdin closes (`stop`)."""

    def __init__(self, argv: list[str], start_timeout_s: float = 20.0) -> None:
        self.argv = argv
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.hello: dict = {}
        self._buf = b""

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the emulator is not started; call start() first")
        return self.proc.pid

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        try:
            self.hello = json.loads(self._readline(self.start_timeout_s, "start"))
        except Exception:
            self.stop()
            raise
        self._started(self.hello)
        return self

    def _started(self, hello: dict) -> None:
        """Take what the child announced (ports, paths)."""

    def _readline(self, timeout_s: float, what: str) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"emulator pid {self.proc.pid} gave no answer to {what!r} within {timeout_s} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"emulator pid {self.proc.pid} exited (code {self.proc.poll()}) during {what!r}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def command(self, cmd: str, timeout_s: float = 5.0, **fields) -> dict:
        """Send one control command and return its answer; raises if the emulator reports an error."""
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError("the emulator is not started; call start() first")
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        answer = json.loads(self._readline(timeout_s, cmd))
        if not answer.get("ok"):
            raise RuntimeError(f"emulator command {cmd!r} failed: {answer.get('error')}")
        return answer

    def stop(self, timeout_s: float = 3.0) -> None:
        """End the child by its pid: close its stdin (it exits), then SIGTERM, then SIGKILL."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout_s)
                    except subprocess.TimeoutExpired:
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait(timeout_s)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EmulatorProcess(ChildProcess):
    """An emulated servo bus (module docstring) on the pty announced as ``port``."""

    def __init__(self, protocol: str, model: str | list[str], ids: list[int], *, baud: int = 1_000_000,
                 positions: list[float] | None = None, return_delay_us: int | None = None,
                 faults: FaultConfig | None = None, twin: str | None = None, start_timeout_s: float = 20.0):
        f = faults or FaultConfig()
        argv = [sys.executable, "-m", "robolearn_hardware.emulators.servo", "--control",
                "--protocol", protocol, "--model", model if isinstance(model, str) else ",".join(model),
                "--ids", ",".join(map(str, ids)),
                "--baud", str(baud), "--drop", str(f.drop_rate), "--corrupt", str(f.corrupt_rate),
                "--late", str(f.late_rate), "--late-ms", str(f.late_s * 1000.0), "--seed", str(f.seed)]
        for flag, values in (("--unplugged", f.unplugged), ("--overload", f.overload), ("--fault-ids", f.only_ids)):
            if values:
                argv += [flag, ",".join(map(str, values))]
        if positions is not None:
            argv += ["--positions", ",".join(map(str, positions))]
        if return_delay_us is not None:
            argv += ["--return-delay-us", str(return_delay_us)]
        if twin is not None:
            argv += ["--twin", twin]
        super().__init__(argv, start_timeout_s)
        self.port = ""

    def _started(self, hello: dict) -> None:
        self.port = hello["port"]

    def state(self, servo_id: int) -> dict:
        return self.command("state", id=servo_id)

    def set_faults(self, config: FaultConfig) -> None:
        self.command("faults", **config.to_json())

    def twin(self) -> dict[str, float]:
        """The twin's joint angles (rad) by name (an emulator started with ``twin=``)."""
        return self.command("twin")["joints"]

    def set_joint(self, joint: str, rad: float) -> dict[str, float]:
        """Turn a twin joint to ``rad`` by hand; returns the joint angles."""
        return self.command("set_joint", joint=joint, rad=float(rad))["joints"]
