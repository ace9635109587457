"""One gymnasium.Env for every Metaworld v3 task: metaworld's Sawyer simulation behind robolearn's keys.

Observation (gymnasium Dict):
    `state`            Box float32 (39,): metaworld's goal-observable observation vector, layout in
                       `STATE_NAMES` (hand xyz, gripper opening, two object poses, the same 18 values one
                       step earlier, goal xyz); the same bounds for every task (`state_bounds()`).
    `images/<camera>`  Box uint8 (H, W, 3), upright, one per name in `cameras` (any of `CAMERAS`).
Action: Box float32 (4,) in [-1, 1]: metaworld's hand xyz delta (1.0 moves the mocap target 1 cm per
    step) and gripper effort (+1 closes, -1 opens).
Info: `success`, `time`, `timestamps` (capture time per observation key: `robolearn.env.stamps`, shifted by
    `sensor_latency_s`), and after a step `action`: the action applied, clipped to [-1, 1].

Episodes: `reset(seed=s)` draws the task's object and goal positions from `self.np_random` (metaworld's
`seeded_rand_vec` path; the same seed gives the same scene). `terminated` is True on the first step that
metaworld scores as a success (`info["success"]`); gymnasium's TimeLimit truncates (300 steps, 500 for
push-back-v3: `tasks.max_episode_steps`), metaworld's own 500-step horizon is switched off. Control runs at
80 Hz (metaworld's 5 substeps of 2.5 ms). Reward: metaworld's shaped v2 reward (0 to 10).

Example::

    env = MetaworldEnv("pick-place-v3", image_size=(64, 64), cameras=("corner", "gripperPOV"))
    obs, info = env.reset(seed=0)          # obs["images/corner"]: (64, 64, 3) uint8
    expert = env.get_expert()
    obs, reward, terminated, truncated, info = env.step(expert.act(obs))
"""

from __future__ import annotations

import atexit
import difflib
import os
import sys
import warnings
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

# Headless by default, before mujoco is imported (same rule as robolearn_envs.mujoco.base).
if "MUJOCO_GL" not in os.environ and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robolearn.errors import InvalidValueError, MissingExtraError  # noqa: E402
from robolearn.env.stamps import SensorStamps  # noqa: E402
from robolearn_envs.metaworld import INSTALL_HINT  # noqa: E402
from robolearn_envs.metaworld.tasks import TASKS  # noqa: E402

# Camera name -> whether its frames need a 180-degree turn. Metaworld's corner cameras are oriented with
# image-up along world-down, so mujoco renders them upside down; turning (not flipping) keeps them
# unmirrored. `topview` and `gripperPOV` look down with image-up along +y (away from the robot base).
# `behindGripper` rides 0.5 m behind the hand: in tasks whose hand starts near the base (button-press,
# coffee, faucet, window, lever, hammer, disassemble) it starts inside the arm and sees only red.
CAMERAS: dict[str, bool] = {
    "corner": True,
    "corner2": True,
    "corner3": True,
    "corner4": True,
    "topview": False,
    "behindGripper": False,
    "gripperPOV": False,
}

MAX_IMAGE_SIDE = 2048  # px; the offscreen buffer is grown to the largest requested size

_POSE = ("x", "y", "z", "qw", "qx", "qy", "qz")
_FRAME = ("hand_x", "hand_y", "hand_z", "gripper_open", *(f"obj{i}_{p}" for i in (1, 2) for p in _POSE))
STATE_NAMES: tuple[str, ...] = (*_FRAME, *(f"prev_{n}" for n in _FRAME), "goal_x", "goal_y", "goal_z")

# metaworld's SawyerXYZEnv._HAND_SPACE (m); every task's goal lies inside it too.
HAND_LOW = (-0.525, 0.348, -0.0525)
HAND_HIGH = (0.525, 1.025, 0.7)
OBJECT_LIMIT = 10.0  # object positions (m) and quaternions are clipped to +-this: never reached on the table


def state_bounds() -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float64 (39,) of `state`, identical for all tasks so multi-task stores share one space."""
    frame_low = [*HAND_LOW, -1.0, *[-OBJECT_LIMIT] * 14]
    frame_high = [*HAND_HIGH, 1.0, *[OBJECT_LIMIT] * 14]
    return np.array([*frame_low, *frame_low, *HAND_LOW]), np.array([*frame_high, *frame_high, *HAND_HIGH])


def import_metaworld() -> Any:
    """`import metaworld`, or an ImportError saying which extra to install."""
    try:
        import metaworld
    except ImportError as e:
        raise MissingExtraError(f"the Metaworld envs need the `metaworld` package ({e}); install it with "
                          f"`{INSTALL_HINT}`.") from e
    return metaworld


class MetaworldEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A Metaworld v3 task behind gymnasium; `terminated` is True on success (module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 80.0}

    def __init__(
        self,
        task: str,
        image_size: Sequence[int] = (64, 64),
        cameras: Sequence[str] = ("corner",),
        render_size: Sequence[int] | None = None,
        render_camera: str = "corner",
        render_mode: str | None = "rgb_array",
        high_quality: bool = False,
        sensor_latency_s: dict[str, float] | None = None,
    ) -> None:
        """Args:
            task: metaworld task name, a key of `tasks.TASKS` (e.g. "pick-place-v3").
            image_size: (H, W) of every `images/<camera>` observation.
            cameras: names from `CAMERAS` to observe; () gives a state-only env (much faster).
            render_size: (H, W) of `render()` frames; defaults to image_size.
            render_camera: camera of `render()`.
            render_mode: "rgb_array" or None.
            high_quality: render like metaworld's own viewer (shadows, reflections, 4x multisampling);
                off, frames are plain and aliased but about 6x faster on a software renderer
                (llvmpipe, 64x64 `corner`: ~9 ms instead of ~55 ms).
            sensor_latency_s: observation key -> seconds its capture stamps lag the control time
                (`robolearn.env.stamps`); none by default.
        """
        if task not in TASKS:
            close = difflib.get_close_matches(str(task), TASKS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else " (see robolearn_envs.metaworld.tasks.TASKS)"
            raise InvalidValueError(f"unknown Metaworld task {task!r}{hint}")
        if render_mode not in (None, "rgb_array"):
            raise InvalidValueError(f"render_mode={render_mode!r} is not supported; accepted values: 'rgb_array', None.")
        self.image_size = _validate_size(image_size, "image_size")
        self.render_size = _validate_size(self.image_size if render_size is None else render_size, "render_size")
        self.cameras = _validate_cameras(cameras, "cameras")
        (self.render_camera,) = _validate_cameras((render_camera,), "render_camera")
        self.render_mode = render_mode
        self.task = task
        self.task_description = TASKS[task]

        import_metaworld()
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        mw = ALL_V3_ENVIRONMENTS[task]()
        # Goal-observable, seeded task sampling (what metaworld's MT benchmarks and its experts use):
        # each reset draws a fresh object/goal vector from `np_random`, which reset() shares with ours.
        mw._partially_observable = False
        del mw.sawyer_observation_space  # cached_property: recomputed with the goal bounds
        mw._freeze_rand_vec = False
        mw.seeded_rand_vec = True
        mw._set_task_called = True
        mw.max_path_length = sys.maxsize  # gymnasium's TimeLimit truncates instead
        self._mw = mw
        self._frames = _Frames(mw.model, mw.data, high_quality)
        self._frames.grow_buffer(self.image_size, self.render_size)

        self.control_hz = round(1.0 / (mw.model.opt.timestep * mw.frame_skip), 6)
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self.state_names = STATE_NAMES
        self._low, self._high = state_bounds()
        h, w = self.image_size
        spaces: dict[str, gym.Space] = {"state": gym.spaces.Box(
            self._low.astype(np.float32), self._high.astype(np.float32), (39,), np.float32)}
        for cam in self.cameras:
            spaces[f"images/{cam}"] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._stamps = SensorStamps(self.control_hz, self.observation_space, sensor_latency_s)
        self.sensor_latency_s = self._stamps.latency
        self._raw: np.ndarray | None = None  # latest metaworld observation (39,) float64, read by the expert
        self._hold = np.zeros(4, np.float32)  # see hold_action
        self._steps = 0

    # ---- gymnasium API ---------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._mw.np_random = self.np_random  # every draw of metaworld's reset comes from our generator
        raw, _ = self._mw.reset()
        self._raw = np.clip(raw, self._low, self._high)
        self._steps = 0
        # Hold: no hand motion, the gripper effort the reset left applied (metaworld's reset opens it: -1).
        self._hold = np.array([0.0, 0.0, 0.0, self._mw.data.ctrl[0]], np.float32)
        # metaworld scores success only in step() (its reward code keeps per-step state), so none at reset.
        return self._observation(), self._info(False)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._raw is None:
            raise RuntimeError("call reset() before step().")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}; expected {self.action_space.shape}.")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action {action.tolist()} contains NaN or inf; expected finite values in [-1, 1].")
        applied = np.clip(action, -1.0, 1.0)
        self._hold[3] = applied[3]  # the gripper effort is absolute: hold the last one sent
        raw, reward, _, _, mw_info = self._mw.step(applied)
        self._raw = np.clip(raw, self._low, self._high)
        self._steps += 1
        success = bool(mw_info["success"])
        return self._observation(), float(reward), success, False, self._info(success, applied)

    def render(self) -> np.ndarray | None:
        """The `render_camera` frame (H, W, 3) uint8 at `render_size`, upright; None if render_mode is None."""
        if self.render_mode is None:
            return None
        return self._frames.render(self.render_camera, self.render_size)

    def close(self) -> None:
        self._frames.close()
        self._mw.close()

    # ---- robolearn extras ------------------------------------------------------------------------

    def get_expert(self) -> MetaworldExpert:
        """Metaworld's scripted policy for this task; it reads the latest observation from this env."""
        return MetaworldExpert(self)

    def hold_action(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The action that keeps the arm still (`robolearn.runtime.hold`): a zero hand delta and the last gripper
        effort sent (at the start of an episode, the one metaworld's reset applied)."""
        if self._raw is None:
            raise RuntimeError("call reset() before hold_action().")
        return self._hold.copy()

    def upright_probe(self, camera: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames for `robolearn.env.check_upright`: plain, with a marker along world up, with one to the right."""
        (camera,) = _validate_cameras((camera or self.render_camera,), "camera")
        return self._frames.probe(camera, self.image_size)

    @property
    def raw_observation(self) -> np.ndarray:
        """Metaworld's latest observation (39,) float64, as the scripted experts expect it."""
        if self._raw is None:
            raise RuntimeError("call reset() before reading the observation.")
        return self._raw

    @property
    def metaworld_env(self) -> Any:
        """The underlying metaworld `SawyerXYZEnv` (privileged access for tests and debugging)."""
        return self._mw

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {"state": self._raw.astype(np.float32)}
        for cam in self.cameras:
            obs[f"images/{cam}"] = self._frames.render(cam, self.image_size)
        return obs

    def _info(self, success: bool, applied: np.ndarray | None = None) -> dict[str, Any]:
        info = {"success": success, "time": self._steps / self.control_hz, "timestamps": self._stamps.at(self._steps)}
        if applied is not None:
            info["action"] = applied
        return info


class MetaworldExpert:
    """`metaworld.policies.ENV_POLICY_MAP[task]` as a robolearn expert: `reset()`, `act(obs) -> (4,) float32`.

    Metaworld's policies parse its raw 39-d observation, so `act` reads it from the env (the `obs`
    argument is accepted for the expert protocol and ignored); they are stateless, so `reset` does nothing.
    """

    def __init__(self, env: MetaworldEnv) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self._env = env
        self._policy = ENV_POLICY_MAP[env.task]()

    def reset(self) -> None:
        pass

    def act(self, obs: Any = None) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Constant(s) may be too high": the env clips, as we do here
            action = self._policy.get_action(self._env.raw_observation)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def make_env(task: str, **kwargs: Any) -> MetaworldEnv:
    """Entry point of `robolearn/metaworld-<task>`; kwargs go to `MetaworldEnv` (image_size, cameras, ...)."""
    return MetaworldEnv(task, **kwargs)


# ---- rendering ---------------------------------------------------------------------------------------

# Renderers still open, closed at exit before MuJoCo's own `eglTerminate` (atexit is LIFO and MuJoCo
# registers it when the first GL context is made), so an env nobody closed exits quietly.
_OPEN: weakref.WeakSet[_Frames] = weakref.WeakSet()
_atexit_registered = False


def _close_open_frames() -> None:
    for frames in list(_OPEN):
        frames.close()


class _Frames:
    """Offscreen `mujoco.Renderer`s (one per image size) on metaworld's model; frames come out upright."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, high_quality: bool) -> None:
        self._model, self._data = model, data
        self._high_quality = high_quality
        model.vis.quality.offsamples = 4 if high_quality else 0  # read when a renderer's GL context is made
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    def grow_buffer(self, *sizes: tuple[int, int]) -> None:
        vis = self._model.vis.global_
        vis.offheight = max(vis.offheight, *(h for h, _ in sizes))
        vis.offwidth = max(vis.offwidth, *(w for _, w in sizes))

    def _renderer(self, size: tuple[int, int]) -> mujoco.Renderer:
        renderer = self._renderers.get(size)
        if renderer is None:
            global _atexit_registered
            renderer = mujoco.Renderer(self._model, height=size[0], width=size[1])
            # Kept across update_scene calls; shadow passes for metaworld's three lights dominate render time.
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self._high_quality
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = self._high_quality
            self._renderers[size] = renderer
            _OPEN.add(self)
            if not _atexit_registered:
                atexit.register(_close_open_frames)
                _atexit_registered = True
        return renderer

    @staticmethod
    def _upright(frame: np.ndarray, camera: str) -> np.ndarray:
        return np.ascontiguousarray(frame[::-1, ::-1]) if CAMERAS[camera] else frame

    def render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        renderer = self._renderer(size)
        renderer.update_scene(self._data, camera=camera)
        return self._upright(renderer.render(), camera)

    def probe(self, camera: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Plain frame, then the same with a marker drawn (scene only) along world up / world right of the view.

        Markers sit on the view axis halfway to the table but at most 0.3 m from the camera (in front of
        the arm, which fills the middle of `behindGripper`), half a half-frame off centre. World up is +z, or
        +y for a camera looking straight down (image-up away from the robot base, as in `CAMERAS`).
        """
        renderer = self._renderer(size)
        cam_id = mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        pos = self._data.cam_xpos[cam_id].copy()
        forward = -self._data.cam_xmat[cam_id].reshape(3, 3)[:, 2]
        depth = min(0.5 * (-pos[2] / forward[2] if forward[2] < -1e-3 else 1.0), 0.3)  # table top is z = 0
        up = np.array([0.0, 0.0, 1.0])
        if abs(forward @ up) > 0.99:
            up = np.array([0.0, 1.0, 0.0])
        up = up - (up @ forward) * forward
        up /= np.linalg.norm(up)
        right = np.cross(forward, up)
        half = depth * np.tan(np.deg2rad(self._model.cam_fovy[cam_id]) / 2)  # half-frame height at depth
        frames = [self.render(camera, size)]
        for direction in (up, right):
            renderer.update_scene(self._data, camera=camera)
            scene = renderer.scene
            if scene.ngeom >= scene.maxgeom:
                raise RuntimeError("no room in the MuJoCo scene for the upright probe marker.")
            mujoco.mjv_initGeom(
                scene.geoms[scene.ngeom],
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=np.array([0.1 * half, 0, 0]),
                pos=pos + depth * forward + 0.5 * half * direction,
                mat=np.eye(3).ravel(),
                rgba=np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32),
            )
            scene.ngeom += 1
            frames.append(self._upright(renderer.render(), camera))
        return frames[0], frames[1], frames[2]

    def close(self) -> None:
        """Free the GL contexts. Safe to call twice."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        _OPEN.discard(self)


def _validate_size(size: Sequence[int], name: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
        ok = (h, w) == tuple(size)
    except (TypeError, ValueError):
        ok = False
    if not ok or not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise InvalidValueError(f"{name}={size!r} is not a renderable (H, W): expected two positive integers "
                         f"<= {MAX_IMAGE_SIDE}.")
    return h, w


def _validate_cameras(cameras: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(cameras, str):
        raise InvalidValueError(f"{name} must be a sequence of camera names, e.g. ({cameras!r},), not a string.")
    cameras = tuple(cameras)
    for cam in cameras:
        if cam not in CAMERAS:
            raise InvalidValueError(f"unknown camera {cam!r} in {name}; accepted values: {', '.join(CAMERAS)}.")
    if len(set(cameras)) != len(cameras):
        raise InvalidValueError(f"{name}={cameras!r} names a camera twice.")
    return cameras
