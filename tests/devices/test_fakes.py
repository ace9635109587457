"""The fakes: each passes check_device, and each behaves as its docstring says (physics, lag, rate, noise)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robolearn.devices import (
    DeviceNotConnectedError,
    DeviceNotFoundError,
    FakeCamera,
    FakeForceTorqueSensor,
    FakeRobot,
    FakeTactileSensor,
    FakeTeleop,
    FakeTime,
    check_device,
    device_ids,
    make_device,
)
from robolearn.devices.fakes import counter_frame

FAKES = [FakeRobot, FakeCamera, FakeForceTorqueSensor, FakeTactileSensor, FakeTeleop]


@pytest.mark.parametrize("make", FAKES, ids=lambda c: c.__name__)
def test_every_fake_passes_check_device(make):
    check_device(make())


def test_fakes_with_options_pass_check_device():
    t = FakeTime(5.0)
    check_device(FakeRobot(n_joints=6, low=[-1, -2, -3, -1, -1, 0], high=[1, 2, 3, 1, 1, 0.1], sag=0.02, clock=t))
    check_device(FakeCamera("wrist", size=(7, 9), fps=30.0, lag=0.05, clock=t))
    check_device(FakeForceTorqueSensor(wrench=lambda s: np.full(6, 1e3), noise=1.0, lag=0.01, clock=t))
    check_device(FakeTactileSensor("left", shape=(2, 8), noise=0.5, clock=t))
    check_device(FakeTeleop(gym.spaces.Box(-1, 1, (3,), np.float32), script=[[5, 5, 5], None], events={1: "save"}))


def test_window_teleop_devices_pass_check_device(monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from robolearn.devices.teleop import KeyboardTeleop, MouseTeleop, ScriptedTeleop

    box = gym.spaces.Box(0.0, 512.0, (2,), np.float32)
    check_device(KeyboardTeleop(box))
    check_device(MouseTeleop(box, mode="absolute"))
    check_device(ScriptedTeleop(KeyboardTeleop(box), [{"tick": 0, "key": "right", "do": "down"}]))


def test_registry_finds_the_fakes_through_entry_points():
    ids = device_ids()
    assert {"fake-robot", "fake-camera", "fake-force-torque", "fake-tactile", "fake-teleop"} <= set(ids)
    camera = make_device("fake-camera", name="wrist", lag=0.03)
    assert isinstance(camera, FakeCamera) and camera.lag == 0.03
    assert list(camera.observation_space.spaces) == ["images/wrist"]
    with pytest.raises(DeviceNotFoundError, match=r"unknown device id 'fake-camra'; did you mean fake-camera"):
        make_device("fake-camra")


def test_robot_servo_moves_at_max_speed_and_sags_below_its_target():
    t = FakeTime()
    with FakeRobot(n_joints=2, start=(0.0, 0.0), max_speed=1.0, sag=(0.0, 0.1), clock=t) as robot:
        t.advance(1.0)
        np.testing.assert_array_equal(robot.read().values["state"], [0.0, 0.0])  # no target yet: it rests
        robot.send_action(np.array([0.5, 1.5], np.float32))
        t.advance(0.25)
        np.testing.assert_allclose(robot.read().values["state"], [0.25, 0.25])  # 1 rad/s on each joint
        t.advance(10.0)
        np.testing.assert_allclose(robot.read().values["state"], [0.5, 1.4])  # joint 1 settles 0.1 below
        sent = robot.send_action(np.array([9.0, -9.0], np.float32))
        np.testing.assert_array_equal(sent, [2.0, -2.0])  # clipped to the joint limits
        assert sent.dtype == np.float32
        with pytest.raises(ValueError, match=r"action has shape \(3,\); expected \(2,\)"):
            robot.send_action(np.zeros(3))
        with pytest.raises(ValueError, match="NaN or inf"):
            robot.send_action(np.array([np.nan, 0]))


def test_robot_hold_resends_the_last_target_so_the_arm_does_not_walk_down():
    t = FakeTime()
    with FakeRobot(n_joints=1, start=(1.0,), sag=0.05, clock=t) as robot:
        first = robot.hold()  # no target yet: the measured position
        np.testing.assert_array_equal(first, [1.0])
        for _ in range(100):
            t.advance(0.1)
            np.testing.assert_array_equal(robot.hold(), first)
        np.testing.assert_allclose(robot.read().values["state"], [0.95])  # one sag below the target, stable
        for _ in range(20):  # the wrong hold: the measured position as the new target
            t.advance(0.1)
            robot.send_action(robot.read().values["state"])
        assert robot.read().values["state"][0] < 0.95 - 0.5  # walks down by the sag every time


def test_disconnected_fake_says_so_in_one_sentence():
    robot = FakeRobot(name="arm")
    with pytest.raises(DeviceNotConnectedError, match=r"^FakeRobot 'arm' is not connected; call connect\(\)"):
        robot.read()


def test_camera_frames_are_numbered_stamped_at_capture_and_lagged():
    t = FakeTime(10.0)
    with FakeCamera("front", size=(20, 30), lag=0.03, clock=t) as cam:
        r0 = cam.read()
        t.advance(0.1)
        r1 = cam.read()
    assert r0.t_capture == pytest.approx(9.97) and r1.t_capture == pytest.approx(10.07)
    np.testing.assert_array_equal(r0.values["images/front"], counter_frame(0, (20, 30)))
    np.testing.assert_array_equal(r1.values["images/front"], counter_frame(1, (20, 30)))
    assert not np.array_equal(r0.values["images/front"], r1.values["images/front"])
    assert (counter_frame(7, (20, 30)) == 255).any()  # the number is drawn in white


def test_camera_at_a_frame_rate_returns_the_newest_frame_that_has_arrived():
    t = FakeTime(1.0)
    with FakeCamera(fps=10.0, lag=0.05, size=(8, 8), clock=t) as cam:
        r = cam.read()  # frames at 0.9 (arrived 0.95) and 1.0 (arrives 1.05): the newest arrived is 0.9
        assert r.t_capture == pytest.approx(0.9)
        np.testing.assert_array_equal(r.values["images/front"], counter_frame(9, (8, 8)))
        t.advance(0.05)
        assert cam.read().t_capture == pytest.approx(1.0)
        t.advance(0.04)
        assert cam.read().t_capture == pytest.approx(1.0)  # same frame until the next arrives


def test_force_torque_sensor_reads_its_wrench_with_seeded_noise_and_saturates():
    t = FakeTime(2.0)
    ft = FakeForceTorqueSensor(wrench=lambda s: [s, 0, -500, 0, 0, 1], noise=0.1, lag=0.5, seed=3, clock=t)
    with ft:
        a = ft.read()
    with ft:
        b = ft.read()
    assert a.t_capture == 1.5
    np.testing.assert_array_equal(a.values["force"], b.values["force"])  # the seed restarts at connect
    np.testing.assert_allclose(a.values["force"], [1.5, 0, -100, 0, 0, 1], atol=0.5)
    assert a.values["force"][2] == -100.0  # saturated at the sensor's range
    with pytest.raises(ValueError, match="expected 6 finite values"):
        FakeForceTorqueSensor(wrench=[1, 2, 3])


def test_tactile_sensor_blob_moves_over_time():
    t = FakeTime()
    with FakeTactileSensor("pad", shape=(5, 5), period=4.0, clock=t) as pad:
        a = pad.read().values["tactile/pad"]
        t.advance(1.0)
        b = pad.read().values["tactile/pad"]
    assert a.shape == (5, 5) and a.max() <= 1.0 and a.min() >= 0.0
    assert np.unravel_index(a.argmax(), a.shape) != np.unravel_index(b.argmax(), b.shape)


def test_fake_teleop_plays_its_script_and_events():
    dev = FakeTeleop(gym.spaces.Box(-1, 1, (2,), np.float32), script=[[0.5, 0], None, [3, 3]], events={2: ["save", "quit"]})
    with dev:
        np.testing.assert_array_equal(dev.get_action({}), [0.5, 0])
        assert dev.get_action({}) is None and dev.events() == []
        np.testing.assert_array_equal(dev.get_action({}), [1, 1])  # clipped into the space
        assert dev.events() == ["save", "quit"] and dev.events() == []
        assert dev.get_action({}) is None  # after the script: no command
    with pytest.raises(ValueError, match="accepted values: save, discard, rerecord, quit"):
        FakeTeleop(events={0: "stop"})
