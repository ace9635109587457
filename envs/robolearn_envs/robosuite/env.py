"""One gymnasium.Env for the robosuite tasks: a Panda under robosuite's OSC_POSE controller behind robolearn's keys.

Observation (gymnasium Dict):
    `state`            Box float32 (Do,): robot proprio (eef pos, eef quat xyzw, finger qpos) then the task's
                       object observations, columns in `tasks.STATE_LAYOUT[task]` (also `env.state_layout`);
                       Do = 19 (lift), 32 (stack), 23 (pickplacecan, nutassemblysquare). Quaternion entries are
                       bounded by +-1, everything else by +-`STATE_LIMIT`.
    `images/<camera>`  Box uint8 (H, W, 3), upright, one per name in `cameras` (any of `CAMERAS`).
Action: Box float32 (7,) in [-1, 1], what robosuite's OSC_POSE (composite controller "BASIC") expects: eef
    position delta (1.0 = a 5 cm goal offset, base frame = world axes for these scenes), eef orientation
    delta as axis-angle (1.0 = 0.5 rad), gripper (+1 closes, -1 opens).
Info: `success`, `time`, `timestamps` (capture time per observation key: `robolearn.env.stamps`, shifted by
    `sensor_latency_s`), and after a step `action`: the action applied, clipped to [-1, 1].

Episodes: `reset(seed=s)` reseeds robosuite's generator (object placement, robot joint noise) from
`self.np_random`, so the same seed gives the same scene and unseeded resets continue the seeded stream.
The scene model (e.g. Lift's randomly sized cube) is built once, with robosuite seed 0, and kept
(`hard_reset=False`, as robomimic does): only placements vary between episodes. `terminated` is True on
the first step robosuite's `_check_success()` holds (`info["success"]`); gymnasium's TimeLimit truncates
at `tasks.TASKS[task].max_episode_steps` (robosuite's own horizon is switched off). Control runs at 20 Hz
(25 physics steps of 2 ms). Reward: robosuite's, sparse (1.0 on success) unless `reward_shaping=True`.

Rendering: plain by default (`high_quality=False`): no shadows, no floor/table reflections, no skybox, no
multisampling; frames are aliased but several times faster on a software renderer (llvmpipe).
`high_quality=True` renders as robosuite does (all four on, 4x multisampling). `PLAIN_RENDER_FLAGS` lists
the scene flags switched off.

Example::

    env = RobosuiteEnv("lift", cameras=("agentview", "robot0_eye_in_hand"))
    obs, info = env.reset(seed=0)          # obs["images/agentview"]: (84, 84, 3) uint8
    expert = env.get_expert()
    obs, reward, terminated, truncated, info = env.step(expert.act(obs))
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

# Headless by default, before mujoco/robosuite are imported (same rule as robolearn_envs.mujoco.base).
if "MUJOCO_GL" not in os.environ and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robolearn.env.stamps import SensorStamps  # noqa: E402
from robolearn.errors import InvalidValueError, MissingExtraError  # noqa: E402
from robolearn_envs.robosuite import INSTALL_HINT  # noqa: E402
from robolearn_envs.robosuite.tasks import STATE_LAYOUT, TASKS  # noqa: E402

# robosuite's standard cameras, present in all four scenes. robosuite renders with OpenGL's bottom-up row
# order, so every frame is flipped vertically (a flip, not a turn: the raw frame is mirrored top-bottom).
CAMERAS: tuple[str, ...] = ("agentview", "robot0_eye_in_hand", "frontview", "birdview")

# Image-up, in world axes, of the cameras that look down on the table: robosuite's birdview has the robot
# base (-x) at the top; the wrist camera, with the gripper at robosuite's reset yaw, has the reach direction
# (+x, away from the base) at the top and the fingers at the bottom.
DOWN_CAMERA_UP: dict[str, tuple[float, float, float]] = {
    "birdview": (-1.0, 0.0, 0.0),
    "robot0_eye_in_hand": (1.0, 0.0, 0.0),
    "agentview": (0.0, 0.0, 1.0),
    "frontview": (0.0, 0.0, 1.0),
}

CONTROL_HZ = 20.0
STATE_LIMIT = 10.0  # bound (m) of positions and offsets in `state`; never reached on the table
MAX_IMAGE_SIDE = 2048

# Scene render flags that `high_quality=False` switches off (robosuite keeps MuJoCo's defaults: all on).
# The floor and table are reflective, so reflections re-render the scene; with them, shadows, the skybox
# and 4x multisampling (`vis.quality.offsamples`) a software renderer spends most of a frame on effects.
PLAIN_RENDER_FLAGS: tuple[mujoco.mjtRndFlag, ...] = (
    mujoco.mjtRndFlag.mjRND_SHADOW,
    mujoco.mjtRndFlag.mjRND_REFLECTION,
    mujoco.mjtRndFlag.mjRND_SKYBOX,
)
HIGH_QUALITY_OFFSAMPLES = 4  # MuJoCo's and robosuite's default multisampling


def import_robosuite() -> Any:
    """`import robosuite` (quietened to warnings), or an ImportError saying which extra to install."""
    try:
        import robosuite
    except ImportError as e:
        raise MissingExtraError(f"the robosuite envs need the `robosuite` package ({e}); install it with "
                          f"`{INSTALL_HINT}`.") from e
    logging.getLogger("robosuite_logs").setLevel(logging.WARNING)  # one INFO line per controller load otherwise
    return robosuite


def controller_config() -> dict[str, Any]:
    """robosuite 1.5's default composite controller of the Panda: "BASIC", OSC_POSE on the arm, GRIP gripper.

    `robot="Panda"` loads robosuite's `default_panda.json` (arm part only); `controller="BASIC"` would load
    the generic basic.json, whose torso/head/base/legs parts the Panda lacks (one warning each).
    """
    robosuite = import_robosuite()
    config = robosuite.load_composite_controller_config(robot="Panda")
    arm = config["body_parts"]["right"]
    if config["type"] != "BASIC" or arm["type"] != "OSC_POSE" or arm["input_type"] != "delta":
        raise RuntimeError(f"robosuite's default Panda controller is {config['type']} / {arm['type']} "
                           f"({arm['input_type']}); expected BASIC with delta OSC_POSE (robosuite 1.5.x).")
    return config


class RobosuiteEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A robosuite task behind gymnasium; `terminated` is True on success (module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(
        self,
        task: str,
        image_size: Sequence[int] = (84, 84),
        cameras: Sequence[str] = ("agentview",),
        render_size: Sequence[int] | None = None,
        render_camera: str = "agentview",
        render_mode: str | None = "rgb_array",
        reward_shaping: bool = False,
        high_quality: bool = False,
        sensor_latency_s: dict[str, float] | None = None,
    ) -> None:
        """Args:
            task: a key of `tasks.TASKS`: "lift", "stack", "pickplacecan" or "nutassemblysquare".
            image_size: (H, W) of every `images/<camera>` observation.
            cameras: names from `CAMERAS` to observe; () gives a state-only env (no offscreen renderer
                until `render()` is first called; several times faster).
            render_size: (H, W) of `render()` frames; defaults to image_size.
            render_camera: camera of `render()`.
            render_mode: "rgb_array" or None.
            reward_shaping: robosuite's dense staged reward instead of the sparse success reward.
            high_quality: render as robosuite does (shadows, reflections, skybox, 4x multisampling); off
                (the default), frames are plain and aliased but several times faster on a software
                renderer (llvmpipe, 84x84 `agentview`: see envs/README.md).
            sensor_latency_s: observation key -> seconds its capture stamps lag the control time
                (`robolearn.env.stamps`); none by default.
        """
        if task not in TASKS:
            close = difflib.get_close_matches(str(task), TASKS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; accepted values: {', '.join(TASKS)}"
            raise InvalidValueError(f"unknown robosuite task {task!r}{hint}.")
        if render_mode not in (None, "rgb_array"):
            raise InvalidValueError(f"render_mode={render_mode!r} is not supported; accepted values: 'rgb_array', None.")
        self.image_size = _validate_size(image_size, "image_size")
        self.render_size = _validate_size(self.image_size if render_size is None else render_size, "render_size")
        self.cameras = _validate_cameras(cameras, "cameras")
        (self.render_camera,) = _validate_cameras((render_camera,), "render_camera")
        self.render_mode = render_mode
        self.high_quality = bool(high_quality)
        self.task = task
        self.task_description = TASKS[task].description
        self.control_hz = CONTROL_HZ
        self.state_layout = STATE_LAYOUT[task]

        robosuite = import_robosuite()
        self._rs = robosuite.make(
            TASKS[task].env_name,
            robots="Panda",
            controller_configs=controller_config(),
            control_freq=int(CONTROL_HZ),
            has_renderer=False,
            # The offscreen context is made by `_context()` on first use, after the model's render settings:
            # frames come from `_frame`, the same path as render() and upright_probe().
            has_offscreen_renderer=False,
            use_camera_obs=False,
            use_object_obs=True,
            reward_shaping=reward_shaping,
            ignore_done=True,  # gymnasium's TimeLimit truncates
            hard_reset=False,  # keep one model and sim: fast resets, and GL contexts survive them
            seed=0,  # fixes the scene model (Lift's cube size, ...); placements are reseeded on reset()
        )
        self._rs_obs: dict[str, np.ndarray] | None = None
        self._check_layout(self._rs.reset())
        self._steps = 0

        n = self.state_layout[-1][2]
        low = np.full(n, -STATE_LIMIT, np.float32)
        for key, start, stop in self.state_layout:
            if key.endswith("quat"):
                low[start:stop] = -1.0
        self._low, self._high = low, -low
        h, w = self.image_size
        spaces: dict[str, gym.Space] = {"state": gym.spaces.Box(self._low, self._high, (n,), np.float32)}
        for cam in self.cameras:
            spaces[f"images/{cam}"] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        self._stamps = SensorStamps(self.control_hz, self.observation_space, sensor_latency_s)
        self.sensor_latency_s = self._stamps.latency

    # ---- gymnasium API ---------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        # robosuite's placement samplers and robot hold references to this one Generator: reseed it in place.
        episode_seed = int(self.np_random.integers(2**63))
        self._rs.rng.bit_generator.state = np.random.PCG64(episode_seed).state
        self._rs_obs = self._rs.reset()
        self._steps = 0
        return self._observation(), self._info(bool(self._rs._check_success()))

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._rs_obs is None:
            raise RuntimeError("call reset() before step().")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}; expected {self.action_space.shape}.")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action {action.tolist()} contains NaN or inf; expected finite values in [-1, 1].")
        applied = np.clip(action, -1.0, 1.0)
        self._rs_obs, reward, _, _ = self._rs.step(applied.astype(np.float64))
        self._steps += 1
        success = bool(self._rs._check_success())
        return self._observation(), float(reward), success, False, self._info(success, applied)

    def render(self) -> np.ndarray | None:
        """The `render_camera` frame (H, W, 3) uint8 at `render_size`, upright; None if render_mode is None."""
        if self.render_mode is None:
            return None
        return self._frame(self.render_camera, self.render_size)

    def close(self) -> None:
        """Free the sim and its GL context. Safe to call twice."""
        if getattr(self, "_rs", None) is not None and self._rs.sim is not None:
            self._rs.close()

    # ---- robolearn extras ------------------------------------------------------------------------

    def get_expert(self) -> Any:
        """A scripted waypoint expert for this task (experts.py); it reads privileged state from this env."""
        from robolearn_envs.robosuite.experts import make_expert

        return make_expert(self)

    def hold_action(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The action that keeps the arm still (`robolearn.runtime.hold`): all zeros. The pose is a delta, and
        robosuite's Panda gripper integrates its command (0 leaves the fingers where they are)."""
        if self._rs_obs is None:
            raise RuntimeError("call reset() before hold_action().")
        return np.zeros(self.action_space.shape, np.float32)

    @property
    def robosuite_env(self) -> Any:
        """The underlying robosuite environment (privileged access for experts, tests and debugging)."""
        return self._rs

    def upright_probe(self, camera: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames for `robolearn.env.check_upright`: plain, with a marker along world up, with one to the right.

        Rendered through the same robosuite context and flip as the observations; the markers are drawn
        into the scene only, halfway to the table (at most 0.3 m from the camera), half a half-frame
        off centre. World up is +z; for a camera looking (nearly) straight down it is `DOWN_CAMERA_UP[camera]`.
        """
        (camera,) = _validate_cameras((camera or self.render_camera,), "camera")
        ctx = self._context()
        model, data = self._rs.sim.model._model, self._rs.sim.data._data
        cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        pos = data.cam_xpos[cam_id].copy()
        forward = -data.cam_xmat[cam_id].reshape(3, 3)[:, 2]
        table_z = float(self._rs.table_offset[2]) if hasattr(self._rs, "table_offset") else 0.8
        depth = min(0.5 * ((table_z - pos[2]) / forward[2] if forward[2] < -1e-3 else 1.0), 0.3)
        up = np.array([0.0, 0.0, 1.0])
        if abs(forward @ up) > 0.9:
            up = np.array(DOWN_CAMERA_UP[camera])
        up = up - (up @ forward) * forward
        up /= np.linalg.norm(up)
        right = np.cross(forward, up)
        half = depth * np.tan(np.deg2rad(model.cam_fovy[cam_id]) / 2)
        h, w = self.image_size
        frames = [self._frame(camera, self.image_size)]
        for direction in (up, right):
            ctx.gl_ctx.make_current()
            ctx.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            ctx.cam.fixedcamid = cam_id
            mujoco.mjv_updateScene(model, data, ctx.vopt, ctx.pert, ctx.cam, mujoco.mjtCatBit.mjCAT_ALL, ctx.scn)
            if ctx.scn.ngeom >= ctx.scn.maxgeom:
                raise RuntimeError("no room in the MuJoCo scene for the upright probe marker.")
            mujoco.mjv_initGeom(
                ctx.scn.geoms[ctx.scn.ngeom],
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=np.array([0.1 * half, 0, 0]),
                pos=pos + depth * forward + 0.5 * half * direction,
                mat=np.eye(3).ravel(),
                rgba=np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32),
            )
            ctx.scn.ngeom += 1
            mujoco.mjr_render(mujoco.MjrRect(0, 0, w, h), ctx.scn, ctx.con)
            frames.append(np.ascontiguousarray(ctx.read_pixels(w, h)[::-1]))
        return frames[0], frames[1], frames[2]

    # ---- internals --------------------------------------------------------------------------------

    def _check_layout(self, rs_obs: dict[str, np.ndarray]) -> None:
        for key, start, stop in self.state_layout:
            size = np.size(rs_obs.get(key, ()))
            if size != stop - start:
                raise RuntimeError(f"robosuite's {TASKS[self.task].env_name} observation {key!r} has {size} values; "
                                   f"expected {stop - start} (tasks.STATE_LAYOUT, written for robosuite 1.5.2).")

    def _observation(self) -> dict[str, np.ndarray]:
        state = np.concatenate([np.ravel(self._rs_obs[key]) for key, _, _ in self.state_layout])
        obs = {"state": np.clip(state, self._low, self._high).astype(np.float32)}
        for cam in self.cameras:
            obs[f"images/{cam}"] = self._frame(cam, self.image_size)
        return obs

    def _info(self, success: bool, applied: np.ndarray | None = None) -> dict[str, Any]:
        info = {"success": success, "time": self._steps / self.control_hz, "timestamps": self._stamps.at(self._steps)}
        if applied is not None:
            info["action"] = applied
        return info

    def _context(self) -> Any:
        """robosuite's offscreen render context of the sim, made on first use and set to `high_quality`."""
        sim = self._rs.sim
        if sim._render_context_offscreen is None:
            from robosuite.utils.binding_utils import MjRenderContextOffscreen

            # Read when the MjrContext (its offscreen framebuffer) is made, i.e. in the constructor.
            sim.model._model.vis.quality.offsamples = HIGH_QUALITY_OFFSAMPLES if self.high_quality else 0
            ctx = MjRenderContextOffscreen(sim, device_id=-1)  # registers itself with the sim
            ctx.vopt.geomgroup[0] = 0  # visual meshes only, as robosuite sets for its own context
            ctx.vopt.geomgroup[1] = 1
            for flag in PLAIN_RENDER_FLAGS:  # kept across mjv_updateScene calls
                ctx.scn.flags[flag] = self.high_quality
        return sim._render_context_offscreen

    def _frame(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        ctx = self._context()
        ctx.gl_ctx.make_current()  # several envs in one process each own a GL context
        h, w = size
        frame = self._rs.sim.render(width=w, height=h, camera_name=camera)
        return np.ascontiguousarray(frame[::-1])


def make_env(task: str, **kwargs: Any) -> RobosuiteEnv:
    """Entry point of `robolearn/robosuite-<task>`; kwargs go to `RobosuiteEnv` (image_size, cameras, ...)."""
    return RobosuiteEnv(task, **kwargs)


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
