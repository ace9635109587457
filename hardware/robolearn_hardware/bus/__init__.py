"""One servo bus for Dynamixel and Feetech arms: named registers, sync read/write, retries, error status,
calibration and normalisation, the Dynamixel bus watchdog. See `servo_bus` for the rules.

Example::

    from robolearn_hardware.bus import Motor, NormMode, ServoBus, load_calibration

    motors = {"shoulder_pan": Motor(1, "sts3215"), "gripper": Motor(6, "sts3215", NormMode.RANGE_0_100)}
    with ServoBus("/dev/ttyACM0", motors, calibration=load_calibration("arm.json")) as bus:
        bus.read_positions()          # {"shoulder_pan": -3.1, "gripper": 42.0}
"""

from .backends import BACKENDS, CorruptReply, NoReply, Transport, open_transport
from .calibration import MIDDLE, MotorCalibration, calibration_dir, calibration_path, load_calibration, normalize, \
    save_calibration, unnormalize, wrap_offset
from .errors import BusError, CalibrationError, HardwareErrorAlert, MotorMismatchError, MotorNotRespondingError, \
    ServoRejectedError
from .models import MODELS, Motor, NormMode, ServoModel
from .procedure import CalibrationUI, ConsoleUI, align_leader_zero, calibrate, ensure_calibrated
from .servo_bus import BusStats, RetryBudget, ServoBus

__all__ = [
    "BACKENDS", "CorruptReply", "NoReply", "Transport", "open_transport", "MIDDLE", "MotorCalibration",
    "calibration_dir", "calibration_path", "load_calibration", "normalize", "save_calibration", "unnormalize",
    "wrap_offset", "BusError", "CalibrationError", "HardwareErrorAlert", "MotorMismatchError",
    "MotorNotRespondingError", "ServoRejectedError", "MODELS", "Motor", "NormMode", "ServoModel", "CalibrationUI",
    "ConsoleUI", "align_leader_zero", "calibrate", "ensure_calibrated", "BusStats", "RetryBudget", "ServoBus",
]
