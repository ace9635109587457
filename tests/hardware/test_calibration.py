"""Calibration: normalisation round trips, offset overflow and wrap-around, the procedure against emulated
servos (Feetech and Dynamixel), files per device id, no question when nothing changed, leader zero alignment."""

import json

import numpy as np
import pytest

from robolearn_hardware.arms import KOCH_LEADER, SO101_LEADER
from robolearn_hardware.bus import CalibrationError, Motor, MotorCalibration, NormMode, ServoBus, align_leader_zero, \
    calibrate, ensure_calibrated, load_calibration, normalize, save_calibration, unnormalize, wrap_offset
from robolearn_hardware.bus.calibration import homing_offset_for
from tests.hardware.rigs import PATIENT, ScriptedUI, centred_calibration, start_emulator, sweep_path


@pytest.mark.parametrize("norm", list(NormMode))
@pytest.mark.parametrize("drive_mode", [0, 1])
def test_raw_to_normalised_to_raw_is_exact_for_every_tick_of_the_range(norm, drive_mode):
    motor = Motor(1, "sts3215", norm)
    cal = MotorCalibration(1, drive_mode, 0, 700, 3300)
    for raw in range(700, 3301):
        assert unnormalize(motor, cal, normalize(motor, cal, raw)) == raw
    lo, hi = normalize(motor, cal, 700), normalize(motor, cal, 3300)
    expect = {NormMode.DEGREES: (-1300 * 360 / 4095, 1300 * 360 / 4095), NormMode.RANGE_M100_100: (-100, 100),
              NormMode.RANGE_0_100: (0, 100)}[norm]
    assert (lo, hi) == pytest.approx(expect[::-1] if drive_mode else expect)
    assert unnormalize(motor, cal, 1e6) in (700, 3300) and unnormalize(motor, cal, -1e6) in (700, 3300)


def test_offsets_past_the_register_wrap_by_whole_turns():
    assert wrap_offset(2114, -2047, 2047) == 2114 - 4096  # LeRobot #1296: "Magnitude 2114 exceeds 2047"
    assert wrap_offset(-2100, -2047, 2047) == -2100 + 4096
    assert wrap_offset(1000, -2047, 2047) == 1000
    assert wrap_offset(2048, -2047, 2047) in (-2047, 2047)  # half a turn: the nearest one held, one tick off
    assert homing_offset_for("feetech", 4095) == -2047  # 4095 - 2047 = 2048 does not fit 11 bits
    assert homing_offset_for("feetech", 0) == -2047 and homing_offset_for("dynamixel", 5000) == 2047 - 5000


def test_calibration_files_round_trip_and_are_never_overwritten_silently(tmp_path):
    cal = centred_calibration(SO101_LEADER)
    path = save_calibration(tmp_path / "so101_leader" / "arm1.json", cal)
    assert load_calibration(path) == cal
    assert json.loads(path.read_text())["gripper"] == {"id": 6, "drive_mode": 0, "homing_offset": 0,
                                                       "range_min": 1024, "range_max": 3072}
    with pytest.raises(CalibrationError, match="already exists; pass overwrite=True"):
        save_calibration(path, cal)
    changed = {**cal, "gripper": MotorCalibration(6, 1, 5, 1000, 3000)}
    save_calibration(path, changed, overwrite=True)
    assert load_calibration(path)["gripper"].drive_mode == 1
    path.write_text('{"gripper": {"id": 6}}')
    with pytest.raises(CalibrationError, match="motor 'gripper' has"):
        load_calibration(path)


def _so101_bus(emu):
    bus = ServoBus(emu.port, dict(SO101_LEADER.motors), retry=PATIENT)
    bus.connect()
    return bus


def test_procedure_on_feetech_handles_overflow_an_old_offset_and_a_travel_across_the_wrap(emulator):
    emu = start_emulator(emulator, SO101_LEADER)
    bus = _so101_bus(emu)
    try:
        bus.write("Homing_Offset", "elbow_flex", 1900)  # left by an earlier calibration: must not add up (#1296)
        middle = {1: 2048, 2: 1000, 3: 3000, 4: 4095, 5: 300, 6: 2048}
        travel = {1: (2048, 1200, 2900), 2: (1000, 600, 3200),  # shoulder_lift's travel crosses the wrap (#3587)
                  3: (3000, 2500, 3600), 4: (4095, 3500, 4600), 6: (2048, 1800, 3000)}
        ui = ScriptedUI(emu, middle, sweep_path(travel))
        cal = calibrate(bus, ui, full_turn=("wrist_roll",), sample_period_s=0.0)
        assert cal["shoulder_pan"].homing_offset == 1 and cal["elbow_flex"].homing_offset == 3000 - 2047
        assert cal["wrist_flex"].homing_offset == -2047  # 4095 - 2047 overflows 11 bits: wrapped
        assert cal["wrist_roll"].range_min == 0 and cal["wrist_roll"].range_max == 4095
        lift = cal["shoulder_lift"]
        assert any("shoulder_lift: its travel crossed" in m for m in ui.told)
        assert 0 <= lift.range_min < lift.range_max <= 4095 and lift.range_max - lift.range_min == 2600
        for n, c in cal.items():
            assert 0 <= c.range_min < c.range_max <= 4095, n
        assert bus.is_calibrated(cal) and bus.read_calibration() == cal
        # the travel now reads without a jump: low end < middle < high end, and the middle pose reads 2047
        for shaft, expect in ((600, lift.range_min), (3200, lift.range_max)):
            emu.command("set_shaft", id=2, ticks=shaft)
            assert bus.read("Present_Position", "shoulder_lift") == expect
        emu.command("set_shaft", id=3, ticks=3000)
        assert bus.read("Present_Position", "elbow_flex") == 2047
        assert bus.read_positions(["elbow_flex"])["elbow_flex"] == pytest.approx(
            (2047 - (cal["elbow_flex"].range_min + cal["elbow_flex"].range_max) / 2) * 360 / 4095)
    finally:
        bus.disconnect()


def test_procedure_refuses_a_joint_that_did_not_move_or_turned_a_whole_turn(emulator):
    emu = start_emulator(emulator, SO101_LEADER)
    bus = _so101_bus(emu)
    try:
        still = ScriptedUI(emu, {}, sweep_path({1: (2048, 1500, 2500)}))
        with pytest.raises(CalibrationError, match="motor 'shoulder_lift' moved 0 ticks during the sweep"):
            calibrate(bus, still, full_turn=("wrist_roll",), sample_period_s=0.0)
        spin = ScriptedUI(emu, {}, sweep_path({i: (2048, 1000, 3000) for i in (1, 2, 3, 4, 6)}, steps=4)
                          + sweep_path({3: (2048, 2048, 2048 + 4500)}, steps=6))
        with pytest.raises(CalibrationError, match="motor 'elbow_flex' turned a whole turn"):
            calibrate(bus, spin, full_turn=("wrist_roll",), sample_period_s=0.0)
    finally:
        bus.disconnect()


def test_procedure_on_dynamixel_extended_position_and_drive_mode(emulator):
    emu = start_emulator(emulator, KOCH_LEADER, positions=[5000, 2048, 2048, 2048, 2048, 2048])
    bus = ServoBus(emu.port, dict(KOCH_LEADER.motors), retry=PATIENT)
    bus.connect()
    try:
        for n in bus.motors:
            bus.write("Operating_Mode", n, 4)
        travel = {2: (2048, 1500, 2600), 3: (2048, 1000, 3500), 4: (2048, 1800, 4600), 6: (2048, 2000, 2400)}
        ui = ScriptedUI(emu, {1: 5000}, sweep_path(travel))
        cal = calibrate(bus, ui, full_turn=KOCH_LEADER.full_turn, drive_modes=KOCH_LEADER.drive_modes,
                        sample_period_s=0.0)
        assert cal["shoulder_pan"].homing_offset == 2047 - 5000  # a multi-turn reading: no wrap needed
        assert cal["elbow_flex"].drive_mode == 1 and cal["shoulder_lift"].drive_mode == 0
        assert any("wrist_flex: its travel crossed" in m for m in ui.told)  # 4600 - 1 > 4095 in the homed frame
        assert bus.is_calibrated(cal)
        before = bus.read_positions(["elbow_flex"])["elbow_flex"]
        emu.command("set_shaft", id=3, ticks=2148)
        assert bus.read_positions(["elbow_flex"])["elbow_flex"] == pytest.approx(before - 100 * 360 / 4095)  # reversed
    finally:
        bus.disconnect()


def test_ensure_calibrated_asks_nothing_when_the_motors_hold_the_file(emulator, tmp_path):
    emu = start_emulator(emulator, SO101_LEADER)
    bus = _so101_bus(emu)
    path = tmp_path / "so101_leader" / "arm.json"
    travel = {i: (2048, 1500, 2600) for i in (1, 2, 3, 4, 6)}
    try:
        first = ScriptedUI(emu, {}, sweep_path(travel))
        cal = ensure_calibrated(bus, path, first, full_turn=("wrist_roll",), sample_period_s=0.0)
        assert load_calibration(path) == cal and len(first.waits) == 2
        again = ScriptedUI(emu)
        assert ensure_calibrated(bus, path, again, full_turn=("wrist_roll",)) == cal
        assert again.waits == [] and again.choices == []  # LeRobot #1342: nothing changed, nothing asked
        bus.write("Homing_Offset", "gripper", 77)  # the motors lost it (swapped servo, another tool)
        restore = ScriptedUI(emu, answers=["w"])
        assert ensure_calibrated(bus, path, restore, full_turn=("wrist_roll",)) == cal
        assert list(restore.choices[0][1]) == ["w"] and bus.is_calibrated(cal)
        bus.write("Homing_Offset", "gripper", 77)
        redo = ScriptedUI(emu, {}, sweep_path(travel), answers=["c"])
        ensure_calibrated(bus, path, redo, overwrite=True, full_turn=("wrist_roll",), sample_period_s=0.0)
        assert list(redo.choices[0][1]) == ["w", "c"] and len(redo.waits) == 2
    finally:
        bus.disconnect()


def test_leader_zero_is_aligned_to_the_follower_in_the_same_pose(emulator):
    emu = start_emulator(emulator, SO101_LEADER)
    bus = ServoBus(emu.port, dict(SO101_LEADER.motors), retry=PATIENT, calibration=centred_calibration(SO101_LEADER))
    bus.connect()
    try:
        bus.write_calibration(bus.calibration)
        emu.command("set_shaft", id=5, ticks=2048 + 341)  # wrist_roll 30 degrees off the follower (#3193)
        follower = {n: 0.0 for n in bus.motors if n != "gripper"}
        moved = align_leader_zero(bus, follower, tolerance=1.0)
        assert list(moved) == ["wrist_roll"] and moved["wrist_roll"] == pytest.approx(30.0, abs=0.1)
        q = bus.read_positions()
        assert all(abs(q[n]) < 0.1 for n in follower) and bus.is_calibrated()
        assert bus.calibration["wrist_roll"].range_min == 0 and bus.calibration["wrist_roll"].range_max == 4095
    finally:
        bus.disconnect()
