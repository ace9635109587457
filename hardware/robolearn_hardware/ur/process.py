"""Start the emulated UR controller (`robolearn_hardware.ur.emulator`) in its own process.

ur_rtde's constructors block while holding the GIL, so the emulator can never be a thread of the process
that drives it. Example::

    with UREmulatorProcess(unlock_delay_s=0.2) as emu:
        arm = URArm(URConfig(host=emu.host))      # every UR port is on emu.host
        emu.command("drop_inputs", seconds=0.05)  # lose RTDE input packages: the watchdog trips
        emu.state()["runtime_state"]              # "STOPPED"
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..emulators.process import ChildProcess
from .emulator import DEFAULT_RT_PRIORITY

__all__ = ["UREmulatorProcess"]


class UREmulatorProcess(ChildProcess):
    """``python -m robolearn_hardware.ur.emulator --control`` with its control channel (JSON lines);
    ``rt_priority``: SCHED_FIFO priority of its control cycle where permitted (None: normal priority)."""

    def __init__(self, *, q0: Sequence[float] | None = None, robot_mode: str = "RUNNING",
                 unlock_delay_s: float = 5.0, twin: bool = True, gripper: bool = True,
                 gripper_activation_s: float = 1.5, host: str | None = None, start_timeout_s: float = 30.0,
                 rt_priority: int | None = DEFAULT_RT_PRIORITY):
        argv = [sys.executable, "-m", "robolearn_hardware.ur.emulator", "--control", "--robot-mode", robot_mode,
                "--unlock-delay", str(unlock_delay_s), "--gripper-activation", str(gripper_activation_s),
                "--rt-priority", str(rt_priority or 0)]
        if q0 is not None:
            argv += ["--q0", ",".join(map(str, q0))]
        if not twin:
            argv.append("--no-twin")
        if not gripper:
            argv.append("--no-gripper")
        if host:
            argv += ["--host", host]
        super().__init__(argv, start_timeout_s)
        self.host = ""
        self.ports: dict[str, int] = {}
        self.sched_fifo = False
        """Whether the emulated controller's cycle runs at SCHED_FIFO (``rt_priority``, where permitted)."""

    def _started(self, hello: dict) -> None:
        self.host, self.ports, self.sched_fifo = hello["host"], hello["ports"], bool(hello.get("sched_fifo"))

    def state(self) -> dict:
        """Controller state and counters (robot/safety/runtime modes, servo cycles, watchdog events, ...)."""
        return self.command("state")
