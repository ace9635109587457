"""``host: emulate`` for the network devices (the UR5e, the Net F/T): the emulator process is started by
``connect()``, is the device's for as long as it is connected, and is stopped by ``disconnect()`` or by a failed
``connect()``; options for it on a real host are refused."""

import os

import numpy as np
import pytest

from robolearn.devices import make_device
from robolearn.errors import CannotCompleteError, InvalidValueError


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_netft_emulate_lives_as_long_as_the_connection():
    ft = make_device("netft", host="emulate", emulator={"rate": 500, "wrench": [1, 2, 3, 0.1, 0.2, 0.3]})
    assert ft.emulator is None
    with ft:
        pid = ft.emulator.pid
        assert alive(pid) and ft.host.startswith("127.")
        np.testing.assert_allclose(ft.read().values["force"], [1, 2, 3, 0.1, 0.2, 0.3], atol=1e-3)
    assert not alive(pid) and ft.emulator is None and ft.host == "emulate"
    with pytest.raises(InvalidValueError, match=r"emulator options \['rate'\] apply to host='emulate', not to "
                                                r"host='192.168.1.1'"):
        make_device("netft", host="192.168.1.1", emulator={"rate": 500})


def test_ur5e_emulate_starts_the_controller_and_a_failed_connect_stops_it():
    pytest.importorskip("rtde_control", reason="the ur extra (ur-rtde) is not installed")
    arm = make_device("ur5e", host="emulate", gripper=True, emulator={"gripper_activation_s": 0.05})
    with arm:
        pid = arm.emulator.pid
        assert alive(pid) and arm.gripper.port == arm.emulator.ports["gripper"]
        state = arm.read().values["state"]
        assert state.shape == (7,) and state[1] == pytest.approx(-1.571, abs=1e-3)
    assert not alive(pid) and arm.emulator is None and arm.config.host == "emulate"
    off = make_device("ur5e", host="emulate", emulator={"robot_mode": "POWER_OFF"})
    with pytest.raises(CannotCompleteError, match="is not running"):
        off.connect()
    assert off.emulator is None and not off.is_connected
    with pytest.raises(InvalidValueError, match="apply to host='emulate'"):
        make_device("ur5e", host="192.168.1.10", emulator={"q0": [0] * 6})
