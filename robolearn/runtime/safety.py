"""The safety filter: a chain of limits between the action source and the env, on by default.

Every action passes ``SafetyFilter.filter(action, obs) -> (action_sent, SafetyReport)`` before it
reaches the env or robot. The rules, in the order they run (a later rule wins over an earlier one):

1. **Gate** (always on): an action of the wrong shape, a non-numeric dtype, or any NaN/Inf is never
   sent: the filter *holds* (#7's hold, ``robolearn.runtime.hold``): it sends the env's
   ``hold_action()`` when built ``for_env``, else the last action it sent (the same thing for absolute
   targets; for delta actions the env's hold is the zero delta).
2. ``acceleration``: ``|a_t - 2 a_{t-1} + a_{t-2}| <= max_acceleration * dt**2`` per joint. Best effort:
   it yields to the hard rules below (a hold or a position limit may brake harder).
3. ``position``: ``low + margin <= a_t <= high - margin`` per joint (action units).
4. ``velocity``: ``|a_t - a_{t-1}| <= max_velocity * dt`` per joint (``dt`` = the control period).
5. ``relative``: ``|a_t - a_{t-1}| <= max_relative_target`` per joint.
6. ``workspace``: the Cartesian point the action commands (a forward-kinematics hook of the env) stays
   in a box; outside it, the step from ``a_{t-1}`` is scaled back (bisection) until it is inside.
   Without a hook the rule is skipped and ``SafetyFilter.notes`` says so.

Guarantees, for a last-sent action inside the limits (``reset`` with the hold target at episode start):
the action sent is finite, has the env's shape and dtype, lies inside the position limits, and moves
at most ``min(max_relative_target, max_velocity * dt)`` from the last one (to the dtype's rounding:
limits are rounded inwards to it). The position clamp keeps the output between the last action and the
clamped target, so the step rules never push it outside again, and the workspace bisection only
shortens the step.

The report names each rule that changed the action and the largest change it made (action units);
``SafetyFilter.counts`` counts calls per rule. The per-joint maths is plain Python floats: at Da = 7 a
vectorised numpy pass costs more in call overhead than the arithmetic (benchmarks/safety.py).

Example::

    config = load_safety_config("mujoco-reach")            # configs/safety/mujoco-reach.yaml
    safety = SafetyFilter.for_env(env, config)
    obs, _ = env.reset(seed=0)
    safety.reset(hold_action(env))                          # the measured position at episode start
    sent, report = safety.filter(np.array([0.9, np.nan, 0.0]), obs)
    report.held                                             # "non-finite value at index 1"
    sent, report = safety.filter(np.array([0.9, 0.0, 0.0]), obs)
    report.clipped                                          # (("relative", 0.4),)
    safety.counts                                           # {"malformed": 0, "nonfinite": 1, ...}
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from robolearn.config import ConfigError, from_dict, load_preset
from robolearn.runtime.hold import hold_action

__all__ = [
    "ForwardKinematics",
    "SafetyConfig",
    "SafetyFilter",
    "SafetyReport",
    "SafetyRule",
    "load_safety_config",
]

Limit = float | tuple[float, ...] | None
"""A per-joint limit: one value for every joint, one per joint, or None (rule off)."""


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    """Software limits for one robot or task; YAML presets in configs/safety/ set the values.

    Units are those of the action (normalized targets in [-1, 1] for the native MuJoCo tasks, joint
    positions for a position-controlled arm); per-joint values are a number (every joint) or a list.
    """

    enabled: bool = True
    """False sends actions unfiltered (the gate too); only for tests of the raw policy, never on a robot."""
    low: Limit = None
    """Lower position limit per joint; None: the env's action space lower bound."""
    high: Limit = None
    """Upper position limit per joint; None: the env's action space upper bound."""
    margin: float | tuple[float, ...] = 0.0
    """Distance kept from each position limit: the usable range is [low + margin, high - margin]."""
    max_relative_target: Limit = None
    """Largest change of the target per tick, |a_t - a_{t-1}| (LeRobot's max_relative_target); None: off."""
    max_velocity: Limit = None
    """Largest target velocity |a_t - a_{t-1}| / dt, in units per second; None: off."""
    max_acceleration: Limit = None
    """Largest target acceleration |a_t - 2 a_{t-1} + a_{t-2}| / dt**2, units per s**2; best effort
    (yields to the position, velocity and relative limits and to holds); None: off."""
    workspace_low: tuple[float, float, float] | None = None
    """Lower corner (x, y, z) in metres of the box the commanded Cartesian point must stay in; needs the
    env's forward-kinematics hook (`ForwardKinematics`), else the rule is skipped with a note."""
    workspace_high: tuple[float, float, float] | None = None
    """Upper corner (x, y, z) in metres of that box."""
    workspace_margin: float = 0.0
    """Distance in metres kept inside each face of the workspace box."""
    workspace_iterations: int = 12
    """Bisection steps that scale an action back into the workspace (the step is exact to 2**-n)."""

    def __post_init__(self) -> None:
        for name in ("max_relative_target", "max_velocity", "max_acceleration"):
            value = getattr(self, name)
            if value is not None and not all(v > 0 for v in _as_tuple(value)):
                raise ConfigError(f"safety.{name} must be > 0 (or null to turn it off), got {value!r}")
        if not all(m >= 0 for m in _as_tuple(self.margin)):
            raise ConfigError(f"safety.margin must be >= 0, got {self.margin!r}")
        if (self.workspace_low is None) != (self.workspace_high is None):
            raise ConfigError("safety.workspace_low and safety.workspace_high must be set together (or both null)")
        if self.workspace_low is not None:
            lo = [v + self.workspace_margin for v in self.workspace_low]
            hi = [v - self.workspace_margin for v in self.workspace_high]  # type: ignore[union-attr]
            if len(lo) != 3 or len(hi) != 3 or not all(a < b for a, b in zip(lo, hi)):
                raise ConfigError(
                    f"safety.workspace_low {self.workspace_low} / workspace_high {self.workspace_high} "
                    f"(margin {self.workspace_margin}) must be 3 values each with low + margin < high - margin"
                )
        if self.workspace_iterations < 1:
            raise ConfigError(f"safety.workspace_iterations must be >= 1, got {self.workspace_iterations}")


def load_safety_config(name: str, overrides: Mapping[str, Any] | None = None) -> SafetyConfig:
    """configs/safety/<name>.yaml (its ``safety:`` section) as a ``SafetyConfig``, with ``overrides`` on top."""
    data = load_preset("safety", name)
    section = data.get("safety", {}) if isinstance(data, dict) else None
    if not isinstance(section, dict) or set(data) - {"safety"}:
        raise ConfigError(f"configs/safety/{name}.yaml must hold one 'safety:' section, got keys {sorted(data)}")
    return from_dict(SafetyConfig, {**section, **(overrides or {})}, "safety")


@runtime_checkable
class ForwardKinematics(Protocol):
    """Env hook for the workspace rule: where an action sends the robot in Cartesian space."""

    def action_position(self, action: np.ndarray) -> np.ndarray:
        """The Cartesian point (3,) in metres that ``action`` (Da,) commands (e.g. the gripper's target)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SafetyReport:
    """What the filter did to one action."""

    clipped: tuple[tuple[str, float], ...] = ()
    """(rule, largest absolute change it made in action units), in chain order, for each rule that acted."""
    held: str | None = None
    """Why the action was replaced by the hold (the last action sent); None when it was not."""

    @property
    def ok(self) -> bool:
        """True when the action was sent unchanged."""
        return not self.clipped and self.held is None

    def amount(self, rule: str) -> float:
        """The largest change ``rule`` made (0.0 when it did not act)."""
        return next((v for name, v in self.clipped if name == rule), 0.0)


_UNCHANGED = SafetyReport()


class SafetyRule(Protocol):
    """One limit of the chain. Works on plain float lists (speed at Da ~ 7, see the module doc)."""

    name: str

    def apply(self, target: list[float], prev: list[float], prev_step: list[float], obs: Any) -> float:
        """Move ``target`` into the limit in place, given the last action sent ``prev`` and the step before
        it ``prev_step`` (``a_{t-1} - a_{t-2}``); return the largest absolute change made (0.0: none)."""


def _clamp(target: list[float], bounds: Sequence[tuple[float, float]]) -> float:
    """Clamp ``target[j]`` into ``bounds[j]`` in place; the largest change made."""
    worst = 0.0
    for j, (lo, hi) in enumerate(bounds):
        v = target[j]
        if v < lo:
            worst = max(worst, lo - v)
            target[j] = lo
        elif v > hi:
            worst = max(worst, v - hi)
            target[j] = hi
    return worst


class PositionLimit:
    """``lo[j] <= target[j] <= hi[j]``."""

    name = "position"

    def __init__(self, lo: Sequence[float], hi: Sequence[float]) -> None:
        self.lo, self.hi = list(lo), list(hi)
        self._bounds = list(zip(self.lo, self.hi))

    def apply(self, target, prev, prev_step, obs):
        return _clamp(target, self._bounds)


class StepLimit:
    """``|target[j] - prev[j]| <= bound[j]`` (the relative-target and velocity rules)."""

    def __init__(self, name: str, bound: Sequence[float]) -> None:
        self.name = name
        self.bound = list(bound)

    def apply(self, target, prev, prev_step, obs):
        return _clamp(target, [(p - r, p + r) for p, r in zip(prev, self.bound)])


class AccelerationLimit:
    """``|(target[j] - prev[j]) - prev_step[j]| <= bound[j]`` (bound = max_acceleration * dt**2)."""

    name = "acceleration"

    def __init__(self, bound: Sequence[float]) -> None:
        self.bound = list(bound)

    def apply(self, target, prev, prev_step, obs):
        return _clamp(target, [(p + s - a, p + s + a) for p, s, a in zip(prev, prev_step, self.bound)])


class WorkspaceLimit:
    """The commanded Cartesian point ``fk(target)`` stays in a box; outside, the step from ``prev`` is
    scaled back by bisection to the largest fraction whose point is inside (``prev`` itself when even a
    tiny step leaves the box, e.g. when the last action was already outside)."""

    name = "workspace"

    def __init__(self, fk: Callable[[np.ndarray], np.ndarray], lo: Sequence[float], hi: Sequence[float],
                 iterations: int = 12) -> None:
        self.fk, self.lo, self.hi, self.iterations = fk, tuple(lo), tuple(hi), iterations

    def _inside(self, action: list[float]) -> bool:
        x, y, z = np.asarray(self.fk(np.asarray(action)), dtype=np.float64).reshape(3).tolist()
        lo, hi = self.lo, self.hi
        return lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1] and lo[2] <= z <= hi[2]

    def apply(self, target, prev, prev_step, obs):
        if self._inside(target):
            return 0.0
        good, bad = 0.0, 1.0
        for _ in range(self.iterations):
            mid = 0.5 * (good + bad)
            if self._inside([p + mid * (t - p) for p, t in zip(prev, target)]):
                good = mid
            else:
                bad = mid
        worst = 0.0
        for j, (p, t) in enumerate(zip(prev, target)):
            v = p + good * (t - p)
            worst = max(worst, abs(t - v))
            target[j] = v
        return worst


def _as_tuple(value: float | Sequence[float]) -> tuple[float, ...]:
    return (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)


def _per_joint(value: float | Sequence[float], n: int, name: str) -> list[float]:
    values = _as_tuple(value)
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise ConfigError(f"safety.{name} has {len(values)} values; expected 1 or {n} (one per action dimension)")
    return list(values)


def _inward(lo: list[float], hi: list[float], dtype: np.dtype) -> tuple[list[float], list[float]]:
    """Round position limits inwards to ``dtype`` so that rounding the output can never leave them."""
    lo_d = np.asarray(lo, dtype=dtype)
    hi_d = np.asarray(hi, dtype=dtype)
    lo_d = np.where(lo_d.astype(np.float64) < lo, np.nextafter(lo_d, dtype.type(np.inf)), lo_d)
    hi_d = np.where(hi_d.astype(np.float64) > hi, np.nextafter(hi_d, dtype.type(-np.inf)), hi_d)
    return lo_d.astype(np.float64).tolist(), hi_d.astype(np.float64).tolist()


class SafetyFilter:
    """The gate plus a chain of ``SafetyRule``s (module doc); holds the last action sent.

    Args:
        rules: the chain, applied in order (``from_config`` builds the standard one).
        action_dim: Da; any other shape is malformed.
        dtype: dtype of the action sent (the env's action space dtype).
        notes: remarks on how the chain was built (e.g. a rule skipped for want of an env hook).
        enabled: False passes actions through unfiltered (``SafetyConfig.enabled``).
        hold: returns the action that holds the robot (the env's ``hold_action``); None: the last action sent.
    """

    def __init__(self, rules: Sequence[SafetyRule], action_dim: int, dtype: np.dtype | type = np.float32,
                 notes: Sequence[str] = (), enabled: bool = True,
                 hold: Callable[[], np.ndarray] | None = None) -> None:
        self.rules = list(rules)
        self.action_dim = int(action_dim)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"SafetyFilter: the action dtype must be a float type, got {self.dtype}")
        self.enabled = enabled
        self.notes = list(notes)
        self._hold = hold
        self._shape = (self.action_dim,)
        self._prev: list[float] | None = None
        self._prev_step = [0.0] * self.action_dim
        self.counts: dict[str, int] = {"malformed": 0, "nonfinite": 0, **{r.name: 0 for r in self.rules}}
        """Calls in which each rule acted (``malformed``/``nonfinite``: calls that held)."""
        self.max_change: dict[str, float] = {r.name: 0.0 for r in self.rules}
        """Largest change each rule made since ``reset``, in action units."""
        self.n_calls = 0
        self.n_holds = 0
        """Holds sent: rejected actions plus ``hold()`` calls (empty queue, watchdog, operator stop)."""

    @classmethod
    def from_config(cls, config: SafetyConfig, low: Sequence[float], high: Sequence[float], control_hz: float,
                    *, dtype: np.dtype | type = np.float32, fk: Callable[[np.ndarray], np.ndarray] | None = None,
                    hold: Callable[[], np.ndarray] | None = None) -> SafetyFilter:
        """The standard chain for ``config``; ``low``/``high`` are the action space bounds (used where the
        config leaves ``low``/``high`` unset), ``fk`` the forward-kinematics hook (None: no workspace rule),
        ``hold`` what holds the robot (None: the last action sent)."""
        if not control_hz > 0:
            raise ValueError(f"SafetyFilter: control_hz must be > 0, got {control_hz!r}")
        n = len(low)
        dt = 1.0 / float(control_hz)
        lo = _per_joint(low if config.low is None else config.low, n, "low")
        hi = _per_joint(high if config.high is None else config.high, n, "high")
        margin = _per_joint(config.margin, n, "margin")
        lo = [v + m for v, m in zip(lo, margin)]
        hi = [v - m for v, m in zip(hi, margin)]
        if not all(math.isfinite(a) and math.isfinite(b) and a <= b for a, b in zip(lo, hi)):
            raise ConfigError(
                f"safety position limits must be finite with low + margin <= high - margin per joint; "
                f"got low {lo} and high {hi} after margins (set safety.low/high for unbounded action spaces)"
            )
        lo, hi = _inward(lo, hi, np.dtype(dtype))
        rules: list[SafetyRule] = []
        if config.max_acceleration is not None:
            acc = _per_joint(config.max_acceleration, n, "max_acceleration")
            rules.append(AccelerationLimit([a * dt * dt for a in acc]))
        rules.append(PositionLimit(lo, hi))
        if config.max_velocity is not None:
            rules.append(StepLimit("velocity", [v * dt for v in _per_joint(config.max_velocity, n, "max_velocity")]))
        if config.max_relative_target is not None:
            rules.append(StepLimit("relative", _per_joint(config.max_relative_target, n, "max_relative_target")))
        notes = []
        if config.workspace_low is not None:
            if fk is None:
                notes.append("workspace limits skipped: the env provides no forward-kinematics hook "
                             "(ForwardKinematics.action_position)")
            else:
                m = config.workspace_margin
                rules.append(WorkspaceLimit(fk, [v + m for v in config.workspace_low],
                                            [v - m for v in config.workspace_high],  # type: ignore[union-attr]
                                            config.workspace_iterations))
        return cls(rules, n, dtype, notes, enabled=config.enabled, hold=hold)

    @classmethod
    def for_env(cls, env: Any, config: SafetyConfig) -> SafetyFilter:
        """The standard chain for a gymnasium env: bounds and dtype from its action space, ``dt`` from
        ``env.unwrapped.control_hz``, its ``hold_action`` for holds, the workspace hook when the env is a
        ``ForwardKinematics``."""
        space = env.action_space
        if len(space.shape) != 1:
            raise ValueError(f"SafetyFilter: expected a (Da,) action space, got shape {space.shape}")
        base = env.unwrapped
        fk = base.action_position if isinstance(base, ForwardKinematics) else None
        safety = cls.from_config(config, np.asarray(space.low, np.float64).tolist(),
                                 np.asarray(space.high, np.float64).tolist(), base.control_hz,
                                 dtype=space.dtype, fk=fk, hold=lambda: hold_action(env))
        for note in safety.notes:
            warnings.warn(f"{type(base).__name__}: {note}", stacklevel=2)
        return safety

    @property
    def last_sent(self) -> np.ndarray | None:
        """The last action sent (the hold target), or None before ``reset``."""
        return None if self._prev is None else np.asarray(self._prev, dtype=self.dtype)

    def reset(self, hold: np.ndarray | Sequence[float]) -> None:
        """Start an episode from ``hold`` (Da,): the target the robot holds now (its measured position at
        episode start); it is the reference of the step rules and what a malformed first action holds."""
        hold = np.asarray(hold, dtype=np.float64)
        if hold.shape != self._shape or not np.all(np.isfinite(hold)):
            raise ValueError(f"SafetyFilter.reset: the hold target must be finite with shape {self._shape}, "
                             f"got {hold.tolist()}")
        self._prev = hold.astype(self.dtype).astype(np.float64).tolist()
        self._prev_step = [0.0] * self.action_dim
        for k in self.counts:
            self.counts[k] = 0
        for k in self.max_change:
            self.max_change[k] = 0.0
        self.n_calls = self.n_holds = 0

    def hold(self, reason: str = "hold") -> tuple[np.ndarray, SafetyReport]:
        """The action that holds the robot (empty queue, watchdog, operator stop, a rejected action): the
        ``hold`` callable's, or the last action sent; the step rules restart from rest."""
        if self._prev is None:
            raise RuntimeError("SafetyFilter: call reset(hold_target) at the start of the episode before filtering")
        if self._hold is not None:
            held = np.asarray(self._hold(), dtype=self.dtype)
            if held.shape != self._shape or not np.all(np.isfinite(held)):
                raise RuntimeError(f"SafetyFilter: the hold action {held.tolist()} is not finite with shape "
                                   f"{self._shape}; the env's hold_action() is broken")
            self._prev = held.astype(np.float64).tolist()
        self._prev_step = [0.0] * self.action_dim
        self.n_holds += 1
        return np.asarray(self._prev, dtype=self.dtype), SafetyReport(held=reason)

    def filter(self, action: Any, obs: Any = None) -> tuple[np.ndarray, SafetyReport]:
        """The action to send for ``action`` (any array-like), given the latest observation ``obs``."""
        prev = self._prev
        if prev is None:
            raise RuntimeError("SafetyFilter: call reset(hold_target) at the start of the episode before filtering")
        self.n_calls += 1
        if not self.enabled:
            out = np.asarray(action, dtype=self.dtype)
            self._prev_step = [a - b for a, b in zip(out.tolist(), prev)]
            self._prev = out.tolist()
            return out, _UNCHANGED
        target, rule, why = self._gate(action)
        if target is None:
            self.counts[rule] += 1
            return self.hold(why)
        clipped = None
        prev_step = self._prev_step
        for rule in self.rules:
            change = rule.apply(target, prev, prev_step, obs)
            if change > 0.0:
                name = rule.name
                self.counts[name] += 1
                if change > self.max_change[name]:
                    self.max_change[name] = change
                if clipped is None:
                    clipped = []
                clipped.append((name, change))
        out = np.array(target, dtype=self.dtype)
        sent = out.tolist()
        self._prev_step = [a - b for a, b in zip(sent, prev)]
        self._prev = sent
        return out, (_UNCHANGED if clipped is None else SafetyReport(tuple(clipped)))

    def _gate(self, action: Any) -> tuple[list[float] | None, str, str]:
        """(values as floats, "", "") or (None, rule, why) for a malformed or non-finite action."""
        if type(action) is not np.ndarray:
            try:
                action = np.asarray(action)
            except (ValueError, TypeError) as e:
                return None, "malformed", f"malformed action ({e})"
        if action.shape != self._shape:
            return None, "malformed", f"malformed action of shape {action.shape}; expected {self._shape}"
        if action.dtype.kind not in "fiu":
            return None, "malformed", f"malformed action of dtype {action.dtype}; expected a real number type"
        values = action.tolist()
        if action.dtype.kind != "f":
            return [float(v) for v in values], "", ""
        if not math.isfinite(sum(values)):  # one sum catches NaN/Inf; huge finite values overflow it too
            for j, v in enumerate(values):
                if not math.isfinite(v):
                    return None, "nonfinite", f"non-finite value at index {j}"
        return values, "", ""

    def stats(self) -> dict[str, float]:
        """Calls, holds (rejected actions, all holds) and per-rule counts since ``reset``."""
        return {"calls": self.n_calls, "held": self.counts["malformed"] + self.counts["nonfinite"],
                "holds": self.n_holds,
                **{f"clipped_{k}": v for k, v in self.counts.items() if k not in ("malformed", "nonfinite")}}

    def __repr__(self) -> str:
        return f"SafetyFilter(Da={self.action_dim}, rules={[r.name for r in self.rules]})"
