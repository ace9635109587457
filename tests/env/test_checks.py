"""check_env_conformance / check_upright against a tiny pure-numpy env, then against broken variants."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from robolearn.env import (
    ConformanceError,
    check_env_conformance,
    check_env_contract,
    check_env_simulation,
    check_observation,
    check_upright,
)

H, W = 8, 10


class _Expert:
    def __init__(self, env: GoodEnv) -> None:
        self.env = env

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.clip(-obs["state"][:2], -1, 1).astype(np.float32)


class GoodEnv(gym.Env):
    """A point moving in the plane; the frame shows it as a bright pixel (row 0 = top)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10.0}

    def __init__(self) -> None:
        self.render_mode = "rgb_array"
        self.control_hz = 10.0
        self.task_description = "move the point to the origin"
        self.observation_space = gym.spaces.Dict({
            "state": gym.spaces.Box(-2.0, 2.0, (2,), np.float32),
            "images/front": gym.spaces.Box(0, 255, (H, W, 3), np.uint8),
        })
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._pos = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-1, 1, 2)
        self._t = 0.0
        return self._obs(), {"success": False, "timestamps": self._stamps()}

    def step(self, action):
        sent = np.clip(np.asarray(action, np.float32), -1, 1)
        self._pos = np.clip(self._pos + 0.5 * sent, -2, 2)
        self._t += 0.1
        success = bool(np.linalg.norm(self._pos) < 0.1)
        info = {"success": success, "action": sent, "timestamps": self._stamps()}
        return self._obs(), -float(np.linalg.norm(self._pos)), success, False, info

    def hold_action(self, obs=None):
        return np.zeros(2, np.float32)  # actions are displacements: holding is not moving

    def _stamps(self):
        return {"state": self._t, "images/front": self._t - 0.03}

    def render(self):
        return self._frame()

    def get_expert(self):
        return _Expert(self)

    def _frame(self, marker=None) -> np.ndarray:
        frame = np.zeros((H, W, 3), np.uint8)
        if marker is not None:
            frame[marker] = 255
        return frame

    def _obs(self):
        return {"state": self._pos.astype(np.float32), "images/front": self._frame()}

    def upright_probe(self, camera=None):
        return self._frame(), self._frame((1, W // 2)), self._frame((H // 2, W - 2))


def test_good_env_passes():
    check_env_conformance(GoodEnv())


def test_good_env_passes_through_wrappers():
    check_env_conformance(gym.wrappers.TimeLimit(GoodEnv(), max_episode_steps=20))


def _expect(env: gym.Env, *fragments: str) -> None:
    with pytest.raises(ConformanceError) as err:
        check_env_conformance(env)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_non_dict_observation_space():
    env = GoodEnv()
    env.observation_space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
    env._obs = lambda: env._pos.astype(np.float32)
    _expect(env, "observation_space is Box", "expected a gymnasium.spaces.Dict")


def test_unknown_key():
    env = GoodEnv()
    env.observation_space = gym.spaces.Dict({**env.observation_space.spaces,
                                             "rgb": gym.spaces.Box(0, 255, (H, W, 3), np.uint8)})
    inner = env._obs
    env._obs = lambda: {**inner(), "rgb": env._frame()}
    _expect(env, "'rgb'", "'images/<camera>'")


def test_image_space_must_be_uint8_hw3():
    env = GoodEnv()
    spaces = dict(env.observation_space.spaces)
    spaces["images/front"] = gym.spaces.Box(0.0, 1.0, (H, W, 3), np.float32)
    env.observation_space = gym.spaces.Dict(spaces)
    env._obs = lambda: {"state": env._pos.astype(np.float32), "images/front": np.zeros((H, W, 3), np.float32)}
    _expect(env, "'images/front'", "expected uint8 with shape (H, W, 3)")


def test_state_must_be_float32():
    env = GoodEnv()
    spaces = dict(env.observation_space.spaces)
    spaces["state"] = gym.spaces.Box(-2.0, 2.0, (2,), np.float64)
    env.observation_space = gym.spaces.Dict(spaces)
    env._obs = lambda: {"state": env._pos.copy(), "images/front": env._frame()}
    _expect(env, "'state'", "float32")


def test_observation_must_match_space_dtype():
    space = GoodEnv().observation_space
    obs = {"state": np.zeros(2, np.float64), "images/front": np.zeros((H, W, 3), np.uint8)}
    with pytest.raises(ConformanceError, match=r"'state' from step 3 has dtype float64; expected float32"):
        check_observation(space, obs, "step 3")


def test_observation_must_match_space_shape_and_keys():
    space = GoodEnv().observation_space
    with pytest.raises(ConformanceError, match=r"'images/front' .* has shape \(8, 8, 3\); expected \(8, 10, 3\)"):
        check_observation(space, {"state": np.zeros(2, np.float32), "images/front": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(ConformanceError, match="keys"):
        check_observation(space, {"state": np.zeros(2, np.float32)})


def test_nondeterministic_reset():
    env = GoodEnv()
    env.spec = None
    rng = np.random.default_rng()

    def reset(*, seed=None, options=None):
        gym.Env.reset(env, seed=seed)
        env._pos = rng.uniform(-1, 1, 2)  # ignores the seed
        return env._obs(), {"success": False}

    env.reset = reset
    with pytest.raises(AssertionError, match="reset"):
        check_env_conformance(env)


def test_nondeterministic_step():
    env = GoodEnv()
    rng = np.random.default_rng()
    step = env.step

    def noisy_step(action):
        env._pos = env._pos + rng.normal(0, 0.01, 2)  # unseeded: same actions, different rollouts
        return step(action)

    env.step = noisy_step
    with pytest.raises(AssertionError, match="differs between two rollouts of the same actions"):
        check_env_conformance(env, expert_steps=0)


def test_info_needs_bool_success():
    env = GoodEnv()
    step = env.step

    def no_success(action):
        obs, reward, terminated, truncated, info = step(action)
        del info["success"]
        return obs, reward, terminated, truncated, info

    env.step = no_success
    _expect(env, "info from step 0 has no 'success' key", "expected a bool")


def test_info_success_must_be_bool():
    env = GoodEnv()
    step = env.step

    def float_success(action):
        obs, reward, terminated, truncated, info = step(action)
        return obs, reward, terminated, truncated, {**info, "success": 0.0}

    env.step = float_success
    _expect(env, "info['success'] from step 0 (holding) is float", "expected a bool")


def test_render_must_be_hw3_uint8():
    env = GoodEnv()
    env.render = lambda: np.zeros((H, W), np.uint8)
    _expect(env, "render() returned a uint8 array of shape (8, 10)", "(H, W, 3) uint8")


def test_attributes():
    env = GoodEnv()
    env.control_hz = 10  # int, not float
    _expect(env, "control_hz is 10", "positive float")
    env = GoodEnv()
    env.task_description = ""
    _expect(env, "task_description", "non-empty")
    env = GoodEnv()
    env.metadata = {**env.metadata, "render_fps": 30}
    _expect(env, "render_fps", "control_hz")


def test_expert_action_must_be_float32_in_space():
    env = GoodEnv()
    env.get_expert = lambda: type("E", (), {"reset": lambda self: None,
                                            "act": lambda self, obs: np.zeros(2)})()
    _expect(env, "get_expert().act(obs)", "float32")


def test_upright_passes_and_catches_flips():
    env = GoodEnv()
    check_upright(env)
    plain, up, right = env.upright_probe()
    env.upright_probe = lambda camera=None: (plain, up[::-1], right)  # upside down
    with pytest.raises(ConformanceError, match="not upright: the world-up marker is at row 6 of 8"):
        check_upright(env)
    env.upright_probe = lambda camera=None: (plain, up, right[:, ::-1])  # mirrored
    with pytest.raises(ConformanceError, match="world-right marker .* expected it in the right half"):
        check_upright(env)
    env.upright_probe = lambda camera=None: (plain, plain, right)
    with pytest.raises(ConformanceError, match="not visible"):
        check_upright(env)


def test_upright_needs_probe():
    no_probe = type("NoProbe", (GoodEnv,), {"upright_probe": None})
    with pytest.raises(ConformanceError, match="NoProbe has no upright_probe"):
        check_upright(no_probe())


# ---- the contract part alone (what a hardware env passes) ------------------------------------------


class HardwareLikeEnv(GoodEnv):
    """Absolute targets, a servo that sags below them, unseeded noise, no expert, no success: a real robot."""

    def __init__(self, hold_rule: str = "last target") -> None:
        super().__init__()
        self.hold_rule = hold_rule
        self._noise = np.random.default_rng()
        del self.task_description
        self.task_description = "free teleoperation"

    get_expert = None

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        self._pos = self._pos + self._noise.normal(0, 0.01, 2)  # the world is not seeded
        self._target = self._pos.astype(np.float32)
        del info["success"]
        return self._obs(), info

    def step(self, action):
        self._target = np.clip(np.asarray(action, np.float32), -1, 1)
        self._pos = self._target - 0.05  # the servo settles 5 cm below its target
        self._t += 0.1
        return self._obs(), 0.0, False, False, {"action": self._target.copy(), "timestamps": self._stamps()}

    def hold_action(self, obs=None):
        if self.hold_rule == "last target":
            return self._target.copy()
        return np.clip(self._pos, -1, 1).astype(np.float32)  # re-reads the measurement: the arm walks down


def test_hardware_like_env_passes_the_contract_but_not_the_simulation_part():
    check_env_contract(HardwareLikeEnv())
    with pytest.raises(ConformanceError, match="no get_expert"):
        check_env_simulation(HardwareLikeEnv())


def test_a_hold_that_rereads_the_measured_position_fails():
    with pytest.raises(ConformanceError, match=r"hold_action\(\) changed from .* never a fresh reading"):
        check_env_contract(HardwareLikeEnv(hold_rule="measured"))


def test_env_without_hold_action_fails():
    env = GoodEnv()
    env.hold_action = None
    with pytest.raises(ConformanceError, match=r"no hold_action\(\)"):
        check_env_contract(env)


def test_info_needs_timestamps_for_every_key_that_never_go_back():
    env = GoodEnv()
    stamps = env._stamps
    env._stamps = lambda: {"state": 0.0}
    with pytest.raises(ConformanceError, match=r"info\['timestamps'\]\['images/front'\] from reset\(seed=0\) is None"):
        check_env_contract(env)
    env._stamps = lambda: {k: -v for k, v in stamps().items()}
    with pytest.raises(ConformanceError, match=r"'images/front'\] from step 0 \(holding\) is -0.07, earlier than the previous 0.03"):
        check_env_contract(env)


def _reporting(env: GoodEnv, applied) -> GoodEnv:
    """`env` whose step reports `applied(action)` as info['action'] instead of what it applied."""
    step = env.step

    def patched(action):
        obs, reward, terminated, truncated, info = step(action)
        return obs, reward, terminated, truncated, {**info, "action": applied(action)}

    env.step = patched
    return env


def test_step_info_needs_the_applied_action():
    env = _reporting(GoodEnv(), lambda a: np.asarray(a, np.float64))
    with pytest.raises(ConformanceError, match=r"info\['action'\] from step 0 \(holding\) is a float64 array"):
        check_env_contract(env)


def test_simulation_part_wants_out_of_bound_actions_clipped():
    env = _reporting(GoodEnv(), lambda a: np.asarray(a, np.float32))
    with pytest.raises(ConformanceError, match=r"beyond the bounds\) is \[3.0, 3.0\]; expected the action really applied"):
        check_env_simulation(env)
