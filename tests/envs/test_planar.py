"""robolearn/planar-catch: conformance, velocity actions, the pillar, the bimodal expert."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import robolearn_envs  # noqa: F401  (registers the ids)
from robolearn.env import check_env_conformance
from robolearn_envs.planar.catch import CATCH_RADIUS, EXPERT_MAX_CHANGE, PILLAR_RADIUS, PILLAR_XY, STEP

ENV_ID = "robolearn/planar-catch"


@pytest.fixture
def env():
    env = gymnasium.make(ENV_ID)
    yield env
    env.close()


def test_conformance(env):
    check_env_conformance(env)
    assert gymnasium.registry[ENV_ID].max_episode_steps == 80
    assert env.unwrapped.render().shape == (64, 64, 3)


def test_action_is_a_velocity_and_zero_holds(env):
    obs, _ = env.reset(seed=0)
    start = obs["state"][:2].copy()
    obs, *_ = env.step(np.array([1.0, 0.0], np.float32))
    np.testing.assert_allclose(obs["state"][:2], start + [STEP, 0.0], atol=1e-6)
    held, *_ = env.step(env.unwrapped.hold_action())
    np.testing.assert_array_equal(held["state"][:2], obs["state"][:2])


def test_touching_the_pillar_fails_the_episode(env):
    env.reset(seed=0)
    env.unwrapped._agent = PILLAR_XY - [0.0, PILLAR_RADIUS + 0.5 * STEP]
    obs, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0], np.float32))
    assert info["crashed"] and terminated and not info["success"] and reward == -1.0


def test_expert_succeeds_on_both_sides(env):
    expert = env.unwrapped.get_expert()
    sides = set()
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        sides.add(env.unwrapped.expert_side)
        for _ in range(80):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        assert info["success"] and not info["crashed"] and terminated, seed
        assert np.linalg.norm(obs["state"][:2] - obs["state"][2:4]) < CATCH_RADIUS
    assert sides == {-1.0, 1.0}


def _expert_commands(env, seed: int) -> np.ndarray:
    expert = env.unwrapped.get_expert()
    obs, _ = env.reset(seed=seed)
    expert.reset()
    commands = []
    for _ in range(80):
        commands.append(expert.act(obs))
        obs, reward, terminated, truncated, info = env.step(commands[-1])
        if terminated or truncated:
            break
    assert info["success"], seed
    return np.stack(commands)


@pytest.mark.parametrize("max_change", [0.2, 0.35])
def test_expert_command_is_rate_limited(max_change):
    env = gymnasium.make(ENV_ID, expert_max_change=max_change)
    for seed in range(10):
        a = _expert_commands(env, seed)
        steps = np.abs(np.diff(np.vstack([np.zeros((1, 2)), a]), axis=0))  # from rest at reset
        assert steps.max() <= max_change + 1e-6, seed
        assert steps.max() >= max_change - 1e-6, seed  # the limit binds (the unlimited expert jumps by 1)
    env.close()


def test_unlimited_expert_jumps_and_bad_limits_are_refused():
    env = gymnasium.make(ENV_ID, expert_max_change=None)
    assert np.abs(np.diff(_expert_commands(env, 0), axis=0)).max() > 0.5
    env.close()
    assert env.unwrapped.get_expert().max_change is None
    assert gymnasium.make(ENV_ID).unwrapped.get_expert().max_change == EXPERT_MAX_CHANGE
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="expert_max_change"):
            gymnasium.make(ENV_ID, expert_max_change=bad)
