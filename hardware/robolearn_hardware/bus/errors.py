"""What a servo bus reports when something goes wrong; every message names the motor (name and id) and the port.

`BusError` is an OSError (an I/O failure a caller may catch and retry at a higher level); a model or
calibration the user can fix is a `robolearn.errors.UserError`.
"""

from __future__ import annotations

from robolearn.errors import InvalidValueError

__all__ = ["BusError", "MotorNotRespondingError", "HardwareErrorAlert", "ServoRejectedError", "MotorMismatchError",
           "CalibrationError"]


class BusError(OSError):
    """A servo bus transaction failed."""


class MotorNotRespondingError(BusError):
    """No valid reply from one or more motors within the retry budget (cable, power, id or baud rate)."""

    def __init__(self, message: str, motors: list[str]):
        super().__init__(message)
        self.motors = motors


class HardwareErrorAlert(BusError):
    """A motor reports a hardware error (Dynamixel alert bit / Hardware_Error_Status, Feetech status bits)."""

    def __init__(self, message: str, motor: str, bits: dict[str, bool]):
        super().__init__(message)
        self.motor = motor
        self.bits = bits


class ServoRejectedError(BusError):
    """A motor answered a request with an error code (range, limit, access ...)."""


class MotorMismatchError(InvalidValueError):
    """The servo found at an id is not the model the arm's config names."""


class CalibrationError(InvalidValueError):
    """A calibration that cannot be used (file, values, or a procedure step the user must repeat)."""
