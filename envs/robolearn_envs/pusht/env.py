"""PushT (Diffusion Policy's 2-D pushing task) behind robolearn's keys: gym-pusht's simulation, composed.

The world is gym-pusht's 512 x 512 pymunk plane in pixel units, x to the right and y *down* the rendered
frame (image coordinates: the world point (x, y) is drawn at column x, row y of the 512 px canvas). "Up"
in this env therefore means toward y = 0, the top of every frame, which is what `upright_probe` checks.

Observation (gymnasium Dict), by `obs_type`:
    "pixels_agent_pos" (default, for image policies):
        `state`          Box float32 (2,) in [0, 512]: agent (pusher) x, y in px (`STATE_NAMES[:2]`).
        `images/front`   Box uint8 (H, W, 3), `image_size` (96 x 96 by default): the whole table, upright.
    "environment_state_agent_pos" (for state policies, no camera):
        `state`          Box float32 (18,) in [0, 512]: agent x, y, then the 8 (x, y) keypoints of the T
                         (gym-pusht's `get_keypoints` order), i.e. LeRobot's `agent_pos` + `environment_state`.
    Positions are clipped to [0, 512]; the pusher can overshoot a wall target by a pixel or two.
Action: Box float32 (2,) in [0, 512]: the absolute target (x, y) in px of the pusher, which a PD controller
    tracks (gym-pusht's convention; *not* a delta). Out-of-range targets are clipped; `info["action"]` is
    the target actually applied, which is what a recorder stores. `info["timestamps"]`: the capture time of
    each observation key (`robolearn.env.stamps`, shifted by `sensor_latency_s`).

Episodes: `reset(seed=s)` draws the agent and block poses from `self.np_random` (same seed, same scene).
`info["success"]` is gym-pusht's `is_success` (the block covers more than 95% of the goal) and `terminated`
is True on that step; gymnasium's TimeLimit truncates at 300 steps. Control runs at 10 Hz (10 physics
substeps of 10 ms). Reward: coverage / 0.95 clipped to [0, 1] (gym-pusht's).

PushT has no scripted expert: its demonstrations come from teleoperation (`robolearn teleop --env
robolearn/pusht --device mouse`). `get_expert()` returns `PushTPusher`, a naive heuristic that pushes the
block's centre toward the goal and ignores its angle: enough for the conformance check and smoke runs,
it almost never succeeds, so `robolearn collect` on PushT stops with "the expert succeeded in only ...".

Example::

    env = PushTEnv(image_size=(96, 96))
    obs, info = env.reset(seed=0)          # obs["images/front"]: (96, 96, 3) uint8, obs["state"]: (2,)
    obs, reward, terminated, truncated, info = env.step(np.array([256, 256], np.float32))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from robolearn.env.stamps import SensorStamps
from robolearn.errors import InvalidValueError, MissingExtraError
from robolearn_envs.pusht import INSTALL_HINT

OBS_TYPES = ("pixels_agent_pos", "environment_state_agent_pos")
CAMERA = "front"
WORLD_SIZE = 512.0  # px: the side of gym-pusht's plane and of the action box
GOAL_XY = (256.0, 256.0)  # gym-pusht's fixed goal pose (x, y); its angle is pi/4
STATE_NAMES: tuple[str, ...] = ("agent_x", "agent_y", *(f"kp{i}_{a}" for i in range(8) for a in "xy"))
MAX_IMAGE_SIDE = 2048


def import_gym_pusht() -> Any:
    """`gym_pusht.envs.pusht`, or an ImportError saying which extra to install."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        from gym_pusht.envs import pusht
    except ImportError as e:
        raise MissingExtraError(f"the PushT env needs the `gym-pusht` package ({e}); install it with "
                          f"`{INSTALL_HINT}`.") from e
    return pusht


class PushTEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """gym-pusht's PushT behind gymnasium with robolearn keys; `terminated` on success (module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10.0}

    task_description = "push the T-shaped block onto the target"
    teleop_mapping: ClassVar[dict[str, Any]] = {"mode": "absolute", "screen_y_down": True, "step": 8.0}
    """How teleop devices drive this env (`robolearn.devices.teleop`): actions are absolute pusher targets
    in frame pixels, y down; a held arrow key moves the target 8 px per tick (80 px/s at 10 Hz)."""

    def __init__(
        self,
        obs_type: str = "pixels_agent_pos",
        image_size: Sequence[int] = (96, 96),
        render_size: Sequence[int] | None = None,
        render_mode: str | None = "rgb_array",
        sensor_latency_s: dict[str, float] | None = None,
    ) -> None:
        """Args:
            obs_type: "pixels_agent_pos" (state (2,) + `images/front`) or "environment_state_agent_pos"
                (state (18,), no image).
            image_size: (H, W) of `images/front`.
            render_size: (H, W) of `render()` frames (which also mark the last action target with a red
                cross); defaults to image_size.
            render_mode: "rgb_array" or None.
            sensor_latency_s: observation key -> seconds its capture stamps lag the control time
                (`robolearn.env.stamps`); none by default.
        """
        if obs_type not in OBS_TYPES:
            raise InvalidValueError(f"obs_type={obs_type!r} is not supported; accepted values: {', '.join(OBS_TYPES)}.")
        if render_mode not in (None, "rgb_array"):
            raise InvalidValueError(f"render_mode={render_mode!r} is not supported; accepted values: 'rgb_array', None.")
        self.obs_type = obs_type
        self.image_size = _validate_size(image_size, "image_size")
        self.render_size = _validate_size(self.image_size if render_size is None else render_size, "render_size")
        self.render_mode = render_mode

        pusht = import_gym_pusht()
        (h, w), (rh, rw) = self.image_size, self.render_size
        # gym-pusht's own obs_type only decides what its get_obs() computes; we build observations ourselves.
        self._pt = pusht.PushTEnv(obs_type="environment_state_agent_pos", render_mode="rgb_array",
                                  observation_width=w, observation_height=h,
                                  visualization_width=rw, visualization_height=rh)
        self.control_hz = float(self._pt.control_hz)
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self.cameras = (CAMERA,) if obs_type == "pixels_agent_pos" else ()
        n_state = 2 if obs_type == "pixels_agent_pos" else 18
        self.state_names = STATE_NAMES[:n_state]
        spaces: dict[str, gym.Space] = {"state": gym.spaces.Box(0.0, WORLD_SIZE, (n_state,), np.float32)}
        if self.cameras:
            spaces[f"images/{CAMERA}"] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(0.0, WORLD_SIZE, (2,), np.float32)
        self._stamps = SensorStamps(self.control_hz, self.observation_space, sensor_latency_s)
        self.sensor_latency_s = self._stamps.latency
        self._ready = False
        self._steps = 0
        self._hold = np.zeros(2, np.float32)  # set by reset(), see hold_action

    # ---- gymnasium API ---------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._pt.np_random = self.np_random  # gym-pusht draws the initial poses from our generator
        self._pt.reset(options=options)  # options={"reset_to_state": [ax, ay, bx, by, angle]} is passed on
        self._pt._last_action = None
        self._ready = True
        self._steps = 0
        self._hold = self._agent_xy()  # no target sent yet: hold where the pusher is
        return self._observation(), self._info(False, self._pt._get_coverage(), None)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if not self._ready:
            raise RuntimeError("call reset() before step().")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}; expected {self.action_space.shape} "
                             "(the pusher's target x, y in px).")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action {action.tolist()} contains NaN or inf; expected finite px in [0, 512].")
        sent = np.clip(action, 0.0, WORLD_SIZE)
        self._hold = sent.copy()
        _, reward, terminated, _, pt_info = self._pt.step(sent.astype(np.float64))
        self._steps += 1
        success = bool(terminated)
        return self._observation(), float(reward), success, False, self._info(success, pt_info["coverage"], sent)

    def render(self) -> np.ndarray | None:
        """The whole table (H, W, 3) uint8 at `render_size`, upright, with the last target as a red cross."""
        if self.render_mode is None:
            return None
        if not self._ready:
            raise RuntimeError("call reset() before render().")
        return self._pt._render(visualize=True)

    def close(self) -> None:
        self._pt.close()

    # ---- robolearn extras ------------------------------------------------------------------------

    def get_expert(self) -> PushTPusher:
        """A naive heuristic pusher, not a demonstrator (module docstring): PushT demos come from teleop."""
        return PushTPusher(self)

    def hold_action(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The action that holds the pusher (`robolearn.runtime.hold`): the last target sent, and at the start
        of an episode the pusher's position. Not its position now: the PD controller would stop short of the
        target the operator last gave."""
        if not self._ready:
            raise RuntimeError("call reset() before hold_action().")
        return self._hold.copy()

    def upright_probe(self, camera: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames for `robolearn.env.check_upright`: plain, with a world marker up (y = 40), one right (x = 472).

        The markers are pymunk shapes added to the world for one frame each, so they go through the same
        world -> canvas -> image path as the agent and the block.
        """
        if camera not in (None, CAMERA):
            raise ValueError(f"unknown camera {camera!r}; PushT has one camera, {CAMERA!r}.")
        if not self._ready:
            raise RuntimeError("call reset() before upright_probe().")
        import pymunk

        frames = [self._frame()]
        for xy in ((GOAL_XY[0], 40.0), (WORLD_SIZE - 40.0, GOAL_XY[1])):
            marker = pymunk.Circle(self._pt.space.static_body, 24, offset=xy)
            marker.color = (0, 0, 0, 255)
            self._pt.space.add(marker)
            try:
                frames.append(self._frame())
            finally:
                self._pt.space.remove(marker)
        return frames[0], frames[1], frames[2]

    @property
    def coverage(self) -> float:
        """Fraction of the goal area the block covers (success above 0.95)."""
        return float(self._pt._get_coverage())

    @property
    def pusht_env(self) -> Any:
        """The underlying gym-pusht `PushTEnv` (privileged access for tests and debugging)."""
        return self._pt

    def _agent_xy(self) -> np.ndarray:
        return np.clip(np.array(self._pt.agent.position, dtype=np.float32), 0.0, WORLD_SIZE)

    def _frame(self) -> np.ndarray:
        h, w = self.image_size
        return self._pt._get_img(self._pt._draw(), width=w, height=h, render_action=False)

    def _observation(self) -> dict[str, np.ndarray]:
        if self.obs_type == "pixels_agent_pos":
            return {"state": self._agent_xy(), f"images/{CAMERA}": self._frame()}
        keypoints = self._pt.get_keypoints(self._pt._block_shapes).reshape(-1)
        state = np.concatenate([self._agent_xy(), np.clip(keypoints, 0.0, WORLD_SIZE)]).astype(np.float32)
        return {"state": state}

    def _info(self, success: bool, coverage: float, sent: np.ndarray | None) -> dict[str, Any]:
        info = {"success": success, "coverage": float(coverage), "time": self._steps / self.control_hz,
                "timestamps": self._stamps.at(self._steps)}
        if sent is not None:
            info["action"] = sent
        return info


class PushTPusher:
    """Heuristic: get behind the block (opposite the goal), then push its centre toward the goal.

    It reads the block pose from the env (privileged) and ignores the block's angle, so it moves the T
    near the goal but rarely aligns it: a conformance and smoke-test stand-in, not a demonstrator.
    """

    STANDOFF = 60.0  # px behind the block's centre where a push starts
    STRIDE = 30.0  # px per tick the target leads the block while pushing

    def __init__(self, env: PushTEnv) -> None:
        self._env = env

    def reset(self) -> None:
        pass

    def act(self, obs: Any = None) -> np.ndarray:
        pt = self._env.pusht_env
        block = np.array(pt.block.position, dtype=np.float64)
        agent = np.array(pt.agent.position, dtype=np.float64)
        to_goal = np.asarray(GOAL_XY) - block
        dist = float(np.linalg.norm(to_goal))
        if dist < 1.0:
            return self._env.hold_action()
        direction = to_goal / dist
        behind = block - direction * self.STANDOFF
        if np.linalg.norm(agent - behind) > 15.0 and np.dot(agent - block, direction) > -self.STANDOFF / 2:
            # Not behind the block yet: go around it, sideways first, so we do not push it the wrong way.
            side = np.array([-direction[1], direction[0]])
            side *= np.sign(np.dot(agent - block, side)) or 1.0
            target = block + side * self.STANDOFF * 1.5 - direction * self.STANDOFF
        elif np.linalg.norm(agent - behind) > 15.0:
            target = behind
        else:
            target = block + direction * min(self.STRIDE, dist)
        return np.clip(target, 0.0, WORLD_SIZE).astype(np.float32)


def make_env(**kwargs: Any) -> PushTEnv:
    """Entry point of `robolearn/pusht`; kwargs go to `PushTEnv` (obs_type, image_size, render_size, ...)."""
    return PushTEnv(**kwargs)


def _validate_size(size: Sequence[int], name: str) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise InvalidValueError(f"{name}={size!r} is not a (height, width) pair of ints.") from None
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE) or (h, w) != tuple(size):
        raise InvalidValueError(f"{name}={tuple(size)!r} is invalid; expected two ints in [1, {MAX_IMAGE_SIDE}].")
    return h, w
