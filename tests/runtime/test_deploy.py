"""The deploy loop on a tiny env with scripted chunk policies: stalls never delay a tick, holds are counted,
timing is recorded with NaN exactly where a stage did not happen, runs repeat per seed, and RTC's prefix is
the actions really planned."""

import threading

import gymnasium as gym
import numpy as np
import pytest

from robolearn.runtime import (ChunkScheduler, DelayEstimator, NaiveJoin, RTCJoin, SafetyConfig, SafetyFilter,
                               SimulatedLatencyBackend, ThreadBackend, VirtualClock)
from robolearn.runtime.deploy import TIMING_STAGES, DeployLoop

T, DA = 8, 2


class PointEnv(gym.Env):
    """A point jumps to the absolute target each step; the goal is (0.5, 0.5)."""

    control_hz = 10.0

    def __init__(self):
        self.observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (DA,), np.float32)})
        self.action_space = gym.spaces.Box(-1, 1, (DA,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.5, 0.0, DA).astype(np.float32)
        self.last = self.pos.copy()
        return {"state": self.pos.copy()}, {}

    def hold_action(self):
        return self.last.copy()

    def step(self, action):
        self.last = np.clip(np.asarray(action, np.float32), -1, 1)
        self.pos = self.last.copy()
        ok = bool(np.linalg.norm(self.pos - 0.5) < 0.05)
        return {"state": self.pos.copy()}, float(ok), ok, False, {"success": ok, "action": self.last.copy()}


class Planner:
    """Chunks that step toward the goal from the newest state; each action tagged by its request in dim 1's
    sign-free fraction so tests can tell chunks apart. Records every request."""

    input_keys = ["state"]
    n_obs_steps = 2

    def __init__(self, block: threading.Event | None = None):
        self.requests, self.block = [], block

    def reset(self, seed=None):
        self.requests = []

    def __call__(self, request):
        if self.block is not None and request.seq % 3 == 1:
            self.block.wait(10.0)  # a stalled inference
        self.requests.append(request)
        assert request.obs["state"].shape == (self.n_obs_steps, DA)
        start = request.obs["state"][-1]
        steps = np.arange(1, T + 1, dtype=np.float32)[:, None]
        return np.clip(start + 0.05 * steps, -1, 1).astype(np.float32)


def make_loop(policy, delay, join=NaiveJoin(), replan=4, on_step=None, max_steps=40, backend=None):
    env = PointEnv()
    clock = VirtualClock(env.control_hz)
    make = backend or (lambda: SimulatedLatencyBackend(policy, delay, clock))
    sched = ChunkScheduler(join, replan_every=replan, delay=DelayEstimator(initial=2))
    safety = SafetyFilter.for_env(env, SafetyConfig(max_relative_target=0.2))
    return DeployLoop(env, policy, clock, make, sched, safety, watchdog_periods=3, on_step=on_step,
                      max_steps=max_steps)


def test_a_stalled_chunk_never_delays_a_tick_and_holds_are_counted():
    records = []
    loop = make_loop(Planner(), lambda r: 25 if r.seq == 2 else 2, on_step=records.append)
    res = loop.run_episode(seed=0)
    ticks = [r.tick for r in records]
    assert ticks == list(range(40)) and res.episode.missed_ticks == 0  # every tick ran, none waited
    held = [i for i, r in enumerate(records) if np.isnan(r.timing.get("obs_capture", np.nan))]
    assert res.episode.holds == len(held) == res.scheduler["holds"] >= 15  # the stall: held and counted
    assert res.safety["holds"] == res.episode.holds
    assert res.watchdog["trips"] >= 1
    for i in held:  # a hold sends the last target (at the start: where the point is): it stays put
        before = records[i - 1].action if i else records[0].obs["state"]
        assert np.array_equal(records[i].action, before)


def test_a_blocked_inference_thread_never_blocks_the_loop():
    release = threading.Event()
    policy = Planner(block=release)
    unblock = lambda rec: rec.tick == 199 and release.set()  # noqa: E731  (the worker ends with the episode)
    try:
        loop = make_loop(policy, 0, backend=lambda: ThreadBackend(policy), max_steps=200, on_step=unblock)
        res = loop.run_episode(seed=0)  # virtual clock: as fast as the loop runs, inference stuck meanwhile
    finally:
        release.set()
    assert res.episode.steps == 200 and res.episode.holds >= 150 and res.scheduler["holds"] == res.episode.holds


def test_timing_and_commanded_per_tick_with_nan_where_no_stage_happened():
    records = []
    loop = make_loop(Planner(), 2, on_step=records.append)
    loop.run_episode(seed=1)
    period = 0.1
    for r in records:
        assert set(r.timing) <= set(TIMING_STAGES) and r.timing["applied"] == pytest.approx(r.tick * period)
        assert r.commanded.shape == r.action.shape == (DA,)
        if "obs_capture" in r.timing:  # executed: its chunk came from an observation D = 2 ticks before
            assert r.timing["delivery"] - r.timing["request"] == pytest.approx(2 * period)
            assert r.timing["obs_capture"] == r.timing["request"] <= r.timing["applied"]
        else:
            assert set(r.timing) == {"applied"}
    assert sum("obs_capture" not in r.timing for r in records) == 2  # standstill: the first chunk's D ticks


def test_virtual_time_repeats_per_seed():
    def actions(seed):
        recs = []
        make_loop(Planner(), lambda r: 1 + r.seq % 3, on_step=recs.append).run_episode(seed=seed)
        return np.stack([r.action for r in recs])

    assert np.array_equal(actions(4), actions(4)) and not np.array_equal(actions(4), actions(5))


def test_rtc_requests_carry_the_planned_actions_never_padding():
    policy = Planner()
    loop = make_loop(policy, 2, join=RTCJoin(), replan=3)
    loop.run_episode(seed=2)
    chunks = {}  # seq -> chunk the planner returned (recomputed: it is deterministic)
    for req in policy.requests:
        chunks[req.seq] = policy.__class__.__call__(Planner(), req)
    checked = 0
    for req in policy.requests[1:]:
        p = req.prefix
        assert p is not None and p.s == 3 and 0 <= p.d <= len(p.actions)
        # every prefix row is an action an earlier chunk planned for that execution index
        for i, a in enumerate(p.actions):
            idx = req.mark + i
            sources = [c[idx - r.mark] for r in policy.requests if r.seq < req.seq
                       for c in [chunks[r.seq]] if 0 <= idx - r.mark < T]
            assert any(np.array_equal(a, s) for s in sources)
            checked += 1
        assert not np.any(np.all(p.actions == 0, axis=-1))
    assert checked > 10
