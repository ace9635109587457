"""RobotEnv over fakes: the env contract, per-stream capture times, and a hold that holds under gravity."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.devices import (
    FakeCamera,
    FakeForceTorqueSensor,
    FakeRobot,
    FakeTactileSensor,
    FakeTime,
    ReachJointsTask,
    RobotEnv,
)
from robolearn.env import ConformanceError, check_env_contract, check_env_simulation

LAG = 0.04  # s, the camera's capture-to-read delay


def make_env(t: FakeTime, sag: float = 0.05, task=None, **robot) -> RobotEnv:
    return RobotEnv(FakeRobot(sag=sag, clock=t, **robot), cameras=[FakeCamera("front", size=(24, 32), lag=LAG, clock=t)],
                    sensors=[FakeForceTorqueSensor(clock=t), FakeTactileSensor("finger", clock=t)], task=task)


def test_robot_env_over_fakes_passes_the_contract_not_the_simulation_part():
    env = make_env(FakeTime(100.0), task=ReachJointsTask())
    check_env_contract(env)
    with pytest.raises(ConformanceError, match="no get_expert"):
        check_env_simulation(env)
    env.close()
    check_env_contract(RobotEnv(FakeRobot()))  # no camera, no task, real time: renders joint bars


def test_keys_are_the_simulated_twins_and_stamps_are_per_stream():
    t = FakeTime(100.0)
    env = make_env(t)
    assert sorted(env.observation_space.spaces) == ["force", "images/front", "state", "tactile/finger"]
    obs, info = env.reset(seed=0)
    assert "success" not in info  # FreeTask defines no success
    t.advance(0.1)
    obs, reward, terminated, truncated, info = env.step(env.hold_action())
    stamps = info["timestamps"]
    assert stamps["state"] == pytest.approx(100.1) and stamps["force"] == pytest.approx(100.1)
    assert stamps["state"] - stamps["images/front"] == pytest.approx(LAG)
    assert obs["images/front"].shape == (24, 32, 3) and env.render().shape == (24, 32, 3)
    env.close()


def test_step_reports_the_clipped_action_it_sent_and_success():
    t = FakeTime()
    env = make_env(t, sag=0.0, task=ReachJointsTask(tolerance=0.01), max_speed=100.0)
    env.reset(seed=1)
    _, _, _, _, info = env.step(np.array([5.0, -5.0, 0.0], np.float32))
    np.testing.assert_array_equal(info["action"], [2.0, -2.0, 0.0])
    assert info["success"] is False
    t.advance(1.0)
    _, reward, terminated, _, info = env.step(env.task.goal.astype(np.float32))
    t.advance(1.0)
    _, reward, terminated, _, info = env.step(env.hold_action())
    assert info["success"] and terminated and reward == 1.0
    env.close()


def test_hold_at_episode_start_is_the_measured_position():
    t = FakeTime()
    env = make_env(t, start=(0.3, -0.2, 1.0))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.hold_action(), obs["state"])
    np.testing.assert_allclose(env.hold_action(), [0.3, -0.2, 1.0], rtol=1e-6)
    env.close()


def test_holding_an_absolute_target_under_gravity_does_not_drift():
    t = FakeTime()
    env = make_env(t, sag=0.05, start=(0.0, 0.5, 1.0))
    env.reset(seed=0)
    target = np.array([0.2, 0.6, 0.8], np.float32)
    env.step(target)
    for _ in range(200):
        t.advance(0.1)
        obs, *_, info = env.step(env.hold_action())
        np.testing.assert_array_equal(info["action"], target)
    np.testing.assert_allclose(obs["state"], target - 0.05, atol=1e-6)  # one sag below, for good
    env.close()


def test_env_connects_and_disconnects_only_what_it_opened():
    t = FakeTime()
    robot, camera = FakeRobot(clock=t), FakeCamera("front", clock=t)
    camera.connect()
    env = RobotEnv(robot, cameras=[camera])
    env.reset(seed=0)
    assert robot.is_connected and camera.is_connected
    env.close()
    assert not robot.is_connected and camera.is_connected
    camera.disconnect()


def test_two_devices_with_one_key_are_refused():
    with pytest.raises(ValueError, match=r"observation key 'images/front' comes from both 'front' and 'front'"):
        RobotEnv(FakeRobot(), cameras=[FakeCamera("front"), FakeCamera("front")])
    with pytest.raises(ValueError, match=r"render_camera='side' is not one of the cameras \(front\)"):
        RobotEnv(FakeRobot(), cameras=[FakeCamera("front")], render_camera="side")


def test_recorded_camera_stamps_lag_the_state_by_the_camera_lag(tmp_path):
    from robolearn.record import Recorder
    from robolearn.runtime import ControlLoop, VirtualClock
    from robolearn.store import Store, StoreWriter
    from robolearn.store.layout import features_from_space

    t = FakeTime(50.0)
    env = make_env(t)

    class Sweep:  # a slow joint sweep, advancing the devices' clock one period per tick
        def reset(self, seed=None):
            pass

        def act(self, obs, tick):
            t.advance(0.1)
            return np.full(3, 0.01 * tick, np.float32)

    with StoreWriter(tmp_path / "robot.zarr", features_from_space(env.observation_space, env.action_space),
                     fps=10.0) as writer:
        rec = Recorder(writer, fps=10.0, task="sweep")
        rec.start_episode(seed=0)
        ControlLoop(env, Sweep(), VirtualClock(10.0), on_step=rec.add_step, max_steps=8).run_episode(seed=0)
        rec.save_episode(success=False)
        rec.close()
    env.close()
    store = Store.open(tmp_path / "robot.zarr")
    state_t, cam_t = store.timestamps("state", 0), store.timestamps("images/front", 0)
    assert len(state_t) == 8
    np.testing.assert_allclose(state_t, 50.0 + 0.1 * np.arange(8), atol=1e-9)  # the device clock, per tick
    np.testing.assert_allclose(state_t - cam_t, LAG, atol=1e-9)
    np.testing.assert_allclose(store.timestamps("force", 0), state_t, atol=1e-9)
    # the action is stamped when it went to the robot, on the same device clock (after the source's 0.1 s)
    np.testing.assert_allclose(store.timestamps("action", 0), state_t + 0.1, atol=1e-9)


def test_joint_bars_draw_unbounded_and_nan_states():
    import gymnasium as gym

    from robolearn.devices.robot_env import RENDER_SIZE, _joint_bars

    space = gym.spaces.Box(np.array([-np.inf, -1.0, -np.inf]), np.array([np.inf, 1.0, np.inf]), dtype=np.float32)
    frame = _joint_bars(np.array([0.0, 1.0, np.nan], np.float32), space)
    h, w = RENDER_SIZE
    width = w // 3
    heights = [(frame[:, i * width] != 30).any(axis=1).sum() for i in range(3)]
    assert frame.shape == (h, w, 3)
    assert heights[1] == h                       # at its upper bound: a full bar
    assert abs(heights[0] - h / 2) <= 1          # unbounded, at 0: half height
    assert abs(heights[2] - h / 2) <= 1          # NaN drawn as 0, not a crash
    high = _joint_bars(np.array([90.0, -1.0, -90.0], np.float32), space)
    assert abs((high[:, 0] != 30).any(axis=1).sum() - 0.75 * h) <= 1
