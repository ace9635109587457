"""robolearn/mujoco-pick-place: conformance, gripper actions, success semantics, expert success."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import robolearn_envs  # noqa: F401  (registers the ids)
from robolearn.env import check_env_conformance, check_upright
from robolearn_envs.mujoco import register
from robolearn_envs.mujoco.pick_place import (
    CUBE_HALF,
    FINGER_OPEN,
    HIGH,
    LOW,
    MAX_EPISODE_STEPS,
    MAX_SPEED,
    MIN_START_DISTANCE,
    SUCCESS_RADIUS,
)

ENV_ID = "robolearn/mujoco-pick-place"
OPEN, CLOSE = -1.0, 1.0


def _hold(task, grip: float, xyz=None) -> np.ndarray:
    """Action that keeps (or sends) the gripper at `xyz` (default: where it is) with command `grip`."""
    xyz = task.gripper_xyz if xyz is None else np.asarray(xyz)
    return np.append(task.ramp.to_action(xyz), np.float32(grip)).astype(np.float32)


def _run_expert(env, seed: int, max_steps: int = MAX_EPISODE_STEPS):
    obs, _ = env.reset(seed=seed)
    expert = env.unwrapped.get_expert()
    expert.reset()
    for t in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    return info["success"], t + 1, terminated, reward


def test_registered():
    assert ENV_ID in register()
    assert gymnasium.registry[ENV_ID].max_episode_steps == MAX_EPISODE_STEPS == 100


def test_conformance(make):
    check_env_conformance(make(cameras=("front", "top", "wrist")), expert_steps=5)


def test_spaces_and_attributes(make):
    env = make(cameras=("front", "wrist"))
    space = env.observation_space
    assert set(space.spaces) == {"state", "images/front", "images/wrist"}
    assert space["state"].shape == (11,) and space["state"].dtype == np.float32
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
    u = env.unwrapped
    assert u.control_hz == 10.0 and u.metadata["render_fps"] == 10.0
    assert u.task_description == "pick up the red cube and place it on the green zone"
    assert len(u.state_names) == 11 and u.sim.camera_names == ("front", "top", "wrist")


def test_frames_are_upright(make):
    """All three cameras, with the gripper low near the front edge and the cube and zone off-centre (the
    probe's markers sit around the middle of each view and must not be hidden behind the gripper)."""
    env = make(cameras=("front", "top", "wrist"))
    env.reset(seed=0)
    task = env.unwrapped.task
    task.set_gripper(np.array([-0.1, -0.18, 0.05]))
    task.set_cube_pose(np.array([0.15, -0.15, CUBE_HALF]), 0.0)
    task.set_target(np.array([-0.15, 0.15]))
    env.unwrapped.sim.forward()
    for camera in ("front", "top", "wrist"):
        check_upright(env, camera)


def test_reset_is_deterministic_and_seeds_differ(make):
    env = make(cameras=("front",))
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a["state"], c["state"])


def test_start_distribution(make):
    env = make(cameras=())
    task = env.unwrapped.task
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        state = obs["state"]
        np.testing.assert_allclose(state[:3], task.gripper_xyz, atol=1e-6)
        assert state[3] == pytest.approx(2 * FINGER_OPEN)  # starts open
        np.testing.assert_allclose(state[4:7], task.cube_xyz, atol=1e-6)
        assert task.cube_xyz[2] == pytest.approx(CUBE_HALF)
        np.testing.assert_allclose(state[9:], task.target_xy, atol=1e-6)
        assert np.linalg.norm(task.cube_xyz[:2] - task.target_xy) >= MIN_START_DISTANCE
        assert task.gripper_xyz[2] >= 0.1 and not info["success"]


def test_action_is_absolute_speed_limited_position_and_gripper(make):
    env = make(cameras=())
    task = env.unwrapped.task
    env.reset(seed=0)
    task.set_cube_pose(np.array([-0.18, 0.18, CUBE_HALF]), 0.0)  # out of the way
    task.set_gripper(np.array([-0.2, -0.2, 0.2]))
    env.unwrapped.sim.forward()
    action = np.array([0.5, 0.5, -1.0, CLOSE], np.float32)
    goal = task.ramp.to_world(action[:3])
    np.testing.assert_allclose(goal, [0.1, 0.1, LOW[2]], atol=1e-9)
    previous = task.gripper_xyz
    for _ in range(12):
        obs, *_ = env.step(action)
        moved = np.linalg.norm(obs["state"][:3] - previous)
        assert moved <= MAX_SPEED / 10 + 0.005  # at most 5 cm per control step
        previous = obs["state"][:3]
    np.testing.assert_allclose(obs["state"][:3], goal, atol=0.003)
    assert obs["state"][3] < 0.002  # +1 closes the fingers
    for _ in range(3):
        obs, *_ = env.step(np.array([0.5, 0.5, -1.0, OPEN], np.float32))
    assert obs["state"][3] == pytest.approx(2 * FINGER_OPEN, abs=0.002)  # -1 opens them
    obs, *_ = env.step(np.array([1.0, 1.0, 1.0, 0.0], np.float32))
    obs, *_ = env.step(np.array([1.0, 1.0, 1.0, 0.0], np.float32))
    assert obs["state"][3] == pytest.approx(FINGER_OPEN, abs=0.002)  # 0: half open
    for _ in range(5):
        obs, *_ = env.step(np.array([1.0, 1.0, 1.0, 0.0], np.float32))
    np.testing.assert_allclose(obs["state"][:3], HIGH, atol=0.003)


def test_success_needs_the_cube_released_at_rest_in_the_zone(make):
    env = make(cameras=())
    u = env.unwrapped
    task = u.task
    env.reset(seed=0)
    zone = task.target_xy

    # Released on the table, but outside the zone: not success.
    task.set_cube_pose(np.array([*(zone + [SUCCESS_RADIUS + 0.01, 0.0]), CUBE_HALF]), 0.3)
    task.set_gripper(np.array([zone[0], zone[1] - 0.1, 0.12]))
    u.sim.forward()
    _, reward, terminated, _, info = env.step(_hold(task, OPEN))
    assert not terminated and info["success"] is False
    assert reward == pytest.approx(-(SUCCESS_RADIUS + 0.01), abs=2e-3)

    # In the zone but still gripped: not success; opening the gripper then releases it: success.
    cube = np.array([*(zone + [0.01, -0.01]), CUBE_HALF])
    task.set_cube_pose(cube, 0.0)
    task.set_gripper(cube, gap=2 * CUBE_HALF)
    u.sim.forward()
    for _ in range(3):
        _, reward, terminated, _, info = env.step(_hold(task, CLOSE))
        assert task.gripper_touches_cube() and not terminated and info["success"] is False
    _, reward, terminated, _, info = env.step(_hold(task, OPEN))
    assert terminated and info["success"] is True and reward == 1.0

    # Held in the air above the zone, fingers open around it: not success (not on the table).
    env.reset(seed=0)
    task.set_cube_pose(np.array([*zone, 0.08]), 0.0)
    task.set_gripper(np.array([zone[0], zone[1], 0.08]), gap=2 * CUBE_HALF)
    u.sim.forward()
    assert not task.success()


def test_dropping_the_cube_outside_the_zone_fails(make):
    """The expert's grasp, then opening straight after the lift: the cube falls outside the zone and stays there."""
    env = make(cameras=())
    task = env.unwrapped.task
    obs, _ = env.reset(seed=1)
    expert = env.unwrapped.get_expert()
    expert.reset()
    while expert.phase != "carry":
        obs, *_ = env.step(expert.act(obs))
    assert task.cube_xyz[2] > 0.08  # lifted
    for _ in range(15):
        _, reward, terminated, truncated, info = env.step(_hold(task, OPEN))
        assert not terminated and info["success"] is False
    assert task.cube_on_table() and not task.gripper_touches_cube()
    assert task.distance() > MIN_START_DISTANCE - 0.02 and reward < -0.1


def test_expert_succeeds(make):
    env = make(cameras=())
    expert = env.unwrapped.get_expert()
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        previous = None
        for t in range(MAX_EPISODE_STEPS):
            action = expert.act(obs)
            assert action.dtype == np.float32 and action in env.action_space
            assert action[3] in (OPEN, CLOSE)
            if previous is not None:  # no jumps: consecutive position targets within ~5 cm
                assert np.abs(action[:3] - previous[:3]).max() < 0.5
            previous = action
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        assert info["success"] and terminated and reward == 1.0, seed
        assert t + 1 <= 50, (seed, t + 1)
        assert np.linalg.norm(obs["state"][4:6] - obs["state"][9:]) < SUCCESS_RADIUS
        assert obs["state"][6] == pytest.approx(CUBE_HALF, abs=0.004)


def test_expert_recovers_from_a_dropped_cube(make):
    env = make(cameras=())
    task = env.unwrapped.task
    obs, _ = env.reset(seed=2)
    expert = env.unwrapped.get_expert()
    expert.reset()
    while not (expert.phase == "carry" and expert._count > 3):
        obs, *_ = env.step(expert.act(obs))
    for _ in range(3):  # drop it mid-carry
        obs, *_ = env.step(_hold(task, OPEN))
    for _ in range(MAX_EPISODE_STEPS):
        obs, _, terminated, _, info = env.step(expert.act(obs))
        if terminated:
            break
    assert info["success"]


@pytest.mark.slow
def test_expert_success_rate_100_seeds(make):
    env = make(cameras=())
    results = [_run_expert(env, seed) for seed in range(100)]
    successes = sum(r[0] for r in results)
    assert successes >= 95, successes
    assert np.mean([r[1] for r in results]) < 50
