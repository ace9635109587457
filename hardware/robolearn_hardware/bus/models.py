"""The servo models a `ServoBus` drives and the motors of an arm: id, model, and how a reading is normalised.

Example::

    from robolearn_hardware.bus import Motor, NormMode

    motors = {"shoulder_pan": Motor(1, "sts3215"), "gripper": Motor(6, "sts3215", NormMode.RANGE_0_100)}
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from ..protocol.dynamixel_tables import XL330_M077, XL330_M288, XL430_W250
from ..protocol.feetech_tables import STS3215
from ..protocol.registers import ControlTable

__all__ = ["ServoModel", "MODELS", "NormMode", "Motor", "servo_model"]

Protocol = Literal["dynamixel", "feetech"]


@dataclass(frozen=True)
class ServoModel:
    name: str
    protocol: Protocol
    table: ControlTable
    resolution: int = 4096
    """Encoder ticks per turn."""

    @property
    def model_number(self) -> int:
        return self.table.model_number


MODELS: dict[str, ServoModel] = {
    "sts3215": ServoModel("sts3215", "feetech", STS3215),
    "xl330-m077": ServoModel("xl330-m077", "dynamixel", XL330_M077),
    "xl330-m288": ServoModel("xl330-m288", "dynamixel", XL330_M288),
    "xl430-w250": ServoModel("xl430-w250", "dynamixel", XL430_W250),
}


def servo_model(name: str) -> ServoModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"servo model {name!r} is not supported; supported: {', '.join(MODELS)}") from None


class NormMode(str, Enum):
    """How raw ticks become the numbers robolearn sees (LeRobot's MotorNormMode)."""

    DEGREES = "degrees"
    """Degrees from the middle of the calibrated range: (raw - mid) * 360 / (resolution - 1)."""
    RANGE_M100_100 = "range_m100_100"
    """The calibrated range mapped onto [-100, 100]."""
    RANGE_0_100 = "range_0_100"
    """The calibrated range mapped onto [0, 100] (grippers)."""


@dataclass(frozen=True)
class Motor:
    id: int
    model: str
    norm: NormMode = NormMode.DEGREES

    def __post_init__(self) -> None:
        servo_model(self.model)
        object.__setattr__(self, "norm", NormMode(self.norm))

    @property
    def spec(self) -> ServoModel:
        return MODELS[self.model]
