"""A leader arm is a `DrivableTeleop`: before a takeover it is servoed to the follower's target on the emulated
bus (a bounded step per call, torque on), and released afterwards: torque off again except where it was on before
(the Koch leader's gripper spring, its goal restored)."""

import time

import numpy as np
import pytest

from robolearn.devices.protocols import DrivableTeleop
from robolearn_hardware.arms import KOCH_LEADER, SO101_LEADER, koch_leader, so101_leader
from tests.hardware.rigs import PATIENT, centred_calibration, start_emulator


def drive_until_agreed(arm, target, tolerance=1.0, timeout_s=20.0):
    """Call drive_to once per 'tick' until the leader's command is within `tolerance` of `target`."""
    deadline, calls = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        arm.drive_to(target)
        calls += 1
        if np.max(np.abs(arm.get_action({}) - target)) <= tolerance:
            return calls
        time.sleep(0.02)
    raise AssertionError(f"the leader did not reach {target} within {timeout_s} s: at {arm.get_action({})}")


def test_so101_leader_is_driven_to_the_follower_and_released(emulator):
    emu = start_emulator(emulator, SO101_LEADER)
    arm = so101_leader(emu.port, calibration=centred_calibration(SO101_LEADER), retry=PATIENT, max_relative_target=4.0)
    assert isinstance(arm, DrivableTeleop)
    with arm:
        start = arm.get_action({})
        assert all(emu.state(i)["registers"]["Torque_Enable"] == 0 for i in range(1, 7))  # free to move by hand
        target = start + np.array([20.0, -15.0, 10.0, 0.0, -8.0, 12.0], np.float32)
        arm.drive_to(target)
        goal = emu.state(1)["registers"]["Goal_Position"]
        assert abs((goal - 2048) * 360 / 4095 - (start[0] + 4.0)) < 0.2  # one call: at most max_relative_target
        assert all(emu.state(i)["registers"]["Torque_Enable"] == 1 for i in range(1, 7))
        calls = drive_until_agreed(arm, target)
        assert calls >= 5  # 20 degrees at 4 per call
        arm.release()
        assert all(emu.state(i)["registers"]["Torque_Enable"] == 0 for i in range(1, 7))
        emu.command("set_shaft", id=1, ticks=2048)  # the person moves it again
        assert arm.get_action({})[0] == pytest.approx(0.0, abs=0.2)
        arm.release()  # nothing driven: nothing to do
        with pytest.raises(Exception, match="action has shape \\(3,\\); expected \\(6,\\)"):
            arm.drive_to(np.zeros(3, np.float32))


def test_koch_leader_release_keeps_its_gripper_spring(emulator):
    emu = start_emulator(emulator, KOCH_LEADER)
    arm = koch_leader(emu.port, calibration=centred_calibration(KOCH_LEADER), retry=PATIENT)
    with arm:
        spring_goal = emu.state(6)["registers"]["Goal_Position"]
        target = arm.get_action({}) + np.array([10.0, 0, 0, 0, 0, 0], np.float32)
        drive_until_agreed(arm, target)
        assert emu.state(1)["registers"]["Torque_Enable"] == 1
        arm.release()
        assert emu.state(1)["registers"]["Torque_Enable"] == 0
        assert emu.state(6)["registers"]["Torque_Enable"] == 1 and emu.state(6)["registers"]["Goal_Position"] == \
            spring_goal
