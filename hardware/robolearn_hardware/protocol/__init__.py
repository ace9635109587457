"""Servo wire protocols written here, pure Python: Dynamixel Protocol 2.0 and Feetech STS/SCS.

``dynamixel`` and ``feetech`` build and parse packets (with a streaming, resynchronising parser);
``dynamixel_tables`` and ``feetech_tables`` hold the control tables of the emulated models, described by
``registers``. The emulators speak through these codecs and the drivers can use them instead of a vendor SDK.
"""

from . import dynamixel, dynamixel_tables, feetech, feetech_tables, registers
from .registers import ControlTable, Register, decode_sign_magnitude, encode_sign_magnitude
from .stream import ProtocolError, Rejected, StreamParser

__all__ = [
    "dynamixel", "dynamixel_tables", "feetech", "feetech_tables", "registers", "ControlTable", "Register",
    "decode_sign_magnitude", "encode_sign_magnitude", "ProtocolError", "Rejected", "StreamParser",
]
