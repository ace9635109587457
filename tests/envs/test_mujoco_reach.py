"""robolearn/mujoco-reach: conformance, absolute 3-D position actions, expert success."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import robolearn_envs  # noqa: F401  (registers the ids)
from robolearn.env import check_env_conformance, check_upright
from robolearn_envs.mujoco.reach import HIGH, LOW, SUCCESS_RADIUS

ENV_ID = "robolearn/mujoco-reach"


@pytest.fixture
def env():
    env = gymnasium.make(ENV_ID)
    yield env
    env.close()


def test_conformance_and_upright(env):
    check_env_conformance(env)
    env.reset(seed=0)
    check_upright(env, "top")


def test_spaces(env):
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
    assert env.observation_space["state"].shape == (6,)
    assert env.observation_space["images/front"].shape == (64, 64, 3)
    assert gymnasium.registry[ENV_ID].max_episode_steps == 50


def test_action_is_absolute_position(env):
    env.reset(seed=0)
    task = env.unwrapped.task
    task.set_target(np.array([0.2, 0.2, 0.23]))  # out of the way
    env.unwrapped.sim.forward()
    for action, goal in (((-1, -1, -1), LOW), ((1, 1, 1), HIGH), ((0, 0, 0), (LOW + HIGH) / 2)):
        for _ in range(16):  # the longest move, 0.6 m, takes 12 steps at 5 cm per step
            obs, *_ = env.step(np.array(action, np.float32))
        np.testing.assert_allclose(obs["state"][:3], goal, atol=0.003)


def test_expert_succeeds(env):
    expert = env.unwrapped.get_expert()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        for _ in range(50):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        assert info["success"] and terminated and reward == 1.0, seed
        assert np.linalg.norm(obs["state"][:3] - obs["state"][3:]) < SUCCESS_RADIUS


def test_drawn_effector_is_where_the_state_says(env):
    """The state is the effector's world position: what the cameras show matches what the policy reads."""
    obs, _ = env.reset(seed=3)
    sim = env.unwrapped.task.sim
    for _ in range(3):
        world = sim.data.xpos[sim.id("body", "effector")]
        np.testing.assert_allclose(obs["state"][:3], world, atol=1e-6)
        obs, *_ = env.step(env.action_space.sample())


def test_info_reports_the_applied_action_and_lagged_stamps():
    from tests.envs.conftest import check_applied_action_and_stamps

    env = gymnasium.make(ENV_ID, cameras=("front",), sensor_latency_s={"images/front": 0.03})
    try:
        check_applied_action_and_stamps(env, [2.0, -3.0, 0.5], [1.0, -1.0, 0.5], {"images/front": 0.03})
    finally:
        env.close()


def test_a_bad_sensor_latency_is_refused():
    with pytest.raises(ValueError, match="sensor_latency_s names 'images/side', which is not an observation key"):
        gymnasium.make(ENV_ID, sensor_latency_s={"images/side": 0.1})
    with pytest.raises(ValueError, match=r"sensor_latency_s\['state'\] = -0.1: a latency is a finite number"):
        gymnasium.make(ENV_ID, sensor_latency_s={"state": -0.1})


def test_hold_starts_at_the_measured_position_and_keeps_the_last_target(env):
    from robolearn.runtime import ControlLoop, VirtualClock

    obs, _ = env.reset(seed=3)
    ramp = env.unwrapped.task.ramp
    np.testing.assert_allclose(ramp.to_world(env.unwrapped.hold_action()), obs["state"][:3], atol=1e-6)

    target = np.array([0.5, -0.5, 0.8], np.float32)

    class OnceThenQuiet:  # one command, then nothing: the loop holds
        def reset(self, seed=None):
            pass

        def act(self, obs, tick):
            return target if tick == 0 else None

    result = ControlLoop(env, OnceThenQuiet(), VirtualClock(10.0), max_steps=40).run_episode(seed=3)
    assert result.holds == 39 and not result.terminated
    np.testing.assert_array_equal(env.unwrapped.hold_action(), target)
    np.testing.assert_allclose(env.unwrapped.task.effector_xyz, ramp.to_world(target), atol=2e-3)  # there, not back
