"""Every arm passes robolearn.devices' check_device against emulated servos in their own process; what
connect and disconnect do (calibration per device id, setup registers, parking a raised arm, torque off,
hold), max_relative_target, the Koch leader's gripper spring, GELLO's joint-space action, bimanual keys."""

import time

import numpy as np
import pytest

from robolearn.devices import check_device, make_device
from robolearn.spaces import STATE
from robolearn_hardware.arms import GelloLeader, KOCH_FOLLOWER, KOCH_LEADER, SO101_FOLLOWER, SO101_LEADER, \
    BimanualFollower, BimanualLeader, FollowerArm, LeaderArm, koch_follower, koch_leader, so101_follower, \
    so101_leader
from robolearn_hardware.arms import ArmConfig
from robolearn_hardware.arms.gello import gello_spec
from robolearn_hardware.bus import CalibrationError
from tests.hardware.rigs import PATIENT, ScriptedUI, centred_calibration, start_emulator, sweep_path

FAST = dict(retry=PATIENT, on_disconnect="torque_off")
ARMS = {"so101_follower": (SO101_FOLLOWER, so101_follower), "so101_leader": (SO101_LEADER, so101_leader),
        "koch_follower": (KOCH_FOLLOWER, koch_follower), "koch_leader": (KOCH_LEADER, koch_leader)}


def arm_on_emulator(emulator, kind, **config):
    spec, make = ARMS[kind]
    emu = start_emulator(emulator, spec)
    return emu, make(emu.port, calibration=centred_calibration(spec), **{**FAST, **config})


@pytest.mark.parametrize("kind,backend", [(k, "sdk") for k in ARMS] + [("so101_follower", "own"),
                                                                        ("koch_follower", "own")])
def test_every_arm_passes_the_device_contract(emulator, kind, backend):
    emu, arm = arm_on_emulator(emulator, kind, backend=backend)
    check_device(arm)
    registers = emu.state(1)["registers"]
    assert registers["Torque_Enable"] == 0 and registers["Return_Delay_Time"] == 0
    assert arm.joint_names == ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def test_gello_leader_passes_the_contract_and_reads_joint_angles(emulator):
    spec = gello_spec(6, (1, 1, -1, 1, 1, 1))
    emu = start_emulator(emulator, spec)
    arm = GelloLeader(ArmConfig(emu.port, calibration=centred_calibration(spec), **FAST), joint_signs=(1, 1, -1, 1, 1, 1))
    check_device(arm)
    with arm:
        action = arm.get_action({})
        assert action == pytest.approx(np.append(arm.reference_pose, 0.5), abs=1e-3)
        emu.command("set_shaft", id=1, ticks=2048 + 1024)  # a quarter turn
        emu.command("set_shaft", id=3, ticks=2048 + 1024)  # a quarter turn of a reversed joint
        emu.command("set_shaft", id=7, ticks=3072)  # gripper closed
        action = arm.get_action({})
    expect = arm.reference_pose + np.array([np.pi / 2, 0, -np.pi / 2, 0, 0, 0])
    assert action[:6] == pytest.approx(expect, abs=2e-3) and action[6] == pytest.approx(1.0)


def test_bimanual_arms_pass_the_contract_with_prefixed_joint_names(emulator):
    emus = [start_emulator(emulator, SO101_FOLLOWER) for _ in range(2)]
    cal = centred_calibration(SO101_FOLLOWER)
    robot = BimanualFollower(*(so101_follower(e.port, name=side, id=side, calibration=cal, **FAST)
                               for e, side in zip(emus, ("left", "right"))))
    check_device(robot)
    assert robot.joint_names[0] == "left_shoulder_pan" and robot.joint_names[-1] == "right_gripper"
    assert robot.action_space.shape == (12,) and robot.observation_space[STATE].shape == (12,)
    with robot:
        emus[1].command("set_shaft", id=6, ticks=3072)  # the right gripper, by hand (torque is on: it holds 2048)
        target = np.zeros(12, np.float32)
        target[11], target[1] = 100.0, -45.0
        sent = robot.send_action(target)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = robot.read().values[STATE]
            if abs(state[11] - 100) < 0.5 and abs(state[1] + 45) < 0.5:
                break
        assert sent == pytest.approx(target, abs=0.1) and state[[1, 11]] == pytest.approx([-45, 100], abs=0.5)
        assert emus[0].state(2)["registers"]["Goal_Position"] == 2048 - 512
        assert emus[1].state(2)["registers"]["Goal_Position"] == 2048


def test_bimanual_leaders_from_the_registry(emulator):
    emus = [start_emulator(emulator, KOCH_LEADER) for _ in range(2)]
    cal = centred_calibration(KOCH_LEADER)
    pair = make_device("bimanual-koch-leader", left_port=emus[0].port, right_port=emus[1].port, calibration=cal,
                       **FAST)
    assert isinstance(pair, BimanualLeader) and pair.joint_names[6] == "right_shoulder_pan"
    check_device(pair)


def test_registry_builds_arms_by_device_id(emulator):
    emu = start_emulator(emulator, SO101_FOLLOWER)
    arm = make_device("so101-follower", port=emu.port, id="lab_arm", calibration=centred_calibration(SO101_FOLLOWER))
    assert isinstance(arm, FollowerArm) and arm.calibration_file.name == "lab_arm.json"
    assert isinstance(make_device("koch-leader", port="/dev/null"), LeaderArm)


def test_calibration_lives_in_a_json_file_per_device_id(emulator, tmp_path):
    emu = start_emulator(emulator, SO101_FOLLOWER)
    arm = so101_follower(emu.port, id="arm7", calibration_dir=str(tmp_path), **FAST)
    with pytest.raises(CalibrationError, match=r"so101_follower 'arm7' has no calibration at .*arm7.json; calibrate"):
        arm.connect()
    assert not arm.is_connected
    travel = {i: (2048, 1400, 2700) for i in (1, 2, 3, 4, 6)}
    cal = arm.calibrate(ScriptedUI(emu, {}, sweep_path(travel)))
    assert (tmp_path / "so101_follower" / "arm7.json").exists()
    assert (cal["gripper"].homing_offset, cal["gripper"].range_min, cal["gripper"].range_max) == (1, 1399, 2699)
    registers = emu.state(6)["registers"]
    assert (registers["Max_Torque_Limit"], registers["Protection_Current"], registers["Overload_Torque"]) == (500, 250, 25)
    with arm:
        assert arm.read().values[STATE][5] == pytest.approx(100 * (2047 - 1399) / 1300, abs=0.1)
    ui = ScriptedUI(emu)
    assert arm.calibrate(ui) == cal and ui.waits == []  # saved and held: nothing to ask


def test_a_raised_follower_is_parked_before_torque_goes_off(emulator):
    emu, arm = arm_on_emulator(emulator, "koch_follower", on_disconnect="park", park_speed=180.0)
    with arm:
        start = arm.read().values[STATE]
        raised = start.copy()
        raised[1] = 60.0  # shoulder_lift up
        arm.send_action(raised)
        deadline = time.monotonic() + 5
        while abs(arm.read().values[STATE][1] - 60.0) > 1.0 and time.monotonic() < deadline:
            pass
        t0 = time.monotonic()
    parked_s = time.monotonic() - t0
    state = emu.state(2)
    assert state["registers"]["Torque_Enable"] == 0 and state["registers"]["Bus_Watchdog"] == 0
    assert abs(state["shaft"] - 2048) < 25  # back at the pose it had at connect, then torque off
    assert parked_s >= 60.0 / 180.0 * 0.9  # moved slowly, not dropped


@pytest.mark.parametrize("mode", ["torque_off", "hold"])
def test_disconnect_without_parking(emulator, mode):
    emu, arm = arm_on_emulator(emulator, "koch_follower", on_disconnect=mode)
    with arm:
        arm.send_action(np.array([0, 30, 0, 0, 0, 50], np.float32))
        deadline = time.monotonic() + 5
        # within 0.5 deg (5.7 ticks) before disconnecting: with torque off the shaft stays where it was
        while abs(arm.read().values[STATE][1] - 30) > 0.5 and time.monotonic() < deadline:
            pass
    time.sleep(0.3)  # longer than the watchdog: a held arm must not be stopped by it
    registers = emu.state(2)["registers"]
    assert registers["Torque_Enable"] == (1 if mode == "hold" else 0) and registers["Bus_Watchdog"] == 0
    assert abs(emu.state(2)["shaft"] - (2048 + 341)) < 10


def test_max_relative_target_limits_each_step(emulator):
    emu, arm = arm_on_emulator(emulator, "so101_follower", max_relative_target=10.0)
    with arm:
        arm.read()
        sent = arm.send_action(np.array([90, -90, 5, 0, 0, 80], np.float32))  # the gripper reads 50 now
        assert sent == pytest.approx([10, -10, 5, 0, 0, 60], abs=0.1)
        assert arm.hold() == pytest.approx(sent)


def test_koch_leader_gripper_is_a_spring_and_the_rest_is_free(emulator):
    emu, arm = arm_on_emulator(emulator, "koch_leader")
    with arm:
        registers = {i: emu.state(i)["registers"] for i in (1, 6)}
        assert registers[6]["Torque_Enable"] == 1 and registers[6]["Operating_Mode"] == 5
        assert registers[1]["Torque_Enable"] == 0 and registers[1]["Operating_Mode"] == 4
        assert registers[6]["Goal_Position"] == 2048 and registers[6]["Bus_Watchdog"] == 10
        emu.command("set_shaft", id=3, ticks=2048 + 1024)  # elbow_flex is mounted reversed on the leader
        assert arm.get_action({})[2] == pytest.approx(-90.0, abs=0.1)
    assert emu.state(6)["registers"]["Torque_Enable"] == 0
