"""`NetFTEmulator`: the Net F/T emulator (`robolearn_hardware.force.emulator`) in a child process.

Example::

    with NetFTEmulator(rate=1000, wrench=(0, 0, -9.81, 0, 0, 0)) as emu:
        sensor = NetFTSensor("127.0.0.1", port=emu.rdt_port, http_port=emu.http_port)
        emu.command("faults", drop_sequences=[5, 6])      # control channel (see the emulator module)
"""

from __future__ import annotations

import sys

from robolearn_hardware.emulators.process import ChildProcess

from .rdt import Calibration

__all__ = ["NetFTEmulator"]


class NetFTEmulator(ChildProcess):
    """The emulator in a child process (module docstring); ``rdt_port`` / ``http_port`` once started."""

    def __init__(self, rate: float = 1000.0, wrench=(0, 0, 0, 0, 0, 0), calibration: Calibration | None = None,
                 drop: float = 0.0, seed: int = 0, http: bool = True, host: str = "127.0.0.1",
                 start_timeout_s: float = 20.0) -> None:
        cal = calibration or Calibration()
        super().__init__([sys.executable, "-m", "robolearn_hardware.force.emulator", "--host", host,
                          "--rate", str(rate), "--cpf", repr(cal.counts_per_force), "--cpt", repr(cal.counts_per_torque),
                          "--wrench", ",".join(str(float(v)) for v in wrench), "--drop", str(drop), "--seed", str(seed),
                          "--http-port", "0" if http else "-1"], start_timeout_s)
        self.host = host
        self.rdt_port = 0
        self.http_port: int | None = None

    def _started(self, hello: dict) -> None:
        self.rdt_port, self.http_port = hello["rdt_port"], hello["http_port"]

    def stats(self) -> dict:
        return self.command("stats")
