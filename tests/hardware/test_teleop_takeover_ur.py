"""Teleop devices on a robot (issue 13): each one's takeover key (terminal: t, gamepad: L1, SpaceMouse: a button
remapped by ``buttons=``), the Cartesian mapping onto the UR5e's joints (``kinematics="ur5e"``), and the phone's
position + pitch IK on the UR5e's DH kinematics."""

import os
import pty
import struct

import gymnasium as gym
import numpy as np
import pytest

from robolearn.errors import InvalidValueError
from robolearn_hardware.teleop import ActionMapper, GamepadTeleop, SpaceMouseTeleop, TerminalTeleop, phone_teleop
from robolearn_hardware.teleop.phone import URToolIK
from robolearn_hardware.ur.arm import UR5E_JOINT_LIMITS
from robolearn_hardware.ur.kinematics import UR5E, forward, forward_matrix

UR7 = gym.spaces.Box(np.append(-UR5E_JOINT_LIMITS, 0.0).astype(np.float32),
                     np.append(UR5E_JOINT_LIMITS, 1.0).astype(np.float32), dtype=np.float32)
Q0 = np.array([0.0, -1.571, 1.571, -1.571, -1.571, 0.0, 0.0], np.float32)  # the emulator's home pose + gripper


def test_terminal_t_and_gamepad_l1_send_takeover(hid_pair):
    master, slave = pty.openpty()
    try:
        with TerminalTeleop(gym.spaces.Box(-1, 1, (3,), np.float32), fd=slave) as dev:
            os.write(master, b"t\r")
            assert dev.events() == ["takeover", "save"]
    finally:
        os.close(master)
        os.close(slave)
    fd, feed = hid_pair
    with GamepadTeleop(UR7, path=fd) as pad:
        l1 = bytearray(64)
        l1[0], l1[1:5], l1[5], l1[6] = 1, bytes([128] * 4), 8, 0b1  # shoulder bit 0: L1
        feed.send(bytes(l1))
        assert pad.events() == ["takeover"]


def test_spacemouse_buttons_can_be_remapped_and_bad_keys_are_named(hid_pair):
    fd, feed = hid_pair
    with SpaceMouseTeleop(UR7, path=fd, six_axis=True, buttons={"button1": "takeover"}) as sm:
        feed.send(bytes([3, 0b10]))
        feed.send(bytes([3, 0b11]))
        assert sm.events() == ["takeover"]
        assert sm.gripper == 1.0  # the left button still toggles the gripper
    with pytest.raises(InvalidValueError, match=r"SpaceMouseTeleop buttons=\{'button1': 'grab'\} map to no episode "
                                                r"key; accepted keys: save, discard"):
        SpaceMouseTeleop(UR7, path=fd, buttons={"button1": "grab"})


def test_cartesian_mapping_moves_the_flange_and_keeps_its_orientation(hid_pair):
    fd, feed = hid_pair
    sm = SpaceMouseTeleop(UR7, path=fd, six_axis=True, mode="absolute", kinematics="ur5e", gripper_axis=-1,
                          step=0.01, rotation_step=0.05, origin=lambda obs: Q0)
    with sm:
        feed.send(bytes([1]) + struct.pack("<6h", 350, 0, 0, 0, 0, 0))  # full deflection along x
        q = Q0.astype(np.float64)
        for _ in range(3):
            q = sm.get_action({}).astype(np.float64)
        start, now = forward_matrix(UR5E, Q0[:6]), forward_matrix(UR5E, q[:6])
        np.testing.assert_allclose(now[:3, 3] - start[:3, 3], [0.03, 0.0, 0.0], atol=2e-4)  # 3 ticks x 1 cm
        np.testing.assert_allclose(now[:3, :3], start[:3, :3], atol=2e-4)
        assert q[6] == 0.0 and sm.mapper.unreachable == 0
        feed.send(bytes([1]) + struct.pack("<6h", 0, 0, 0, 0, 0, -350))  # yaw: the device's rz
        q2 = sm.get_action({}).astype(np.float64)
        turned = forward_matrix(UR5E, q2[:6])
        np.testing.assert_allclose(turned[:3, 3], now[:3, 3], atol=2e-4)  # turned in place
        angle = np.arccos(np.clip((np.trace(turned[:3, :3] @ now[:3, :3].T) - 1) / 2, -1, 1))
        assert angle == pytest.approx(0.05, abs=2e-3)
    far = ActionMapper(UR7, "absolute", step=5.0, gripper_axis=-1, kinematics="ur5e", origin=lambda obs: Q0)
    assert np.allclose(far({}, np.array([1.0, 0, 0, 0, 0, 0]))[:6], Q0[:6])  # 5 m away: unreachable, target stays
    assert far.unreachable == 1
    with pytest.raises(InvalidValueError, match="kinematics='ur5e' needs mode='absolute' and six joint axes"):
        ActionMapper(UR7, "delta", kinematics="ur5e", gripper_axis=-1)
    with pytest.raises(InvalidValueError, match="kinematics='ur3' is not known; accepted values: ur5e"):
        ActionMapper(UR7, "absolute", kinematics="ur3")


def test_ur_tool_ik_solves_position_and_pitch_over_five_joints():
    ik = URToolIK()
    q = Q0[:5].astype(np.float64)
    pos, pitch = ik.fk(q)
    np.testing.assert_allclose(pos, forward(UR5E, np.append(q, 0.0))[:3])
    assert pitch == pytest.approx(np.pi / 2, abs=1e-3)  # at the home pose the flange points straight down
    goal = pos + [0.05, -0.03, 0.04]
    q2, (err_m, err_pitch) = ik.solve(q, goal, pitch - 0.2)
    assert err_m < 1e-4 and err_pitch < 1e-3
    assert ik.fk(q2)[0] == pytest.approx(goal, abs=1e-4)
    phone = phone_teleop(UR7, twin="ur5e", announce=lambda url: None)
    assert phone.arm_axes == [0, 1, 2, 3, 4] and phone.roll_axis == 5 and phone.gripper_axis == 6
