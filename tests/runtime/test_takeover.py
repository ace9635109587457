"""Human takeover in the deploy loop (sim + scripted operators): the device drives between the two key presses,
both handovers stay within the alignment tolerance, the safety filter clips the person too, handing back
restarts the chunk scheduler (no stale chunk runs), and the intervention mask is recorded exactly."""

import gymnasium as gym
import numpy as np
import pytest

from robolearn.devices import FakeTeleop
from robolearn.devices.base import DeviceBase
from robolearn.devices.protocols import DrivableTeleop
from robolearn.errors import InvalidValueError
from robolearn.record.recorder import Recorder
from robolearn.runtime import (ChunkScheduler, DelayEstimator, InlineBackend, NaiveJoin, SafetyConfig, SafetyFilter,
                               SimulatedLatencyBackend, VirtualClock)
from robolearn.runtime.deploy import TIMING_STAGES, DeployLoop, clock_ns
from robolearn.runtime.takeover import Takeover
from robolearn.spaces import INTERVENTION
from robolearn.store import Store, StoreWriter, features_from_space
from robolearn.store.intervention import episode_interventions, intervention_mask
from tests.runtime.test_deploy import DA, Planner, PointEnv

TOL = 0.05  # of each axis's range (2): 0.1 action units
MAX_REL = 0.2  # the safety filter's max relative target per tick


class Operator(DeviceBase):
    """A leader arm in a person's hand: it starts far from the robot; after the takeover key the person brings
    it to the robot (``speed`` per tick toward the robot's state), then drives it by ``drift`` per tick. At call
    ``spike`` the hand slips by 0.8 (the safety filter must clip it). Keys by call index."""

    def __init__(self, keys, start=(0.9, -0.9), speed=0.15, drift=(-0.03, 0.02), spike=None):
        super().__init__("operator")
        self.action_space = gym.spaces.Box(-1, 1, (DA,), np.float32)
        self.pose = np.asarray(start, np.float64)
        self.keys, self.speed, self.drift, self.spike = dict(keys), speed, np.asarray(drift), spike
        self.calls, self.seeking, self.commands = 0, False, []

    def reset(self):
        pass

    def get_action(self, obs):
        self._require_connected("get_action()")
        if self.seeking:
            gap = obs["state"] - self.pose
            if np.max(np.abs(gap)) <= 0.02:
                self.seeking = False  # at the robot: drive from here
            else:
                self.pose += np.clip(gap, -self.speed, self.speed)
        elif self.calls > min(self.keys, default=0):
            self.pose = self.pose + self.drift
        if self.calls == self.spike:
            self.pose = self.pose + 0.8
        if self.keys.get(self.calls) == "takeover" and self.calls == min(self.keys):
            self.seeking = True
        self.calls += 1
        out = np.clip(self.pose, -1, 1).astype(np.float32)
        self.commands.append(out)
        return out

    def events(self):
        return [self.keys[self.calls - 1]] if self.calls - 1 in self.keys else []


class TorqueLeader(Operator):
    """A leader with motors: ``drive_to`` servos it toward the target by 0.25 per call; the person only drifts
    it once released."""

    def __init__(self, keys, **kw):
        super().__init__(keys, **kw)
        self.driven, self.released = 0, 0

    def get_action(self, obs):
        self.seeking = False  # the motors align it, not the person
        return super().get_action(obs)

    def drive_to(self, target):
        self.driven += 1
        self.pose += np.clip(np.asarray(target) - self.pose, -0.25, 0.25)

    def release(self):
        self.released += 1


def make_loop(device, backend="inline", delay=0, on_step=None, max_steps=50, align=True):
    env, policy = PointEnv(), Planner()
    clock = VirtualClock(env.control_hz)
    if backend == "inline":
        make = lambda: InlineBackend(policy, time_ns=clock_ns(clock))  # noqa: E731
    else:
        make = lambda: SimulatedLatencyBackend(policy, delay, clock)  # noqa: E731
    sched = ChunkScheduler(NaiveJoin(), replan_every=4, delay=DelayEstimator(initial=delay))
    safety = SafetyFilter.for_env(env, SafetyConfig(max_relative_target=MAX_REL))
    device.connect()
    return DeployLoop(env, policy, clock, make, sched, safety, on_step=on_step, max_steps=max_steps,
                      takeover=Takeover(device, tolerance=TOL, align=align)), policy


def test_takeover_mid_episode_device_drives_without_a_jump_and_hands_back_fresh():
    records = []
    dev = Operator({10: "takeover", 35: "takeover"}, spike=25)
    loop, policy = make_loop(dev, on_step=records.append)
    res = loop.run_episode(seed=0)
    marked = [r.tick for r in records if r.intervention]
    first, last = marked[0], marked[-1]
    # The key at tick 10: the robot holds while the person brings the leader over; agreed -> the leader drives.
    assert all(r.action.tolist() == records[9].action.tolist() for r in records[10:first])
    assert first > 11 and last == 34 and marked == list(range(first, 35))
    assert res.takeover["takeovers"] == 1 and res.takeover["handbacks"] == 1
    assert res.takeover["wait_ticks"] == first - 10 and res.takeover["intervention_steps"] == 35 - first
    assert 0 <= res.takeover["handover_error_max"] <= 1.0
    for r in records[first:35]:  # what the device commanded (and what was applied, filtered)
        assert np.allclose(r.commanded, dev.commands[r.tick])
        assert set(r.timing) == {"applied"}
    jumps = np.abs(np.diff(np.stack([r.action for r in records]), axis=0)).max(axis=1)
    tol = TOL * 2.0
    assert jumps[first - 1] <= tol + 1e-6  # taking over: the leader agreed with the held target
    assert jumps[34] <= tol + 1e-6  # handing back: the first action is planned from the state now
    # The person is filtered too: the slip at call 25 was asked for and clipped to the relative limit.
    spike = records[25]
    assert np.max(np.abs(spike.commanded - records[24].action)) > 0.7
    assert np.max(np.abs(spike.action - records[24].action)) <= MAX_REL + 1e-6
    assert res.safety["clipped_relative"] >= 1
    # Handing back: every later action comes from a request made at or after the handback.
    later = [r for r in records[35:] if "request" in r.timing]
    assert later and min(r.timing["request"] for r in later) >= 35 * 0.1 - 1e-9
    assert all(req.tick < 10 or req.tick >= 35 for req in policy.requests)  # no inference while the person drove


def test_a_leader_with_torque_is_driven_to_the_robot_then_released():
    records = []
    dev = TorqueLeader({5: "takeover", 20: "takeover"})
    loop, _ = make_loop(dev, on_step=records.append, max_steps=30)
    res = loop.run_episode(seed=1)
    marked = [r.tick for r in records if r.intervention]
    assert isinstance(dev, DrivableTeleop) and dev.driven >= 2 and dev.released == 1
    assert marked == list(range(marked[0], 20)) and marked[0] > 6
    assert res.takeover["handover_error_max"] <= 1.0
    assert np.max(np.abs(records[marked[0]].action - records[marked[0] - 1].action)) <= TOL * 2 + 1e-6


def test_handing_back_drops_the_chunk_still_in_flight():
    records = []
    # async, D = 3: the request made at tick 7 is in flight when the person takes over at 8; it must never execute.
    dev = Operator({8: "takeover", 25: "takeover"})
    loop, policy = make_loop(dev, backend="sim", delay=3, on_step=records.append, max_steps=45)
    res = loop.run_episode(seed=2)
    assert [req.tick for req in policy.requests][:3] == [0, 7, 25] and res.scheduler["dropped_stale"] == 1
    after = [r for r in records[25:] if "request" in r.timing]
    assert after and all(r.timing["request"] >= 25 * 0.1 - 1e-9 for r in after)
    assert all(not r.intervention for r in records[25:28]) and res.takeover["handbacks"] == 1
    assert all(np.max(np.abs(b.action - a.action)) <= TOL * 2 + 1e-6 for a, b in zip(records[24:], records[25:]))


def test_delta_devices_hand_over_at_once():
    records = []
    dev = FakeTeleop(gym.spaces.Box(-1, 1, (DA,), np.float32), script=[None] * 12 + [[0.0, 0.0]] * 20,
                     events={12: "takeover", 20: "takeover"})
    loop, _ = make_loop(dev, on_step=records.append, max_steps=25, align=False)
    res = loop.run_episode(seed=0)
    assert [r.tick for r in records if r.intervention] == list(range(12, 20))
    assert res.takeover["wait_ticks"] == 0


def test_the_mask_is_recorded_exactly_with_episode_counts(tmp_path):
    env = PointEnv()
    feats = features_from_space(env.observation_space, env.action_space, commanded=True, timing=TIMING_STAGES,
                                intervention=True)
    writer = StoreWriter(tmp_path / "d.zarr", feats, fps=10)
    rec = Recorder(writer, fps=10)
    records = []

    def on_step(r):
        records.append(r)
        rec.add_step(r)

    for seed, keys in ((0, {8: "takeover", 30: "takeover"}), (1, {})):
        loop, _ = make_loop(Operator(keys), on_step=on_step, max_steps=40)
        rec.start_episode(seed=seed)
        loop.run_episode(seed=seed)
        rec.save_episode(success=False)
    rec.close()
    writer.close()
    store = Store.open(tmp_path / "d.zarr")
    mask = intervention_mask(store)
    assert mask.dtype == bool and mask.tolist() == [r.intervention for r in records]
    assert mask[:40].sum() == sum(r.intervention for r in records[:40]) > 0 and not mask[40:].any()
    counts = episode_interventions(store)
    assert counts["takeovers"].tolist() == [1, 0] and counts["intervention_steps"].tolist() == [mask[:40].sum(), 0]
    assert store.episode_extra(0)["takeovers"] == 1
    assert store.episode_extra(0)["intervention_steps"] == int(mask[:40].sum())


def test_old_stores_read_all_false_and_refuse_a_marked_tick(tmp_path):
    env = PointEnv()
    writer = StoreWriter(tmp_path / "old.zarr", features_from_space(env.observation_space, env.action_space), fps=10)
    rec = Recorder(writer, fps=10)
    rec.start_episode(seed=0)
    for t in range(5):
        rec.add_tick({"state": np.zeros(DA, np.float32)}, np.zeros(DA, np.float32), t * 0.1)
    rec.save_episode()
    rec.start_episode(seed=1)
    with pytest.raises(ValueError, match="intervention"):
        rec.add_tick({"state": np.zeros(DA, np.float32)}, np.zeros(DA, np.float32), 0.0, intervention=True)
    rec.close()
    writer.close()
    store = Store.open(tmp_path / "old.zarr")
    assert INTERVENTION not in store.features
    assert intervention_mask(store).tolist() == [False] * 5
    assert episode_interventions(store)["takeovers"].tolist() == [0]


def test_takeover_settings_are_checked():
    with pytest.raises(InvalidValueError, match="tolerance"):
        Takeover(FakeTeleop(), tolerance=0)
    with pytest.raises(InvalidValueError, match="--takeover-key 'x'"):
        Takeover(FakeTeleop(), key="x")
