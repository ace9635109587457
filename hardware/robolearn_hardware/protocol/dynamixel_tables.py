"""Control tables of the Dynamixel X-series servos used by Koch and GELLO arms (Protocol 2.0).

Addresses and sizes follow ROBOTIS' e-manual and the ``xl330_m288.model`` / ``xl430_w250.model`` files shipped
in ``dynamixel-sdk`` 4.x; names follow LeRobot's tables (``Goal_Position``). Addresses below 64 are EEPROM:
the servo refuses writes to them while ``Torque_Enable`` is 1 (Access Error). Indirect addresses (168+) are
not listed. Values are little-endian two's complement.
"""

from __future__ import annotations

from .registers import ControlTable, Register

__all__ = ["XL330_M077", "XL330_M288", "XL430_W250", "DYNAMIXEL_MODELS", "BAUD_RATES", "OperatingMode", "TICKS_PER_REV",
           "VELOCITY_UNIT_TICKS_PER_S"]

TICKS_PER_REV = 4096
# Velocity registers count 0.229 rev/min.
VELOCITY_UNIT_TICKS_PER_S = 0.229 * TICKS_PER_REV / 60.0

# Baud_Rate register code -> bits per second.
BAUD_RATES = {0: 9_600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000,
              7: 4_500_000}


class OperatingMode:
    """Operating_Mode (address 11) values."""

    CURRENT = 0
    VELOCITY = 1
    POSITION = 3
    EXTENDED_POSITION = 4
    CURRENT_BASED_POSITION = 5
    PWM = 16


def _x_series(model: str, number: int, *, xl330: bool) -> ControlTable:
    R, RW = "R", "RW"
    regs = [
        Register("Model_Number", 0, 2, R, True, number),
        Register("Model_Information", 2, 4, R, True, 0),
        Register("Firmware_Version", 6, 1, R, True, 46),
        Register("ID", 7, 1, RW, True, 1, 0, 252),
        Register("Baud_Rate", 8, 1, RW, True, 1, 0, 6 if xl330 else 7),
        Register("Return_Delay_Time", 9, 1, RW, True, 250, 0, 254),  # 2 µs units
        Register("Drive_Mode", 10, 1, RW, True, 0, 0, 13 if xl330 else 5),  # bit 0: reverse direction
        Register("Operating_Mode", 11, 1, RW, True, OperatingMode.POSITION,
                 choices=(0, 1, 3, 4, 5, 16) if xl330 else (1, 3, 4, 16)),
        Register("Secondary_ID", 12, 1, RW, True, 255, 0, 255),
        Register("Protocol_Type", 13, 1, RW, True, 2, choices=(1, 2)),
        Register("Homing_Offset", 20, 4, RW, True, 0, -1_044_479, 1_044_479, signed=True),
        Register("Moving_Threshold", 24, 4, RW, True, 10, 0, 1023),
        Register("Temperature_Limit", 31, 1, RW, True, 70 if xl330 else 72, 0, 100),
        Register("Max_Voltage_Limit", 32, 2, RW, True, 70 if xl330 else 140, *((31, 70) if xl330 else (60, 140))),
        Register("Min_Voltage_Limit", 34, 2, RW, True, 35 if xl330 else 60, *((31, 70) if xl330 else (60, 140))),
        Register("PWM_Limit", 36, 2, RW, True, 885, 0, 885),
        Register("Velocity_Limit", 44, 4, RW, True, 445 if xl330 else 265, 0, 2047 if xl330 else 1023),
        Register("Max_Position_Limit", 48, 4, RW, True, 4095, 0, 4095),
        Register("Min_Position_Limit", 52, 4, RW, True, 0, 0, 4095),
        Register("Shutdown", 63, 1, RW, True, 52, 0, 255),
        Register("Torque_Enable", 64, 1, RW, False, 0, 0, 1),
        Register("LED", 65, 1, RW, False, 0, 0, 1),
        Register("Status_Return_Level", 68, 1, RW, False, 2, 0, 2),
        Register("Registered_Instruction", 69, 1, R, False, 0),
        Register("Hardware_Error_Status", 70, 1, R, False, 0),
        Register("Velocity_I_Gain", 76, 2, RW, False, 1600 if xl330 else 1000, 0, 16383),
        Register("Velocity_P_Gain", 78, 2, RW, False, 180 if xl330 else 100, 0, 16383),
        Register("Position_D_Gain", 80, 2, RW, False, 0 if xl330 else 4000, 0, 16383),
        Register("Position_I_Gain", 82, 2, RW, False, 0, 0, 16383),
        Register("Position_P_Gain", 84, 2, RW, False, 400 if xl330 else 640, 0, 16383),
        Register("Feedforward_2nd_Gain", 88, 2, RW, False, 0, 0, 16383),
        Register("Feedforward_1st_Gain", 90, 2, RW, False, 0, 0, 16383),
        # 1..127 arms the watchdog in 20 ms units; the servo writes -1 here when it trips.
        Register("Bus_Watchdog", 98, 1, RW, False, 0, 0, 127, signed=True),
        Register("Goal_PWM", 100, 2, RW, False, 0, -885, 885, signed=True),
        Register("Goal_Velocity", 104, 4, RW, False, 0, -2047 if xl330 else -1023, 2047 if xl330 else 1023,
                 signed=True),
        Register("Profile_Acceleration", 108, 4, RW, False, 0, 0, 32767),
        Register("Profile_Velocity", 112, 4, RW, False, 0, 0, 32767),
        Register("Goal_Position", 116, 4, RW, False, 0, -1_048_575, 1_048_575, signed=True),
        Register("Realtime_Tick", 120, 2, R, False, 0),
        Register("Moving", 122, 1, R, False, 0),
        Register("Moving_Status", 123, 1, R, False, 0),
        Register("Present_PWM", 124, 2, R, False, 0, signed=True),
        Register("Present_Current" if xl330 else "Present_Load", 126, 2, R, False, 0, signed=True),
        Register("Present_Velocity", 128, 4, R, False, 0, signed=True),
        Register("Present_Position", 132, 4, R, False, 0, signed=True),
        Register("Velocity_Trajectory", 136, 4, R, False, 0, signed=True),
        Register("Position_Trajectory", 140, 4, R, False, 0, signed=True),
        Register("Present_Input_Voltage", 144, 2, R, False, 50 if xl330 else 120),  # 0.1 V
        Register("Present_Temperature", 146, 1, R, False, 30),
    ]
    if xl330:
        regs += [
            Register("Current_Limit", 38, 2, RW, True, 1750, 0, 1750),  # mA
            Register("PWM_Slope", 62, 1, RW, True, 140, 1, 255),
            Register("Goal_Current", 102, 2, RW, False, 0, -1750, 1750, signed=True),
        ]
    return ControlTable(model, number, regs, byteorder="little")


XL330_M288 = _x_series("xl330-m288", 1200, xl330=True)
XL330_M077 = _x_series("xl330-m077", 1190, xl330=True)  # the M288's table; another gear ratio (Koch/GELLO leaders)
XL430_W250 = _x_series("xl430-w250", 1060, xl330=False)

DYNAMIXEL_MODELS = {"xl330": XL330_M288, "xl330-m288": XL330_M288, "xl330-m077": XL330_M077, "xl430": XL430_W250,
                    "xl430-w250": XL430_W250}
