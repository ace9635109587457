"""SafetyFilter: the gate (malformed / non-finite -> hold), each limit, the report and counters, configs,
and a property test over 1e5 generated actions (NaN, Inf, huge, wrong shape and dtype)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robolearn.config import ConfigError
from robolearn.runtime.safety import (
    ForwardKinematics,
    SafetyConfig,
    SafetyFilter,
    SafetyReport,
    load_safety_config,
)

DA = 7


def make(**kw) -> SafetyFilter:
    hz = kw.pop("hz", 50.0)
    f = SafetyFilter.from_config(SafetyConfig(**kw), [-1.0] * DA, [1.0] * DA, hz)
    f.reset(np.zeros(DA))
    return f


def test_unchanged_action_passes_with_empty_report():
    f = make(max_relative_target=0.5)
    a = np.linspace(-0.3, 0.3, DA).astype(np.float32)
    out, report = f.filter(a)
    assert out.dtype == np.float32 and out.shape == (DA,)
    np.testing.assert_array_equal(out, a)
    assert report.ok and report.clipped == () and report.held is None
    assert f.last_sent.tolist() == a.tolist()


@pytest.mark.parametrize("bad, rule, why", [
    (np.array([0.1, np.nan, 0, 0, 0, 0, 0]), "nonfinite", "non-finite value at index 1"),
    (np.array([0, 0, 0, 0, 0, 0, -np.inf], np.float32), "nonfinite", "non-finite value at index 6"),
    (np.zeros(3), "malformed", "shape (3,); expected (7,)"),
    (np.zeros((1, DA)), "malformed", "shape (1, 7)"),
    (np.zeros(DA, dtype=bool), "malformed", "dtype bool"),
    (np.zeros(DA, dtype=complex), "malformed", "dtype complex128"),
    (np.array(["a"] * DA), "malformed", "dtype <U1"),
    ([[0.0], [0.0, 1.0]], "malformed", "malformed action"),
    (None, "malformed", "shape ()"),
    (np.array([0.0] * DA, dtype=object), "malformed", "dtype object"),
])
def test_gate_holds_the_last_action_sent(bad, rule, why):
    f = make()
    first, _ = f.filter(np.full(DA, 0.25))
    out, report = f.filter(bad)
    np.testing.assert_array_equal(out, first)
    assert why in report.held and report.clipped == ()
    assert f.counts[rule] == 1 and f.stats()["held"] == 1
    out, report = f.hold("empty queue")  # a hold asked for by the loop: counted with the others
    np.testing.assert_array_equal(out, first)
    assert report.held == "empty queue" and f.stats()["holds"] == 2 and f.stats()["held"] == 1


def test_integer_actions_are_accepted_as_numbers():
    f = make()
    out, report = f.filter(np.array([1, 0, 0, 0, 0, 0, -1]))
    assert out.tolist() == [1, 0, 0, 0, 0, 0, -1] and out.dtype == np.float32 and report.ok


def test_position_limits_with_margin_and_report_amount():
    f = make(margin=0.1)
    out, report = f.filter(np.array([5.0, -1.0, 0.95, 0, 0, 0, 0]))
    assert out[:3].tolist() == pytest.approx([0.9, -0.9, 0.9])
    assert report.clipped == (("position", pytest.approx(4.1)),)
    assert report.amount("position") == pytest.approx(4.1) and report.amount("relative") == 0.0
    assert f.counts["position"] == 1 and f.max_change["position"] == pytest.approx(4.1)


def test_relative_and_velocity_limits_per_tick():
    f = make(max_relative_target=0.3, max_velocity=10.0)  # 10/s at 50 Hz = 0.2 per tick: tighter
    out, report = f.filter(np.full(DA, 1.0))
    np.testing.assert_allclose(out, 0.2, rtol=1e-6)
    assert report.amount("velocity") == pytest.approx(0.8) and report.amount("relative") == 0.0
    f = make(max_relative_target=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))
    out, report = f.filter(np.full(DA, -1.0))
    np.testing.assert_allclose(out, -np.arange(1, 8) / 10, rtol=1e-6)
    assert [name for name, _ in report.clipped] == ["relative"]


def test_acceleration_ramps_and_yields_to_a_hold():
    f = make(max_acceleration=100.0, hz=10.0)  # 100/s^2 at 10 Hz: the step may change by 1.0 per tick
    steps = []
    for _ in range(3):
        prev = f.last_sent
        out, _ = f.filter(np.full(DA, 10.0))
        steps.append(float(out[0] - prev[0]))
    # Step 1.0 would reach 1.0, then the position limit stops it (hard rule wins over best effort).
    assert steps == pytest.approx([1.0, 0.0, 0.0])
    f = make(max_acceleration=5.0, hz=10.0)  # 0.05 per tick per tick
    outs = [f.filter(np.full(DA, 1.0))[0][0] for _ in range(3)]
    assert outs == pytest.approx([0.05, 0.15, 0.30])
    held, report = f.filter(np.full(DA, np.nan))
    assert held[0] == pytest.approx(0.30) and report.held
    out, report = f.filter(np.full(DA, 1.0))  # after a hold the step restarts from rest
    assert out[0] == pytest.approx(0.35)


class BoxFK:
    """action -> xyz = 0.2 * action[:3] (a linear map, like the native MuJoCo tasks')."""

    def action_position(self, action):
        return 0.2 * np.asarray(action[:3], dtype=np.float64)


def test_workspace_scales_the_step_back_into_the_box():
    cfg = SafetyConfig(workspace_low=(-0.1, -0.1, -0.1), workspace_high=(0.1, 0.1, 0.05))
    f = SafetyFilter.from_config(cfg, [-1.0] * DA, [1.0] * DA, 50.0, fk=BoxFK().action_position)
    f.reset(np.zeros(DA))
    out, report = f.filter(np.array([0.4, 0.0, 1.0, 0.9, 0, 0, 0]))
    # z = 0.2 * 1.0 = 0.2 > 0.05: the step is scaled to 1/4 (z = 0.05), every joint alike.
    np.testing.assert_allclose(out, [0.1, 0, 0.25, 0.225, 0, 0, 0], atol=1e-3)
    assert 0.2 * out[2] <= 0.05
    assert report.amount("workspace") == pytest.approx(0.75, abs=1e-3)


class PlainEnv(gym.Env):
    control_hz = 20.0
    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,), np.float32)})
    action_space = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)

    def hold_action(self):
        return np.zeros(3, np.float32)  # a delta-action env: the zero delta holds


class FKEnv(PlainEnv):
    def action_position(self, action):
        return np.asarray(action, dtype=np.float64) * 0.1


def test_for_env_uses_bounds_rate_and_hook_or_notes_its_absence():
    cfg = SafetyConfig(max_velocity=2.0, workspace_low=(-0.1, -0.1, -0.1), workspace_high=(0.1, 0.1, 0.1))
    with pytest.warns(UserWarning, match="workspace limits skipped"):
        plain = SafetyFilter.for_env(PlainEnv(), cfg)
    assert "workspace" not in [r.name for r in plain.rules] and plain.notes
    assert isinstance(FKEnv(), ForwardKinematics)
    fk = SafetyFilter.for_env(FKEnv(), cfg)
    assert [r.name for r in fk.rules] == ["position", "velocity", "workspace"] and not fk.notes
    fk.reset(np.zeros(3))
    out, report = fk.filter(np.array([0.05, -0.05, 0.0]))
    assert out.tolist() == pytest.approx([0.05, -0.05, 0.0]) and report.ok  # 2/s at 20 Hz: 0.1 per tick
    out, report = fk.filter(np.array([5.0, 0.0, 0.0]))
    assert out[0] == pytest.approx(0.15) and report.amount("position") == pytest.approx(3.0)
    # A rejected action holds with the env's hold_action (here the zero delta), not the last action sent.
    out, report = fk.filter(np.array([np.inf, 0.0, 0.0]))
    assert out.tolist() == [0.0, 0.0, 0.0] and "non-finite" in report.held
    out, _ = fk.filter(np.array([0.5, 0.0, 0.0]))
    assert out[0] == pytest.approx(0.1)  # the step rules continue from the hold


def test_a_broken_env_hold_is_an_error():
    safety = SafetyFilter.from_config(SafetyConfig(), [-1.0], [1.0], 10.0, hold=lambda: np.array([np.nan]))
    safety.reset(np.zeros(1))
    with pytest.raises(RuntimeError, match="hold_action\(\) is broken"):
        safety.filter(np.array([np.nan]))


def test_filter_before_reset_and_bad_reset_are_errors():
    f = SafetyFilter.from_config(SafetyConfig(), [-1.0] * 2, [1.0] * 2, 10.0)
    with pytest.raises(RuntimeError, match=r"reset\(hold_target\)"):
        f.filter(np.zeros(2))
    with pytest.raises(ValueError, match="finite with shape"):
        f.reset(np.array([0.0, np.nan]))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="max_velocity must be > 0"):
        SafetyConfig(max_velocity=0.0)
    with pytest.raises(ConfigError, match="set together"):
        SafetyConfig(workspace_low=(0, 0, 0))
    with pytest.raises(ConfigError, match="max_relative_target has 2 values; expected 1 or 7"):
        SafetyFilter.from_config(SafetyConfig(max_relative_target=(0.1, 0.2)), [-1.0] * DA, [1.0] * DA, 10.0)
    with pytest.raises(ConfigError, match="low \\+ margin <= high - margin"):
        SafetyFilter.from_config(SafetyConfig(margin=1.5), [-1.0] * DA, [1.0] * DA, 10.0)
    with pytest.raises(ConfigError, match="safety.low/high for unbounded"):
        SafetyFilter.from_config(SafetyConfig(), [-np.inf] * DA, [np.inf] * DA, 10.0)


def test_presets_load_into_typed_configs():
    default = load_safety_config("default")
    assert default == SafetyConfig()
    reach = load_safety_config("mujoco-reach")
    assert reach.max_relative_target == 0.5 and reach.workspace_high == (0.2, 0.2, 0.23)
    assert load_safety_config("mujoco-reach", {"margin": 0.0}).margin == 0.0
    with pytest.raises(ConfigError, match="unknown config key 'safety.max_speed'"):
        load_safety_config("default", {"max_speed": 1.0})
    with pytest.raises(ConfigError, match="no safety preset 'nope'"):
        load_safety_config("nope")


def test_reach_expert_succeeds_through_its_safety_preset():
    pytest.importorskip("robolearn_envs")
    import robolearn_envs  # noqa: F401
    from robolearn.runtime.hold import hold_action

    env = gym.make("robolearn/mujoco-reach", cameras=(), image_size=(16, 16), render_mode=None)
    try:
        with pytest.warns(UserWarning, match="workspace limits skipped"):
            safety = SafetyFilter.for_env(env, load_safety_config("mujoco-reach"))
        task = env.unwrapped.task
        successes = held = 0
        for seed in range(3):
            env.reset(seed=seed)
            expert = env.unwrapped.get_expert()
            safety.reset(hold_action(env))
            np.testing.assert_allclose(safety.last_sent, task.ramp.to_action(task.effector_xyz), atol=1e-6)
            for k in range(50):
                action = expert.act(None)
                if k == 3:
                    action[1] = np.nan  # one broken action mid-episode: held, the episode goes on
                sent, report = safety.filter(action)
                held += report.held is not None
                _, _, terminated, truncated, info = env.step(sent)
                if terminated or truncated:
                    break
            successes += bool(info["success"])
        assert successes == 3 and held == 3
    finally:
        env.close()


def generated_actions(rng: np.random.Generator, n: int) -> list:
    """A mix of near, far, huge, NaN/Inf, wrong-shape and wrong-dtype actions."""
    kinds = rng.choice(10, size=n, p=[0.3, 0.2, 0.1, 0.08, 0.08, 0.08, 0.06, 0.04, 0.03, 0.03])
    base = rng.uniform(-1.2, 1.2, size=(n, DA))
    out: list = []
    for k, a in zip(kinds, base):
        if k == 0:
            out.append((a * 0.05).astype(np.float32))        # small moves
        elif k == 1:
            out.append(a.astype(np.float32))                 # anywhere, a bit beyond the limits
        elif k == 2:
            out.append(a * 10.0 ** rng.uniform(1, 300))      # huge, float64
        elif k == 3:
            a[rng.integers(DA)] = np.nan
            out.append(a.astype(np.float32))
        elif k == 4:
            a[rng.integers(DA)] = rng.choice([np.inf, -np.inf])
            out.append(a)
        elif k == 5:
            out.append(np.full(DA, rng.choice([3.4e38, -3.4e38, 1e308, -1e308])))
        elif k == 6:
            out.append(a[: rng.integers(0, DA)].astype(np.float32))   # too short
        elif k == 7:
            out.append(np.concatenate([a, a])[: DA + 1 + rng.integers(5)])  # too long
        elif k == 8:
            out.append(a.reshape(1, DA) if rng.random() < 0.5 else a.astype(np.float16))
        else:
            out.append(a.astype(np.complex64) if rng.random() < 0.5 else (a > 0))
    return out


def test_property_1e5_actions_always_inside_limits_and_never_jump():
    rng = np.random.default_rng(0)
    rel, vel, acc, hz, margin = 0.1, 4.0, 60.0, 50.0, 0.05  # velocity bound 0.08 per tick: the tighter
    f = make(max_relative_target=rel, max_velocity=vel, max_acceleration=acc, margin=margin, hz=hz)
    step_bound = min(rel, vel / hz)
    lo, hi = np.float32(-1 + margin), np.float32(1 - margin)
    actions = generated_actions(rng, 100_000)
    start = f.last_sent
    outs, held = [], []
    for a in actions:
        out, report = f.filter(a)
        assert out.shape == (DA,) and out.dtype == np.float32
        outs.append(out)
        held.append(report.held)
    sent = np.stack(outs)
    assert np.all(np.isfinite(sent)) and np.all(sent >= lo) and np.all(sent <= hi)
    prev = np.concatenate([start[None], sent[:-1]]).astype(np.float64)
    # float32 rounding of prev + step may add half an ulp (~6e-8 near 1.0), never more.
    assert np.abs(sent - prev).max() <= step_bound + 1e-7
    was_held = np.array([h is not None for h in held])
    np.testing.assert_array_equal(sent[was_held], prev[was_held])
    nonfinite = np.array([isinstance(a, np.ndarray) and a.shape == (DA,) and a.dtype.kind == "f"
                          and not np.all(np.isfinite(a)) for a in actions])
    assert nonfinite.sum() > 10_000 and np.all(was_held[nonfinite])
    assert all("non-finite" in held[i] for i in np.flatnonzero(nonfinite))
    assert f.n_calls == 100_000 and f.counts["nonfinite"] == nonfinite.sum()
    assert was_held.sum() == f.counts["malformed"] + f.counts["nonfinite"] and f.counts["malformed"] > 5_000
    assert min(f.counts[k] for k in ("acceleration", "velocity")) > 1_000 and f.counts["position"] > 0


def test_report_is_shared_when_nothing_changes():
    f = make()
    _, r1 = f.filter(np.zeros(DA))
    _, r2 = f.filter(np.zeros(DA))
    assert r1 is r2 and r1 == SafetyReport()
