"""Stateful servo emulators that speak the real wire protocols on a pty, with fault injection.

``make_bus`` builds a bus of emulated servos (Dynamixel XL330-M288 / XL430-W250, Feetech STS3215);
``PtyServer`` serves it on a pseudo-terminal; ``EmulatorProcess`` runs that in its own process
(``python -m robolearn_hardware.emulators.servo``) and drives its control channel.
"""

from .bus import DynamixelBusEmulator, FeetechBusEmulator, ServoBusEmulator, make_bus, wire_s
from .dynamixel_servo import DynamixelServo
from .faults import FaultConfig, FaultInjector
from .feetech_servo import FeetechServo
from .process import ChildProcess, EmulatorProcess
from .pty_server import Control, PtyServer

__all__ = [
    "DynamixelBusEmulator", "FeetechBusEmulator", "ServoBusEmulator", "make_bus", "wire_s", "DynamixelServo",
    "FaultConfig", "FaultInjector", "FeetechServo", "ChildProcess", "EmulatorProcess", "Control", "PtyServer",
]
