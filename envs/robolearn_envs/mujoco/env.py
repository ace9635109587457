"""One gymnasium.Env for every native MuJoCo task: a `Sim` plus a `Task` (dm_control's Environment + Task).

The env owns the gymnasium surface (spaces, seeding, cameras, rendering, info); a task says what the
scene is and what it means (initial state, actuation, state vector, reward, success, scripted expert).

Observation (gymnasium Dict):
    `state`            Box float32 (Do,), layout in `env.state_names`
    `images/<camera>`  Box uint8 (H, W, 3), upright, one per name in `cameras`
    task sensors       e.g. `force` Box float32 (6,), from `Task.sensor_spaces()` (wipe.py)
Action: Box float32 (Da,) in [-1, 1]; the task defines what it means (absolute normalized targets).
Info: `success`, `time` (simulated seconds), `timestamps` (capture time per observation key:
    `robolearn.env.stamps`, shifted by `sensor_latency_s`), and after a step `action`: the action applied,
    clipped to [-1, 1] (what a recording stores).

Example::

    env = MujocoEnv(PushTask, image_size=(64, 64), cameras=("front",))
    obs, info = env.reset(seed=0)          # obs["images/front"]: (64, 64, 3) uint8
    expert = env.get_expert()
    obs, reward, terminated, truncated, info = env.step(expert.act(obs))
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np

from robolearn.errors import InvalidValueError
from robolearn.env.stamps import SensorStamps
from robolearn_envs.mujoco.base import ASSETS, Sim


class Expert(Protocol):
    """A scripted policy: `reset()` at episode start, then `act(obs) -> (Da,) float32` every step."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class Task(abc.ABC):
    """What a task adds to a `Sim`. Subclass once per task; the env calls these and nothing else."""

    xml: ClassVar[str]  # MJCF file name under assets/
    description: ClassVar[str]  # language instruction, also `env.task_description`
    control_hz: ClassVar[float] = 10.0
    state_names: ClassVar[tuple[str, ...]]  # one name per entry of the `state` vector (Do,)
    state_limit: ClassVar[float]  # every `state` entry lies in [-state_limit, state_limit]
    action_dim: ClassVar[int]  # Da

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    @abc.abstractmethod
    def initialize(self, rng: np.random.Generator) -> None:
        """Set the episode's initial state after `sim.reset()`, drawing randomness from `rng` only."""

    @abc.abstractmethod
    def command(self, action: np.ndarray) -> None:
        """Take one control step's action (Da,), already validated and clipped to [-1, 1]."""

    def substep(self) -> None:
        """Called before every physics substep (e.g. to ramp actuator setpoints)."""

    @abc.abstractmethod
    def state(self) -> np.ndarray:
        """The `state` observation (Do,) float32."""

    def sensor_spaces(self) -> dict[str, gym.spaces.Box]:
        """Extra observation keys beside `state` and images (e.g. `force`); none by default."""
        return {}

    def sensors(self) -> dict[str, np.ndarray]:
        """Values for `sensor_spaces()`, read after the last physics substep."""
        return {}

    @abc.abstractmethod
    def measured_action(self) -> np.ndarray:
        """The action (Da,) float32 whose targets are where the robot is now: the hold at episode start."""

    @abc.abstractmethod
    def success(self) -> bool: ...

    @abc.abstractmethod
    def reward(self) -> float: ...

    @abc.abstractmethod
    def expert(self) -> Expert:
        """A scripted expert reading privileged state from this task's sim."""


class MujocoEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A native MuJoCo task behind gymnasium; `terminated` is True on success."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10.0}

    def __init__(
        self,
        task: type[Task],
        image_size: Sequence[int] = (64, 64),
        cameras: Sequence[str] = ("front",),
        render_size: Sequence[int] | None = None,
        render_camera: str = "front",
        render_mode: str | None = "rgb_array",
        sensor_latency_s: dict[str, float] | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise InvalidValueError(f"render_mode={render_mode!r} is not supported; accepted values: 'rgb_array', None.")
        sim = Sim(ASSETS / task.xml)
        try:
            self.image_size = sim.validate_image_size(image_size, "image_size")
            self.render_size = sim.validate_image_size(
                self.image_size if render_size is None else render_size, "render_size"
            )
            self.cameras = sim.validate_cameras(cameras, "cameras")
            (self.render_camera,) = sim.validate_cameras((render_camera,), "render_camera")
        except ValueError:
            sim.close()
            raise
        self._sim = sim
        self._task = task(sim)
        self.render_mode = render_mode
        self.control_hz = float(task.control_hz)
        self.task_description = task.description
        self.state_names = task.state_names
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self._n_substeps = max(1, round(1.0 / (self.control_hz * sim.model.opt.timestep)))

        h, w = self.image_size
        spaces: dict[str, gym.Space] = {
            "state": gym.spaces.Box(-task.state_limit, task.state_limit, (len(task.state_names),), np.float32),
            **self._task.sensor_spaces(),
        }
        for cam in self.cameras:
            spaces[f"images/{cam}"] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (task.action_dim,), np.float32)
        self._hold: np.ndarray | None = None  # see hold_action
        try:
            self._stamps = SensorStamps(self.control_hz, self.observation_space, sensor_latency_s)
        except ValueError:
            sim.close()
            raise
        self.sensor_latency_s = self._stamps.latency  # key -> seconds its stamps lag the control time
        self._steps = 0

    # ---- gymnasium API ---------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._sim.reset()
        self._task.initialize(self.np_random)
        self._sim.forward()
        self._hold = self._task.measured_action()
        self._steps = 0
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}; expected {self.action_space.shape}.")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action {action.tolist()} contains NaN or inf; expected finite values in [-1, 1].")
        applied = np.clip(action, -1.0, 1.0)
        self._task.command(applied)
        self._hold = applied.copy()  # the last target sent: what holds from now on
        for _ in range(self._n_substeps):
            self._task.substep()
            self._sim.step()
        self._sim.forward()  # sensors, camera poses and contacts for the state after the last substep
        self._steps += 1
        success = self._task.success()
        return self._observation(), float(self._task.reward()), success, False, self._info(success, applied)

    def render(self) -> np.ndarray | None:
        """The `render_camera` frame (H, W, 3) uint8 at `render_size`, upright; None if render_mode is None."""
        if self.render_mode is None:
            return None
        return self._sim.render(self.render_camera, self.render_size)

    def close(self) -> None:
        self._sim.close()

    # ---- robolearn extras ------------------------------------------------------------------------

    def get_expert(self) -> Expert:
        """The task's scripted expert; it reads privileged state from this env's simulation."""
        return self._task.expert()

    def hold_action(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The action that keeps the robot still (`robolearn.runtime.hold`): the last action applied, and at
        the start of an episode the measured position. Targets are absolute, so a zero action would not hold."""
        if self._hold is None:
            raise RuntimeError("call reset() before hold_action().")
        return self._hold.copy()

    def upright_probe(self, camera: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames for `robolearn.env.check_upright` (see `Sim.upright_probe`)."""
        (camera,) = self._sim.validate_cameras((camera or self.render_camera,), "camera")
        return self._sim.upright_probe(camera, self.image_size)

    @property
    def sim(self) -> Sim:
        """The underlying simulation (privileged access for experts, tests and debugging)."""
        return self._sim

    @property
    def task(self) -> Task:
        return self._task

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {"state": np.asarray(self._task.state(), dtype=np.float32).copy()}
        obs.update({k: np.asarray(v, dtype=np.float32).copy() for k, v in self._task.sensors().items()})
        for cam in self.cameras:
            obs[f"images/{cam}"] = self._sim.render(cam, self.image_size)
        return obs

    def _info(self, success: bool | None = None, applied: np.ndarray | None = None) -> dict[str, Any]:
        info = {"success": bool(self._task.success() if success is None else success), "time": self._sim.time,
                "timestamps": self._stamps.at(self._steps)}
        if applied is not None:
            info["action"] = applied.copy()
        return info
