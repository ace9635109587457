"""Control table of the Feetech STS3215 (SO-100/SO-101 arms), protocol "end" 0: little-endian.

Addresses follow LeRobot's ``STS_SMS_SERIES_CONTROL_TABLE`` (from Feetech's STS/SMS e-manual). Addresses
below 40 and the factory block from 80 are EEPROM. Signed registers are sign-magnitude: bit 15 for positions,
velocities and current, bit 11 for ``Homing_Offset`` (so |offset| <= 2047: LeRobot issues #1296/#3193),
bit 10 for ``Present_Load``. ``Present_Position = Actual_Position - Homing_Offset`` (Dynamixel adds it).

``Lock`` (55): with Lock = 1 writes to EEPROM registers take effect but are not saved, so a power cycle
restores the saved values; with Lock = 0 they are saved (Feetech's memory table).
"""

from __future__ import annotations

from .registers import ControlTable, Register

__all__ = ["STS3215", "FEETECH_MODELS", "BAUD_RATES", "StsMode", "STATUS_BITS"]

# Baud_Rate register code -> bits per second (STS/SMS series).
BAUD_RATES = {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 57_600, 6: 38_400, 7: 19_200}

# Status register (65) bits, also the status packet's error byte.
STATUS_BITS = {"voltage": 1, "angle_sensor": 2, "overheat": 4, "overcurrent": 8, "overload": 32}


class StsMode:
    """Operating_Mode (address 33) values."""

    POSITION = 0
    VELOCITY = 1
    PWM = 2
    STEP = 3


def _sts3215() -> ControlTable:
    R, RW = "R", "RW"
    regs = [
        Register("Firmware_Major_Version", 0, 1, R, True, 3),
        Register("Firmware_Minor_Version", 1, 1, R, True, 9),
        Register("Model_Number", 3, 2, R, True, 777),
        Register("ID", 5, 1, RW, True, 1, 0, 253),
        Register("Baud_Rate", 6, 1, RW, True, 0, 0, 7),
        Register("Return_Delay_Time", 7, 1, RW, True, 250, 0, 254),  # 2 µs units
        Register("Response_Status_Level", 8, 1, RW, True, 1, 0, 1),
        Register("Min_Position_Limit", 9, 2, RW, True, 0, 0, 4095),
        Register("Max_Position_Limit", 11, 2, RW, True, 4095, 0, 4095),
        Register("Max_Temperature_Limit", 13, 1, RW, True, 70, 0, 100),
        Register("Max_Voltage_Limit", 14, 1, RW, True, 80, 0, 254),
        Register("Min_Voltage_Limit", 15, 1, RW, True, 40, 0, 254),
        Register("Max_Torque_Limit", 16, 2, RW, True, 1000, 0, 1000),
        Register("Phase", 18, 1, RW, True, 12, 0, 254),
        Register("Unloading_Condition", 19, 1, RW, True, 44, 0, 254),
        Register("LED_Alarm_Condition", 20, 1, RW, True, 47, 0, 254),
        Register("P_Coefficient", 21, 1, RW, True, 32, 0, 254),
        Register("D_Coefficient", 22, 1, RW, True, 32, 0, 254),
        Register("I_Coefficient", 23, 1, RW, True, 0, 0, 254),
        Register("Minimum_Startup_Force", 24, 2, RW, True, 16, 0, 1000),
        Register("CW_Dead_Zone", 26, 1, RW, True, 1, 0, 32),
        Register("CCW_Dead_Zone", 27, 1, RW, True, 1, 0, 32),
        Register("Protection_Current", 28, 2, RW, True, 500, 0, 511),
        Register("Angular_Resolution", 30, 1, RW, True, 1, 1, 3),
        Register("Homing_Offset", 31, 2, RW, True, 0, sign_bit=11),
        Register("Operating_Mode", 33, 1, RW, True, StsMode.POSITION, 0, 3),
        Register("Protective_Torque", 34, 1, RW, True, 20, 0, 100),
        Register("Protection_Time", 35, 1, RW, True, 200, 0, 254),
        Register("Overload_Torque", 36, 1, RW, True, 80, 0, 100),
        Register("Velocity_closed_loop_P_proportional_coefficient", 37, 1, RW, True, 10, 0, 100),
        Register("Over_Current_Protection_Time", 38, 1, RW, True, 200, 0, 254),
        Register("Velocity_closed_loop_I_integral_coefficient", 39, 1, RW, True, 200, 0, 254),
        # 128 = "make the present position the middle": Homing_Offset is recomputed so Present reads 2048.
        Register("Torque_Enable", 40, 1, RW, False, 0, choices=(0, 1, 128)),
        Register("Acceleration", 41, 1, RW, False, 0, 0, 254),  # 100 steps/s^2 units
        Register("Goal_Position", 42, 2, RW, False, 0, sign_bit=15),
        Register("Goal_Time", 44, 2, RW, False, 0, sign_bit=11),  # PWM mode: duty in 0.1 %, bit 11 = direction
        Register("Goal_Velocity", 46, 2, RW, False, 0, sign_bit=15),  # steps/s; 0 = fastest in position mode
        Register("Torque_Limit", 48, 2, RW, False, 1000, 0, 1000),
        Register("Lock", 55, 1, RW, False, 0, 0, 1),
        Register("Present_Position", 56, 2, R, False, 0, sign_bit=15),
        Register("Present_Velocity", 58, 2, R, False, 0, sign_bit=15),
        Register("Present_Load", 60, 2, R, False, 0, sign_bit=10),  # 0.1 % of max torque
        Register("Present_Voltage", 62, 1, R, False, 74),  # 0.1 V
        Register("Present_Temperature", 63, 1, R, False, 30),
        Register("Async_Write_Flag", 64, 1, R, False, 0),
        Register("Status", 65, 1, R, False, 0),
        Register("Moving", 66, 1, R, False, 0),
        Register("Present_Current", 69, 2, R, False, 0, sign_bit=15),  # 6.5 mA units
        Register("Moving_Velocity_Threshold", 80, 1, RW, True, 1, 0, 254),
        Register("DTs", 81, 1, RW, True, 1, 0, 254),
        Register("Velocity_Unit_factor", 82, 1, RW, True, 1, 0, 254),
        Register("Hts", 83, 1, RW, True, 0, 0, 254),
        Register("Maximum_Velocity_Limit", 84, 1, RW, True, 30, 0, 254),  # 100 steps/s units
        Register("Maximum_Acceleration", 85, 1, RW, True, 254, 0, 254),
        Register("Acceleration_Multiplier", 86, 1, RW, True, 0, 0, 254),
    ]
    return ControlTable("sts3215", 777, regs, byteorder="little")


STS3215 = _sts3215()

FEETECH_MODELS = {"sts3215": STS3215}
