"""`TwinEnv`: an arm's twin as a plain gymnasium env with the real follower's keys, spaces and units.

Registered as ``robolearn/twin-so101`` and ``robolearn/twin-koch`` (twins/__init__.py), so it trains and
deploys like any env (``robolearn deploy --env robolearn/twin-so101``) and a policy trained on it reads and
writes what it would on the arm:

Observation (gymnasium Dict):
    ``state``            Box float32 (6,): the follower's `FollowerArm.observation_space` ``state`` exactly:
                         degrees for body joints (unbounded, as a multi-turn joint reads), [0, 100] for the
                         gripper; each value is the joint's encoder tick normalised by the calibration an
                         emulated arm gets (`specs.emulated_calibration`), so the twin env and the arm on the
                         emulated bus (``port="emulate"``) report the same numbers for the same pose.
    ``images/<camera>``  Box uint8 (H, W, 3), upright, one per name in ``cameras`` (``front``, ``side``,
                         ``wrist``: the names a robot config gives its cameras).
Action: the follower's action space (body joints in [-180, 180] degrees, gripper [0, 100]): absolute joint
targets. Each is clipped to the space, turned into a goal tick (clamped to the joint's range, as the servo
clamps it) and driven at the servo's full speed; ``info["action"]`` is that goal in normalised units (what
`FollowerArm.send_action` returns). Step: ``1 / control_hz`` of physics (``n_substeps`` steps of ~2 ms).

Task: reach ``goal`` (default the twin's ready pose: the calibration middle, gripper half open) from a start
drawn around the rest pose (+- ``start_spread`` degrees per joint); success when every value is within
``tolerance`` (degrees / gripper units); reward 1 on success, else minus the largest error / 100;
``terminated`` on success. `get_expert()` moves the targets toward the goal at ``EXPERT_STEP`` per step.

Example::

    env = gymnasium.make("robolearn/twin-so101", cameras=("front", "wrist"), image_size=(96, 128))
    obs, info = env.reset(seed=0)         # obs["state"]: (6,) float32, obs["images/wrist"]: (96, 128, 3) uint8
    obs, reward, terminated, truncated, info = env.step(env.unwrapped.get_expert().act(obs))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from robolearn import spaces
from robolearn.env.stamps import SensorStamps
from robolearn.errors import InvalidValueError

from ..arms.base import ArmSpec, check_targets, norm_bounds
from ..arms.koch import KOCH_FOLLOWER
from ..arms.so101 import SO101_FOLLOWER
from ..bus.calibration import normalize, unnormalize
from .model import CAMERAS, MAX_IMAGE, TIMESTEP_S, ArmTwin, JointCommand
from .specs import TWINS, angle, emulated_calibration, ticks

__all__ = ["TwinEnv", "ReachExpert", "FOLLOWERS", "EXPERT_STEP", "make_so101", "make_koch"]

FOLLOWERS: dict[str, ArmSpec] = {"so101": SO101_FOLLOWER, "koch": KOCH_FOLLOWER}
"""The real follower each twin stands for (its keys, spaces and calibration rules)."""
EXPERT_STEP = 3.0
"""The expert's largest target step per control step (degrees or gripper units)."""


class ReachExpert:
    """Targets that walk from the measured state toward the goal, ``step`` per control step."""

    def __init__(self, goal: np.ndarray, space: gym.spaces.Box, step: float = EXPERT_STEP):
        self.goal, self.space, self.step = goal, space, step

    def reset(self) -> None:
        """Nothing to forget: each action follows from the observation."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = obs[spaces.STATE].astype(np.float64)
        target = state + np.clip(self.goal - state, -self.step, self.step)
        return np.clip(target, self.space.low, self.space.high).astype(np.float32)


class TwinEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """An arm twin behind gymnasium (module docstring).

    Args:
        arm: the twin (``so101``, ``koch``).
        cameras: rendered cameras, keys ``images/<name>``; any of ``front``, ``side``, ``wrist``.
        image_size: (H, W) of the camera images.
        render_size: (H, W) of `render()` (default ``image_size``).
        render_camera: the camera `render()` shows.
        render_mode: "rgb_array" or None (with no cameras and None the twin compiles without meshes: faster).
        control_hz: control steps per second.
        goal: the goal in normalised units, one per joint (default: the twin's ready pose).
        tolerance: success when every joint is this close to the goal (degrees / gripper units).
        start_spread: start joints are drawn uniformly this far around the rest pose (degrees).
        sensor_latency_s: per-key latency that shifts the capture stamps (`robolearn.env.stamps`).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30.0}

    def __init__(self, arm: str = "so101", cameras: Sequence[str] = ("front",), image_size: Sequence[int] = (96, 96),
                 render_size: Sequence[int] | None = None, render_camera: str = "front",
                 render_mode: str | None = "rgb_array", control_hz: float = 30.0, goal: Sequence[float] | None = None,
                 tolerance: float = 5.0, start_spread: float = 15.0,
                 sensor_latency_s: dict[str, float] | None = None) -> None:
        if arm not in TWINS:
            raise InvalidValueError(f"arm {arm!r} has no twin; accepted: {', '.join(TWINS)}")
        if render_mode not in (None, "rgb_array"):
            raise InvalidValueError(f"render_mode={render_mode!r} is not supported; accepted values: 'rgb_array', None")
        if not (isinstance(control_hz, (int, float)) and control_hz > 0):
            raise InvalidValueError(f"control_hz={control_hz!r}; expected a positive rate in Hz")
        if isinstance(cameras, str):
            raise InvalidValueError(f"cameras must be a sequence of camera names, e.g. ({cameras!r},), not a string")
        self.cameras = tuple(cameras)
        for cam in (*self.cameras, render_camera):
            if cam not in CAMERAS:
                raise InvalidValueError(f"unknown camera {cam!r}; accepted: {', '.join(CAMERAS)}")
        if len(set(self.cameras)) != len(self.cameras):
            raise InvalidValueError(f"cameras={self.cameras!r} names a camera twice")
        self.image_size = _size(image_size, "image_size")
        self.render_size = _size(self.image_size if render_size is None else render_size, "render_size")
        self.twin_spec, self.arm_spec = TWINS[arm], FOLLOWERS[arm]
        self.motors = [m for _, m in self.arm_spec.motors]
        self.calibration = emulated_calibration(self.arm_spec, self.twin_spec)
        self._cal = [self.calibration[n] for n in self.arm_spec.names]
        self.control_hz = float(control_hz)
        self.n_substeps = max(1, math.ceil(1.0 / (self.control_hz * TIMESTEP_S)))
        self.render_mode, self.render_camera = render_mode, render_camera
        self.twin = ArmTwin(self.twin_spec, visual=bool(self.cameras) or render_mode is not None,
                            timestep=1.0 / (self.control_hz * self.n_substeps))
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self.task_description = "move the arm to its ready pose"
        self.state_names = self.arm_spec.names

        state_low, state_high = zip(*(norm_bounds(m, state=True) for m in self.motors))
        act_low, act_high = zip(*(norm_bounds(m, state=False) for m in self.motors))
        obs = {spaces.STATE: gym.spaces.Box(np.array(state_low, np.float32), np.array(state_high, np.float32),
                                            dtype=np.float32)}
        for cam in self.cameras:
            obs[f"images/{cam}"] = gym.spaces.Box(0, 255, (*self.image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(obs)
        self.action_space = gym.spaces.Box(np.array(act_low, np.float32), np.array(act_high, np.float32),
                                           dtype=np.float32)
        default_goal = self._normalise(np.round([ticks(q) for q in self.twin_spec.ready]))
        self.goal = np.asarray(default_goal if goal is None else goal, np.float64)
        if self.goal.shape != self.action_space.shape or not np.all(np.isfinite(self.goal)):
            raise InvalidValueError(f"goal {list(np.atleast_1d(goal))} must hold {self.action_space.shape[0]} finite "
                                    f"values, one per joint ({', '.join(self.state_names)})")
        self.tolerance, self.start_spread = float(tolerance), float(start_spread)
        self._stamps = SensorStamps(self.control_hz, self.observation_space, sensor_latency_s)
        self.sensor_latency_s = self._stamps.latency
        self._hold: np.ndarray | None = None
        self._steps = 0

    # -- units --
    def _normalise(self, raw: Sequence[float]) -> np.ndarray:
        return np.array([normalize(m, c, r) for m, c, r in zip(self.motors, self._cal, raw)], np.float64)

    def measured(self) -> np.ndarray:
        """``state``: each joint's encoder tick, normalised (module docstring)."""
        return self._normalise(np.round([ticks(q) for q in self.twin.qpos]))

    def _apply(self, action: np.ndarray) -> np.ndarray:
        """Command the joints to ``action`` (inside the space); returns the goal really sent, normalised."""
        goal_ticks = [unnormalize(m, c, float(a)) for m, c, a in zip(self.motors, self._cal, action)]
        self.twin.commands = [JointCommand(target=angle(t), vmax=v) for t, v in zip(goal_ticks, self.twin_spec.max_speed)]
        return self._normalise(goal_ticks).astype(np.float32)

    # -- gymnasium --
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        spread = math.radians(self.start_spread)
        rest = np.asarray(self.twin_spec.rest)
        self.twin.reset(rest + self.np_random.uniform(-spread, spread, rest.shape))
        self._hold = self._apply(self.measured())  # torque on where the arm is
        self._steps = 0
        obs = self._observation()
        return obs, self._info(obs)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._hold is None:
            raise RuntimeError("call reset() before step()")
        action = check_targets(f"twin-{self.twin_spec.name}", action, self.action_space, self.state_names)
        applied = self._apply(np.clip(action, self.action_space.low, self.action_space.high))
        self._hold = applied.copy()  # the last target sent: what holds from now on
        self.twin.step(self.n_substeps)
        self._steps += 1
        obs = self._observation()
        success = self._success(obs)
        reward = 1.0 if success else -self._error(obs) / 100.0
        return obs, float(reward), success, False, self._info(obs, applied)

    def render(self) -> np.ndarray | None:
        """The ``render_camera`` frame (H, W, 3) uint8 at ``render_size``, upright; None if render_mode is None."""
        if self.render_mode is None:
            return None
        return self.twin.render(self.render_camera, self.render_size)

    def close(self) -> None:
        self.twin.close()

    # -- robolearn extras --
    def hold_action(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The last goal sent; at the start of an episode the measured pose (absolute targets: zero would move)."""
        if self._hold is None:
            raise RuntimeError("call reset() before hold_action()")
        return self._hold.copy()

    def get_expert(self) -> ReachExpert:
        return ReachExpert(self.goal, self.action_space)

    def _error(self, obs: dict[str, np.ndarray]) -> float:
        return float(np.max(np.abs(obs[spaces.STATE] - self.goal)))

    def _success(self, obs: dict[str, np.ndarray]) -> bool:
        return self._error(obs) < self.tolerance

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {spaces.STATE: self.measured().astype(np.float32)}
        for cam in self.cameras:
            obs[f"images/{cam}"] = self.twin.render(cam, self.image_size)
        return obs

    def _info(self, obs: dict[str, np.ndarray], applied: np.ndarray | None = None) -> dict[str, Any]:
        info = {"success": self._success(obs), "time": self.twin.time, "timestamps": self._stamps.at(self._steps)}
        if applied is not None:
            info["action"] = applied.copy()
        return info


def _size(size: Sequence[int], name: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
        ok = (h, w) == tuple(size) and 0 < h <= MAX_IMAGE[0] and 0 < w <= MAX_IMAGE[1]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidValueError(f"{name}={size!r} is not a renderable (H, W): expected two positive integers with "
                                f"H <= {MAX_IMAGE[0]} and W <= {MAX_IMAGE[1]}")
    return h, w


def make_so101(**kwargs: Any) -> TwinEnv:
    """``robolearn/twin-so101``."""
    return TwinEnv("so101", **kwargs)


def make_koch(**kwargs: Any) -> TwinEnv:
    """``robolearn/twin-koch``."""
    return TwinEnv("koch", **kwargs)
