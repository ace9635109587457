"""A leader arm drives a follower through robolearn's own control loop, over two emulated buses in two
processes: the follower ends in the leader's pose, and every recorded action is what the follower sent."""

import numpy as np
import pytest

from robolearn.devices import RobotEnv
from robolearn.record.teleop import TeleopSource
from robolearn.runtime.clock import RealClock
from robolearn.runtime.loop import ControlLoop
from robolearn.spaces import STATE
from robolearn_hardware.arms import KOCH_FOLLOWER, KOCH_LEADER, SO101_FOLLOWER, SO101_LEADER, koch_follower, \
    koch_leader, so101_follower, so101_leader
from tests.hardware.rigs import PATIENT, centred_calibration, start_emulator

PAIRS = {"so101": (SO101_LEADER, so101_leader, SO101_FOLLOWER, so101_follower),
         "koch": (KOCH_LEADER, koch_leader, KOCH_FOLLOWER, koch_follower)}
# the leader's pose, in shaft ticks per servo id (the Koch leader's gripper is a spring: it stays at 50)
POSE = {1: 2048 + 300, 2: 2048 - 400, 3: 2048 + 500, 4: 2048 - 200, 5: 2048 + 700, 6: 2400}


@pytest.mark.parametrize("arm", list(PAIRS))
def test_the_follower_moves_to_the_leaders_pose(emulator, arm):
    leader_spec, make_leader, follower_spec, make_follower = PAIRS[arm]
    leader_emu, follower_emu = start_emulator(emulator, leader_spec), start_emulator(emulator, follower_spec)
    leader = make_leader(leader_emu.port, calibration=centred_calibration(leader_spec), retry=PATIENT)
    follower = make_follower(follower_emu.port, calibration=centred_calibration(follower_spec), retry=PATIENT,
                             on_disconnect="torque_off")
    env = RobotEnv(follower, control_hz=30.0)
    records = []
    with leader:
        for servo_id, ticks in POSE.items():
            if not (arm == "koch" and servo_id == 6):
                leader_emu.command("set_shaft", id=servo_id, ticks=ticks)
        loop = ControlLoop(env, TeleopSource(leader), RealClock(30.0), on_step=records.append, max_steps=45)
        loop.run_episode(seed=0)
        target = leader.get_action({})
        final = follower.read().values[STATE]
    env.close()
    assert final == pytest.approx(target, abs=1.0)
    assert abs(target[1] - (-400 * 360 / 4095)) < 0.1 and abs(target[2] - 500 * 360 / 4095 * (-1 if arm == "koch" else 1)) < 0.1
    sent = [r.action for r in records]
    goals = follower_emu.state(3)["registers"]["Goal_Position"]
    assert goals == 2048 + round(sent[-1][2] * 4095 / 360)  # the recorded action is what reached the servo
    assert len(records) == 45 and all(np.all(np.isfinite(a)) for a in sent)
    assert leader.bus.stats.failures == 0 and follower.bus.stats.failures == 0
