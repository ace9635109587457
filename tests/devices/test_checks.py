"""check_device against deliberately broken devices: each fails, and the message says what is wrong."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

from robolearn.devices import DeviceConformanceError, FakeCamera, FakeRobot, FakeTime, Reading, check_device


def _expect(device, pattern: str) -> None:
    with pytest.raises(DeviceConformanceError, match=pattern):
        check_device(device)


class NoClipRobot(FakeRobot):
    def send_action(self, action):
        super().send_action(action)
        return np.asarray(action, np.float32)  # claims to have sent what it was asked


class RereadHoldRobot(FakeRobot):
    def hold(self):
        self._require_connected("hold()")
        return self.send_action(self.read().values["state"])  # the measured position: the arm walks down


class SilentWhenDisconnected(FakeCamera):
    def read(self):
        if not self.is_connected:
            return Reading({self.key: np.zeros(self.observation_space[self.key].shape, np.uint8)}, 0.0)
        return super().read()


class BackwardsCamera(FakeCamera):
    def read(self):
        reading = super().read()
        return Reading(reading.values, -float(self._reads))


class StickyCamera(FakeCamera):
    def __exit__(self, *exc):
        pass  # forgets to disconnect


def test_robot_that_does_not_report_the_clipped_action():
    _expect(NoClipRobot(name="arm"), r"NoClipRobot 'arm'.send_action\(\[6.0, 6.0, 6.0\]\) returned \[6.0, 6.0, 6.0\], "
                                     r"outside Box.*expected the command really sent \(clipped\)")


def test_robot_whose_hold_rereads_the_measured_position():
    ticks = itertools.count()
    _expect(RereadHoldRobot(sag=0.1, start=(0.5, 0.5, 0.5), clock=lambda: 0.1 * next(ticks)),
            r"hold\(\) sent \[0.4.*\] after sending \[0.5, 0.5, 0.5\]; expected the same target again \(the last "
            r"target sent, not a fresh reading")
    # Without time passing the arm cannot sag between two holds: the check still catches it after a command.
    _expect(RereadHoldRobot(sag=0.1, clock=FakeTime()), r"hold\(\) sent \[0.0, 0.0, 0.0\] after send_action sent "
                                                        r"\[2.0, 2.0, 2.0\]; expected that last target again")


def test_device_that_works_while_disconnected():
    _expect(SilentWhenDisconnected("cam"), r"SilentWhenDisconnected 'cam'.read\(\) while disconnected \(after "
                                           r"construction\) returned; expected DeviceNotConnectedError")


def test_camera_whose_stamps_go_back():
    _expect(BackwardsCamera("cam"), r"read\(\) #1 has t_capture -2.0, earlier than the previous read's -1.0")


def test_camera_that_stays_connected_after_an_exception():
    _expect(StickyCamera("cam"), r"still connected after an exception inside `with device:`")


def test_value_outside_its_space_names_the_key():
    class Overexposed(FakeCamera):
        def read(self):
            r = super().read()
            return Reading({self.key: r.values[self.key].astype(np.float32)}, r.t_capture)

    _expect(Overexposed("cam"), r"'images/cam' from Overexposed 'cam'.read\(\) #0 has dtype float32; expected uint8")


def test_bad_key_in_observation_space():
    camera = FakeCamera("cam")
    camera.observation_space = gym.spaces.Dict({"rgb": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8)})
    _expect(camera, r"observation_space key 'rgb' breaks the feature rules")


def test_not_a_device_at_all():
    _expect(object(), r"is none of Robot, Sensor .* or Teleop")
