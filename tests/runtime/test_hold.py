"""The loop holds when its source gives no command: the env's hold_action, never a zero action."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robolearn.devices import FakeRobot, FakeTime, RobotEnv
from robolearn.runtime import ControlLoop, StepRecord, VirtualClock, hold_action

HZ = 10.0


class Script:
    """Commands from a list (None: no command), advancing the devices' clock one period per tick."""

    def __init__(self, t: FakeTime, commands):
        self.t, self.commands = t, list(commands)

    def reset(self, seed=None):
        pass

    def act(self, obs, tick):
        self.t.advance(1.0 / HZ)
        return self.commands[tick] if tick < len(self.commands) else None


def run(env, source, steps):
    records: list[StepRecord] = []
    result = ControlLoop(env, source, VirtualClock(HZ), on_step=records.append, max_steps=steps).run_episode(seed=0)
    return result, records


def test_loop_holds_the_last_target_when_the_source_goes_quiet():
    t = FakeTime()
    env = RobotEnv(FakeRobot(low=0.0, high=2.0, start=(1.5, 1.5, 1.5), sag=0.05, clock=t), control_hz=HZ)
    target = np.array([1.8, 0.4, 1.0], np.float32)
    result, records = run(env, Script(t, [target]), 300)
    assert result.holds == 299
    for rec in records:
        np.testing.assert_array_equal(rec.action, target)  # what the env applied: the target, every tick
    final = env.robot.read().values["state"]
    np.testing.assert_allclose(final, target - 0.05, atol=1e-6)  # settled one sag below, no drift
    env.close()


def test_hold_before_any_command_is_where_the_robot_is_not_zero():
    t = FakeTime()
    env = RobotEnv(FakeRobot(low=-1.0, high=1.0, start=(0.7, -0.6, 0.2), clock=t), control_hz=HZ)
    result, records = run(env, Script(t, []), 20)
    assert result.holds == 20
    for rec in records:
        np.testing.assert_allclose(rec.action, [0.7, -0.6, 0.2], rtol=1e-6)  # zeros would drive it to the centre
    np.testing.assert_allclose(env.robot.read().values["state"], [0.7, -0.6, 0.2], rtol=1e-6)
    env.close()


def test_an_env_without_a_hold_cannot_be_held():
    class NoHold(gym.Env):
        observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (2,), np.float32)})
        action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

        def reset(self, *, seed=None, options=None):
            return {"state": np.zeros(2, np.float32)}, {}

        def step(self, action):
            return {"state": np.zeros(2, np.float32)}, 0.0, False, False, {}

    with pytest.raises(TypeError, match=r"NoHold has no hold_action\(\); every robolearn env defines one"):
        run(NoHold(), Script(FakeTime(), []), 3)
    with pytest.raises(TypeError, match="NoHold has no hold_action"):
        hold_action(NoHold())


def test_an_expert_with_no_command_is_held_too():
    from robolearn.runtime import ExpertSource

    class Idle:
        def reset(self):
            pass

        def act(self, obs):
            return None

    t = FakeTime()
    env = RobotEnv(FakeRobot(start=(0.1, 0.2, 0.3), clock=t), control_hz=HZ)
    result, records = run(env, ExpertSource(Idle()), 5)
    assert result.holds == 5
    np.testing.assert_allclose(records[-1].action, [0.1, 0.2, 0.3], rtol=1e-6)
    env.close()
