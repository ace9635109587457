"""robolearn/pusht: conformance, seeding, the success flag, action convention, upright frames."""

from __future__ import annotations

import importlib.util
import warnings

import gymnasium
import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from robolearn.env import check_env_conformance, check_upright  # noqa: E402
from robolearn_envs.pusht import ENV_ID, register  # noqa: E402
from robolearn_envs.pusht.env import INSTALL_HINT, PushTEnv  # noqa: E402

register()

# gymnasium recommends a [-1, 1] or [0, 1] action box for RL; PushT keeps gym-pusht's pixel targets
# ([0, 512], what LeRobot's and Diffusion Policy's PushT data use; our normalizer rescales actions).
ACTION_RANGE_WARNING = "symmetric and normalized space"


def place_block_on_goal(env) -> None:
    block = env.unwrapped.pusht_env.block
    block.angle = np.pi / 4
    offset = np.array(block.local_to_world((0, 0))) - np.array(block.position)  # the T's origin vs its CoG
    block.position = tuple(np.array([256.0, 256.0]) - offset)


@pytest.mark.parametrize("obs_type", ["pixels_agent_pos", "environment_state_agent_pos"])
def test_conformance(make, obs_type):
    env = make(obs_type=obs_type)
    check_env_conformance(env, strict=False)
    # strict=False above tolerates only gymnasium's action-range recommendation:
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    complaints = {str(w.message) for w in caught
                  if "WARN" in str(w.message) and "not having a spec" not in str(w.message)}
    assert all(ACTION_RANGE_WARNING in c for c in complaints), complaints


def test_spaces_and_attributes(make):
    env = make()
    base = env.unwrapped
    assert env.spec.max_episode_steps == 300
    assert base.control_hz == 10.0 and base.metadata["render_fps"] == 10.0
    assert base.task_description == "push the T-shaped block onto the target"
    assert env.observation_space["state"].shape == (2,) and env.observation_space["state"].dtype == np.float32
    assert env.observation_space["images/front"].shape == (96, 96, 3)
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    assert env.action_space.low.tolist() == [0, 0] and env.action_space.high.tolist() == [512, 512]
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["state"], base.hold_action(obs))

    small = make(image_size=(64, 48), render_size=(128, 128))
    obs, _ = small.reset(seed=0)
    assert obs["images/front"].shape == (64, 48, 3) and small.render().shape == (128, 128, 3)

    state_only = make(obs_type="environment_state_agent_pos")
    obs, _ = state_only.reset(seed=0)
    assert set(obs) == {"state"} and obs["state"].shape == (18,)
    np.testing.assert_allclose(obs["state"][2:].reshape(8, 2),
                               state_only.unwrapped.pusht_env.get_keypoints(
                                   state_only.unwrapped.pusht_env._block_shapes), atol=1e-4)


def test_seeded_reset_and_steps_are_deterministic(make):
    a, b = make(), make()
    actions = [np.array([200.0 + 10 * i, 300.0 - 5 * i], np.float32) for i in range(5)]
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    for action in actions:
        obs_a, ra, *_ = a.step(action)
        obs_b, rb, *_ = b.step(action)
        assert ra == rb
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key])
    starts = {tuple(a.reset(seed=s)[0]["state"]) for s in range(5)}
    assert len(starts) == 5


def test_success_flag_and_termination(make):
    env = make()
    _, info = env.reset(seed=0)
    assert info["success"] is False and 0.0 <= info["coverage"] < 0.95
    _, _, terminated, _, info = env.step(env.unwrapped.hold_action())
    assert not terminated and info["success"] is False
    place_block_on_goal(env)
    _, reward, terminated, truncated, info = env.step(env.unwrapped.hold_action())
    assert info["success"] is True and terminated and not truncated
    assert info["coverage"] > 0.95 and reward == pytest.approx(1.0)


def test_action_is_an_absolute_pixel_target(make):
    env = make()
    env.reset(seed=0)
    for _ in range(15):  # the PD controller settles on the target within 1.5 s
        obs, *_, info = env.step(np.array([100.0, 420.0], np.float32))
    np.testing.assert_allclose(obs["state"], [100.0, 420.0], atol=2.0)
    _, *_, info = env.step(np.array([-50.0, 900.0], np.float32))
    np.testing.assert_array_equal(info["action"], [0.0, 512.0])  # clipped: what a recorder stores
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 1.0], np.float32))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        env.step(np.zeros(3, np.float32))


def test_frames_are_upright(make):
    env = make(image_size=(96, 96))
    env.reset(seed=0)
    check_upright(env)
    # The blue pusher is drawn where the state says: state x is the column, state y the row (y down).
    obs, _ = env.reset(options={"reset_to_state": [100.0, 400.0, 300.0, 150.0, 0.0]})
    np.testing.assert_allclose(obs["state"], [100.0, 400.0])
    img = obs["images/front"].astype(int)
    rows, cols = np.nonzero(np.abs(img - [65, 105, 225]).max(axis=-1) < 40)  # RoyalBlue
    assert abs(rows.mean() - 400 / 512 * 96) < 2 and abs(cols.mean() - 100 / 512 * 96) < 2


def test_expert_is_a_heuristic_in_the_action_space(make):
    env = make()
    obs, _ = env.reset(seed=0)
    expert = env.unwrapped.get_expert()
    expert.reset()
    for _ in range(5):
        action = expert.act(obs)
        assert action.dtype == np.float32 and action in env.action_space
        obs, *_ = env.step(action)


def test_bad_arguments_name_what_is_accepted():
    with pytest.raises(ValueError, match="obs_type='pixels'.*pixels_agent_pos"):
        PushTEnv(obs_type="pixels")
    with pytest.raises(ValueError, match="image_size"):
        PushTEnv(image_size=(0, 96))
    with pytest.raises(ValueError, match="render_mode='human'"):
        PushTEnv(render_mode="human")


def test_missing_gym_pusht_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gym_pusht" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install robolearn-envs\[pusht\]"):
        register()
    assert "robolearn-envs[pusht]" in INSTALL_HINT


def test_info_reports_the_applied_action_and_lagged_stamps(make):
    from tests.envs.conftest import check_applied_action_and_stamps

    env = make(sensor_latency_s={"images/front": 0.04})
    check_applied_action_and_stamps(env, [600.0, -20.0], [512.0, 0.0], {"images/front": 0.04})


def test_hold_is_the_last_target_sent_not_where_the_pusher_got_to(make):
    env = make()
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    np.testing.assert_array_equal(base.hold_action(), obs["state"])  # episode start: where the pusher is
    far = np.array([500.0, 20.0], np.float32)
    obs, *_ = env.step(far)
    assert np.linalg.norm(obs["state"] - far) > 10  # one tick is not enough to get there
    np.testing.assert_array_equal(base.hold_action(), far)
    for _ in range(30):
        obs, *_ = env.step(base.hold_action())
    np.testing.assert_allclose(obs["state"], far, atol=3.0)  # held on the target, it arrives
