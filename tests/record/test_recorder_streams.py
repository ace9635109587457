"""What a recording keeps: per-stream capture stamps, the applied and the commanded action, loop timing,
and how an episode ended (status, counters)."""

import gymnasium as gym
import numpy as np
import pytest

from robolearn.record import Recorder
from robolearn.runtime import ControlLoop, VirtualClock
from robolearn.store import Store, StoreError, StoreWriter
from robolearn.store.layout import STATUS, features_from_space
from tests.conftest import FEATURES, episode_frames

HZ = 10.0
LAG = 0.05


class LaggyCameraEnv(gym.Env):
    """A tiny sim whose camera lags the state by a declared latency; it clips actions to [-1, 1] and reports
    the applied action and per-key stamps (sim time since reset minus the key's latency)."""

    def __init__(self, sensor_latency_s: dict[str, float] | None = None):
        self.observation_space = gym.spaces.Dict({
            "state": gym.spaces.Box(-10, 10, (2,), np.float32),
            "images/cam": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8)})
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.control_hz = HZ
        self.sensor_latency_s = dict(sensor_latency_s or {})
        self._steps, self._pos = 0, np.zeros(2, np.float32)

    def _obs(self):
        img = np.full((4, 4, 3), self._steps % 256, np.uint8)
        return {"state": self._pos.copy(), "images/cam": img}

    def _stamps(self):
        t = self._steps * (1.0 / HZ)
        return {k: t - self.sensor_latency_s.get(k, 0.0) for k in self.observation_space.spaces}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._steps, self._pos = 0, np.zeros(2, np.float32)
        return self._obs(), {"timestamps": self._stamps()}

    def step(self, action):
        applied = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        applied_at = self._steps * (1.0 / HZ)
        self._pos = self._pos + 0.1 * applied
        self._steps += 1
        info = {"action": applied, "timestamps": {**self._stamps(), "action": applied_at}}
        return self._obs(), 0.0, False, False, info


class Ramp:
    """A source asking for more than the env allows: 0.5 * tick on axis 0 (clipped past tick 2)."""

    def reset(self, seed=None):
        pass

    def act(self, obs, tick):
        return np.array([0.5 * tick, -0.25], np.float32)


def record_loop(path, steps=6, **store_kw):
    env = LaggyCameraEnv({"images/cam": LAG})
    feats = features_from_space(env.observation_space, env.action_space, **store_kw)
    with StoreWriter(path, feats, fps=HZ) as w:
        rec = Recorder(w, fps=HZ, task="ramp")
        loop = ControlLoop(env, Ramp(), VirtualClock(HZ), on_step=rec.add_step, max_steps=steps)
        rec.start_episode(seed=0)
        result = loop.run_episode(seed=0)
        rec.save_episode(success=False, missed=result.missed_ticks)
        rec.close()
    return Store.open(path)


def test_each_stream_keeps_its_own_capture_stamp(tmp_path):
    s = record_loop(tmp_path / "lag.zarr")
    ticks = np.arange(6) * (1.0 / HZ)
    state_t, cam_t = s.timestamps("state", 0), s.timestamps("images/cam", 0)
    np.testing.assert_array_equal(state_t, ticks)  # the sim's clock is the virtual clock's tick time
    np.testing.assert_allclose(state_t - cam_t, LAG, rtol=0, atol=1e-12)  # the camera's declared lag, exactly
    np.testing.assert_array_equal(s.timestamps("action", 0), ticks)  # applied at its tick
    # frames are the observations the actions were computed from: frame k was captured after k steps
    assert s.episode(0)["images/cam"][:, 0, 0, 0].tolist() == list(range(6))


def test_applied_and_commanded_actions_are_both_kept(tmp_path):
    s = record_loop(tmp_path / "cmd.zarr", commanded=True)
    ep = s.episode(0)
    asked = np.stack([[0.5 * k, -0.25] for k in range(6)]).astype(np.float32)
    np.testing.assert_array_equal(ep["action_commanded"], asked)
    np.testing.assert_array_equal(ep["action"], np.clip(asked, -1, 1))  # what the env applied
    assert ep["action"][:, 0].max() == 1.0 and ep["action_commanded"][:, 0].max() == 2.5
    np.testing.assert_array_equal(s.timestamps("action_commanded", 0), s.timestamps("action", 0))


def test_a_store_recorded_through_a_filter_needs_every_commanded_action(tmp_path):
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,), np.float32),
                           "images/front": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)})
    feats = features_from_space(obs, gym.spaces.Box(-1, 1, (2,), np.float32), commanded=True)
    with StoreWriter(tmp_path / "c.zarr", feats, fps=HZ) as w:
        rec = Recorder(w, fps=HZ)
        rec.start_episode()
        fr = episode_frames(0, 1)
        with pytest.raises(ValueError, match="records 'action_commanded'.*commanded="):
            rec.add_tick({"state": fr["state"][0], "images/front": fr["images/front"][0]}, fr["action"][0], 0.0)
        rec.close()


def test_timing_stages_round_trip_with_nan(tmp_path):
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,), np.float32),
                           "images/front": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)})
    feats = features_from_space(obs, gym.spaces.Box(-1, 1, (2,), np.float32),
                                timing=("obs_capture", "inference_start", "applied"))
    path = tmp_path / "t.zarr"
    fr = episode_frames(0, 5)
    with StoreWriter(path, feats, fps=HZ) as w:
        rec = Recorder(w, fps=HZ)
        rec.start_episode()
        for i in range(5):
            t = 50.0 + i / HZ
            timing = {"obs_capture": t - 0.004, "applied": t + 0.001, "not_declared": 1.0}
            if i % 2 == 0:
                timing["inference_start"] = t - 0.003  # inference only on even ticks
            rec.add_tick({"state": fr["state"][i], "images/front": fr["images/front"][i]}, fr["action"][i], t,
                         timing=timing)
        rec.save_episode()
        rec.close()
    s = Store.open(path)
    ep = s.episode(0)
    t = 50.0 + np.arange(5) / HZ
    np.testing.assert_array_equal(ep["timing/obs_capture"], t - 0.004)
    np.testing.assert_array_equal(ep["timing/applied"], t + 0.001)
    np.testing.assert_array_equal(ep["timing/inference_start"], np.where(np.arange(5) % 2 == 0, t - 0.003, np.nan))
    assert "timing/not_declared" not in s.features


def test_abort_commits_what_was_recorded_as_aborted(tmp_path):
    path = tmp_path / "a.zarr"
    fr = episode_frames(0, 4)
    with StoreWriter(path, FEATURES, fps=HZ) as w:
        rec = Recorder(w, fps=HZ, source="robot")
        for e, n in enumerate([3, 4, 0]):
            rec.start_episode(seed=e)
            for i in range(n):
                rec.add_tick({"state": fr["state"][i], "images/front": fr["images/front"][i]}, fr["action"][i],
                             i / HZ)
            if e == 0:
                rec.save_episode(success=True, missed=2, held=1, retries=3)
            else:  # the last one had no tick yet: nothing to keep
                rec.abort_episode("camera front unplugged", missed=1)
        with pytest.raises(StoreError, match="unknown episode status 'lost'"):
            rec.save_episode(status="lost")
        assert rec.close() == [0, 1]
        assert rec.aborted == [(1, "camera front unplugged")]
    s = Store.open(path)
    assert s.lengths.tolist() == [3, 4]
    assert s.episodes["status"].tolist() == [STATUS["ok"], STATUS["aborted"]]
    assert s.episodes["missed_ticks"].tolist() == [2, 1]
    assert s.episodes["held_ticks"].tolist() == [1, 0] and s.episodes["retries"].tolist() == [3, 0]
    assert s.episodes["success"].tolist() == [1, -1]
    np.testing.assert_array_equal(s.episode(1)["state"], fr["state"])
