import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.runtime import (
    ActionScheduler,
    ControlLoop,
    ExpertSource,
    PolicySource,
    RealClock,
    StepRecord,
    VirtualClock,
)


class PointEnv(gym.Env):
    """A point moving 0.1 * action per step toward a target; state is target - point."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    control_hz = 10.0

    def __init__(self, target=(0.5, -0.3), render_mode=None):
        self.observation_space = gym.spaces.Dict({
            "state": gym.spaces.Box(-10, 10, (2,), np.float32),
            "images/front": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
        })
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.target = np.asarray(target, np.float32)
        self.render_mode = render_mode
        self.actions: list[np.ndarray] = []

    def _obs(self):
        img = np.zeros((8, 8, 3), np.uint8)
        img[..., 0] = self.steps
        return {"state": (self.target - self.point).astype(np.float32), "images/front": img}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.point = np.zeros(2, np.float32)
        self.steps = 0
        return self._obs(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), -1, 1)
        self.actions.append(action)
        self.point = self.point + 0.1 * action
        self.steps += 1
        success = bool(np.linalg.norm(self.target - self.point) < 0.05)
        return self._obs(), float(success), success, False, {"success": success}

    def render(self):
        return self._obs()["images/front"]


@dataclass
class FakeConfig:
    n_obs_steps: int = 2
    horizon: int = 8
    n_action_steps: int = 4
    features: dict = field(default_factory=lambda: {
        "state": {"shape": (2,)}, "images/front": {"shape": (8, 8, 3)}, "action": {"shape": (2,)},
    })


class FakePolicy:
    """Returns chunk i filled with [i, step] so each executed action names its chunk and step."""

    uses_language = False

    @property
    def input_keys(self):
        return [k for k in self.config.features if k != "action"]

    def __init__(self, **cfg):
        self.config = FakeConfig(**cfg)
        self.calls: list[dict[str, torch.Tensor]] = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def predict_action_chunk(self, obs):
        self.calls.append({k: v.clone() for k, v in obs.items()})
        i = len(self.calls) - 1
        T = self.config.horizon
        return torch.stack([torch.full((T,), float(i)), torch.arange(T, dtype=torch.float32)], -1)[None]


class Expert:
    def reset(self):
        pass

    def act(self, obs):
        return np.clip(obs["state"] / 0.1, -1, 1)


def run(env, source, steps, clock=None):
    records: list[StepRecord] = []
    loop = ControlLoop(env, source, clock or VirtualClock(env.control_hz), on_step=records.append,
                       max_steps=steps)
    return loop.run_episode(seed=0), records


def test_executes_exactly_ta_actions_per_chunk():
    env, policy = PointEnv(target=(9, 9)), FakePolicy(n_action_steps=4)
    result, records = run(env, PolicySource(policy), 12)
    assert result.steps == 12 and not result.terminated
    assert len(policy.calls) == 3
    executed = np.array([r.action for r in records])
    expected = np.array([[c, s] for c in range(3) for s in range(4)], np.float32)
    np.testing.assert_array_equal(executed, expected)
    # The chunk for ticks 4..7 was computed from the observation at tick 4.
    np.testing.assert_array_equal(policy.calls[1]["images/front"][0, -1].numpy(), records[4].obs["images/front"])


def test_obs_history_shapes_and_first_obs_repeated():
    policy = FakePolicy(n_obs_steps=3)
    run(PointEnv(target=(9, 9)), PolicySource(policy), 5)
    first, second = policy.calls[0], policy.calls[1]
    assert set(first) == {"state", "images/front"}
    assert first["state"].shape == (1, 3, 2) and first["state"].dtype == torch.float32
    assert first["images/front"].shape == (1, 3, 8, 8, 3) and first["images/front"].dtype == torch.uint8
    # At the first step the first observation fills all To slots; later slots are consecutive steps.
    assert (first["images/front"][0, :, 0, 0, 0] == 0).all()
    assert second["images/front"][0, :, 0, 0, 0].tolist() == [2, 3, 4]


def test_latency_drops_stale_actions():
    policy = FakePolicy(n_action_steps=4)
    source = PolicySource(policy, latency_ticks=1)
    _, records = run(PointEnv(target=(9, 9)), source, 13)
    # Chunk 0 is awaited (ticks 0..3). Later chunks are requested at ticks 3, 6, 9, 12 from the
    # observation of that tick, arrive one tick later, and lose their action for the request tick.
    assert len(policy.calls) == 5
    assert source.n_chunks == 5
    assert source.n_stale == 3  # chunks 1..3 each lost 1 action; chunk 4 is still in flight
    assert source.n_holds == 0
    executed = [tuple(r.action.tolist()) for r in records]
    assert executed[:4] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert executed[4:7] == [(1, 1), (1, 2), (1, 3)]
    assert executed[7:10] == [(2, 1), (2, 2), (2, 3)]
    np.testing.assert_array_equal(policy.calls[1]["images/front"][0, -1].numpy(), records[3].obs["images/front"])


def test_latency_must_leave_actions_to_execute():
    with pytest.raises(ValueError, match="latency_ticks"):
        PolicySource(FakePolicy(n_action_steps=4), latency_ticks=4)


def test_reset_clears_history_and_scheduler():
    policy = FakePolicy()
    source = PolicySource(policy)
    env = PointEnv(target=(9, 9))
    loop = ControlLoop(env, source, VirtualClock(10), max_steps=3)
    loop.run_episode(seed=0)
    loop.run_episode(seed=1)
    assert policy.resets == 2
    assert len(policy.calls) == 2  # one chunk per episode, none carried over
    assert (policy.calls[1]["images/front"][0, :, 0, 0, 0] == 0).all()


def test_missing_obs_key_is_named():
    policy = FakePolicy()
    policy.config.features["images/wrist"] = {"shape": (8, 8, 3)}
    with pytest.raises(KeyError, match="images/wrist"):
        run(PointEnv(), PolicySource(policy), 2)


def test_expert_loop_records_steps_and_stops_on_success():
    env = PointEnv(target=(0.5, -0.3))
    result, records = run(env, ExpertSource(Expert()), 100)
    assert result.success and result.terminated and not result.truncated
    assert result.steps == len(records) == 5
    assert [r.tick for r in records] == list(range(5))
    assert [r.t for r in records] == pytest.approx([k / 10 for k in range(5)])
    # obs is what the action was computed from: the initial state, then each following one.
    np.testing.assert_allclose(records[0].obs["state"], [0.5, -0.3])
    np.testing.assert_allclose(records[0].action, [1.0, -1.0])
    np.testing.assert_allclose(records[1].obs["state"], [0.4, -0.2], atol=1e-6)
    assert records[-1].terminated and records[-1].info["success"]
    assert result.total_reward == 1.0 and result.missed_ticks == 0


def test_record_video_frames():
    env = PointEnv(target=(9, 9), render_mode="rgb_array")
    loop = ControlLoop(env, ExpertSource(Expert()), VirtualClock(10), max_steps=6, record_video=True)
    result = loop.run_episode(seed=3)
    assert len(result.frames) == 7  # after reset + after each step
    assert [int(f[0, 0, 0]) for f in result.frames] == list(range(7))
    assert loop.run_episode(seed=3, record_video=False).frames == []


def test_virtual_loop_never_sleeps(monkeypatch):
    def no_sleep(_):
        raise AssertionError("slept")

    monkeypatch.setattr(time, "sleep", no_sleep)
    result, _ = run(PointEnv(target=(9, 9)), PolicySource(FakePolicy()), 500)
    assert result.steps == 500


def test_real_clock_loop_skips_ticks_after_a_slow_step():
    class SlowEnv(PointEnv):
        def step(self, action):
            if self.steps == 2:
                time.sleep(0.035)
            return super().step(action)

    env = SlowEnv(target=(9, 9))
    source = PolicySource(FakePolicy())
    result, records = run(env, source, 6, clock=RealClock(100))
    ticks = [r.tick for r in records]
    assert result.missed_ticks >= 3 and result.missed_ticks == ticks[-1] - 5
    assert ticks[3] - ticks[2] >= 4
    # Chunk 0's action for tick 3 passed during the stall: dropped, not replayed late; a fresh
    # chunk starts at the tick the loop resumed on.
    assert source.n_stale == 1
    assert [tuple(r.action.tolist()) for r in records] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_scheduler_newest_wins_and_stale_counted():
    s = ActionScheduler()
    s.add_chunk(0, np.zeros((4, 2)))
    s.add_chunk(2, np.ones((4, 2)))
    assert s.n_overwritten == 2
    assert s.pop(0).tolist() == [0, 0]
    assert s.pop(2).tolist() == [1, 1]  # newest wins; tick 1 dropped as stale
    assert s.n_stale == 1
    assert s.remaining(3) == 3
    assert s.pop(10) is None and s.n_stale == 4 and len(s) == 0
    with pytest.raises(ValueError, match=r"\(T, Da\)"):
        s.add_chunk(0, np.zeros(3))
