"""robolearn/mujoco-push: the contract other code relies on (spaces, actions, determinism, expert, frames)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import robolearn_envs  # noqa: F401  (registers the ids)
from robolearn.env import check_env_conformance, check_upright
from robolearn_envs.mujoco import register
from robolearn_envs.mujoco.push import MAX_SPEED, SUCCESS_RADIUS, WORKSPACE

ENV_ID = "robolearn/mujoco-push"


def test_register_is_idempotent_and_returns_ids():
    ids = register()
    assert register() == ids and ENV_ID in ids
    assert gymnasium.registry[ENV_ID].max_episode_steps == 100


def test_conformance(make):
    check_env_conformance(make())


def test_spaces_and_attributes(make):
    env = make()
    space = env.observation_space
    assert isinstance(space, gymnasium.spaces.Dict)
    assert set(space.spaces) == {"state", "images/front"}
    assert space["state"].shape == (6,) and space["state"].dtype == np.float32
    assert space["images/front"].shape == (64, 64, 3) and space["images/front"].dtype == np.uint8
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    u = env.unwrapped
    assert u.control_hz == 10.0 and u.metadata["render_fps"] == 10.0
    assert u.task_description == "push the block onto the target"
    assert u.render_mode == "rgb_array"
    assert len(u.state_names) == 6


def test_image_size_cameras_and_render_size(make):
    env = make(image_size=(48, 80), cameras=("front", "top"), render_size=(120, 160))
    obs, info = env.reset(seed=1)
    assert obs["images/front"].shape == obs["images/top"].shape == (48, 80, 3)
    assert env.render().shape == (120, 160, 3)
    assert info["success"] is False and info["time"] == 0.0


def test_state_only(make):
    env = make(cameras=())
    obs, _ = env.reset(seed=0)
    assert list(obs) == ["state"]
    assert env.render().shape == (64, 64, 3)  # render() still works


@pytest.mark.parametrize("size", [(481, 64), (64, 641), (0, 64), (64,), "64x64", (64.5, 64)])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match=r"image_size=.*H <= 480 and W <= 640"):
        gymnasium.make(ENV_ID, image_size=size)


def test_bad_render_size():
    with pytest.raises(ValueError, match="render_size"):
        gymnasium.make(ENV_ID, render_size=(1000, 1000))


def test_unknown_camera():
    with pytest.raises(ValueError, match=r"unknown camera 'wrist' in cameras; accepted values: front, top"):
        gymnasium.make(ENV_ID, cameras=("wrist",))
    with pytest.raises(ValueError, match="not a string"):
        gymnasium.make(ENV_ID, cameras="front")


def test_bad_actions(make):
    env = make(cameras=())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\); expected \(2,\)"):
        env.unwrapped.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.unwrapped.step(np.array([np.nan, 0.0], np.float32))


def test_reset_is_deterministic_and_seeds_differ(make):
    env = make()
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a["state"], c["state"])


def test_start_distribution(make):
    env = make(cameras=())
    task = env.unwrapped.task
    for seed in range(20):
        env.reset(seed=seed)
        assert np.all(np.abs(task.block_xy) <= 0.15 + 1e-6)
        assert np.linalg.norm(task.block_xy - task.target_xy) >= 0.1
        assert np.all(np.abs(task.pusher_xy) <= 0.2 + 1e-6)
        assert np.linalg.norm(task.pusher_xy - task.block_xy) > 0.06  # not touching the block


def test_action_is_absolute_speed_limited_position(make):
    env = make(cameras=())
    task = env.unwrapped.task
    env.reset(seed=0)
    task.set_block_pose(np.array([0.2, 0.2]), 0.0)  # out of the way
    task.set_pusher(np.array([-0.2, -0.2]))
    env.unwrapped.sim.forward()
    action = np.array([0.5, -0.5], np.float32)
    goal = np.array([0.5, -0.5]) * WORKSPACE
    previous = task.pusher_xy
    for _ in range(15):
        obs, *_ = env.step(action)
        moved = np.linalg.norm(obs["state"][:2] - previous)
        assert moved <= MAX_SPEED / 10 + 0.005  # at most 5 cm per control step
        previous = obs["state"][:2]
    np.testing.assert_allclose(obs["state"][:2], goal, atol=0.003)
    np.testing.assert_allclose(task.ramp.to_world(task.ramp.to_action(goal)), goal, atol=1e-6)


def test_state_layout_reward_and_success(make):
    env = make(cameras=())
    task = env.unwrapped.task
    env.reset(seed=0)
    task.set_block_pose(task.target_xy + [0.1, 0.0], np.pi / 8)
    env.unwrapped.sim.forward()
    state = task.state()
    np.testing.assert_allclose(state[2:4], task.target_xy + [0.1, 0.0], atol=1e-6)
    np.testing.assert_allclose(state[4:], [np.sin(np.pi / 2), np.cos(np.pi / 2)], atol=1e-6)
    _, reward, terminated, _, info = env.step(task.ramp.to_action(task.pusher_xy))
    assert reward == pytest.approx(-0.1, abs=2e-3) and not terminated and info["success"] is False
    task.set_block_pose(task.target_xy + [SUCCESS_RADIUS / 2, 0.0], 0.0)
    env.unwrapped.sim.forward()
    _, reward, terminated, _, info = env.step(task.ramp.to_action(task.pusher_xy))
    assert reward == 1.0 and terminated and info["success"] is True
    assert info["time"] == pytest.approx(0.2)


def test_expert_succeeds_smoothly(make):
    env = make(cameras=())
    expert = env.unwrapped.get_expert()
    successes, lengths = 0, []
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        previous = None
        for t in range(100):
            action = expert.act(obs)
            assert action.dtype == np.float32 and action in env.action_space
            if previous is not None:  # no jumps: consecutive targets within ~4 cm
                assert np.abs(action - previous).max() < 0.2
            previous = action
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        successes += info["success"]
        lengths.append(t + 1)
    assert successes >= 29
    assert np.mean(lengths) < 30


def test_frames_are_upright(make):
    env = make(cameras=("front", "top"))
    env.reset(seed=0)
    for camera in ("front", "top"):
        check_upright(env, camera)


def test_scene_feature_upright(make):
    """The red block placed far-right on the table shows up top-right; near-left shows up bottom-left."""
    env = make(cameras=("front", "top"), image_size=(64, 64))
    task = env.unwrapped.task
    env.reset(seed=0)
    task.set_pusher(np.array([0.0, -0.25]))
    for xy, row_top, col_right in (((0.2, 0.2), True, True), ((-0.2, -0.15), False, False)):
        task.set_block_pose(np.array(xy), 0.0)
        env.unwrapped.sim.forward()
        obs = env.unwrapped._observation()
        for camera in ("front", "top"):
            img = obs[f"images/{camera}"].astype(int)
            red = np.argwhere((img[..., 0] > 150) & (img[..., 1] < 90) & (img[..., 2] < 90))
            assert len(red) > 5, camera
            row, col = red.mean(axis=0)
            assert (row < 32) == row_top and (col > 32) == col_right, (camera, xy, row, col)


def test_close_twice(make):
    env = make()
    env.reset(seed=0)
    env.render()
    env.close()
    env.close()
