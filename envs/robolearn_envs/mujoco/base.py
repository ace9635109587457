"""Physics and rendering shared by the native MuJoCo tasks.

`Sim` owns one MJCF model: its `MjModel`/`MjData`, the offscreen renderers (one per image size) and the
camera names. `SetpointRamp` turns an absolute, normalized action into position-actuator setpoints that
move at a bounded speed, so a policy's jumpy targets still give smooth physics. Tasks (push, reach, ...)
compose these; they never subclass them.

Example::

    sim = Sim(ASSETS / "push.xml")
    sim.reset()
    frame = sim.render("front", (64, 64))   # (H, W, 3) uint8, upright
    sim.close()
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from collections.abc import Sequence
from pathlib import Path

# Headless by default: MuJoCo picks its GL backend when it is first imported, and GLFW needs a display.
if "MUJOCO_GL" not in os.environ and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robolearn.errors import InvalidValueError  # noqa: E402

ASSETS = Path(__file__).parent / "assets"

# Sims whose renderers are still open, closed at exit. MuJoCo registers `eglTerminate` with atexit when
# it creates its first GL context; registering ours after that makes it run first (atexit is LIFO), so
# a Sim nobody closed does not print EGL errors at interpreter exit.
_OPEN: weakref.WeakSet[Sim] = weakref.WeakSet()
_atexit_registered = False


def _close_open_sims() -> None:
    for sim in list(_OPEN):
        sim.close()


class Sim:
    """A MuJoCo model with its data, offscreen renderers and camera names."""

    def __init__(self, xml_path: str | Path) -> None:
        self.xml_path = Path(xml_path)
        self.model = mujoco.MjModel.from_xml_path(str(self.xml_path))
        self.data = mujoco.MjData(self.model)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.camera_names: tuple[str, ...] = tuple(
            mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(self.model.ncam)
        )

    # ---- physics ---------------------------------------------------------------------------------

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self) -> None:
        """Back to the model's initial state (also clears warm starts, so resets are deterministic)."""
        mujoco.mj_resetData(self.model, self.data)

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)

    def step(self) -> None:
        mujoco.mj_step(self.model, self.data)

    def id(self, kind: str, name: str) -> int:
        """Id of a named element; `kind` is 'body', 'joint', 'geom', 'site', 'actuator' or 'camera'."""
        obj = getattr(mujoco.mjtObj, f"mjOBJ_{kind.upper()}")
        idx = mujoco.mj_name2id(self.model, obj, name)
        if idx < 0:
            raise ValueError(f"{self.xml_path.name} has no {kind} named {name!r}.")
        return idx

    def joint_qpos_adr(self, name: str) -> int:
        return int(self.model.jnt_qposadr[self.id("joint", name)])

    def joint_qvel_adr(self, name: str) -> int:
        return int(self.model.jnt_dofadr[self.id("joint", name)])

    # ---- rendering -------------------------------------------------------------------------------

    @property
    def max_image_size(self) -> tuple[int, int]:
        """Largest (H, W) the offscreen buffer holds (`<visual><global offheight offwidth>` in the MJCF)."""
        return int(self.model.vis.global_.offheight), int(self.model.vis.global_.offwidth)

    def validate_image_size(self, size: Sequence[int], name: str = "image_size") -> tuple[int, int]:
        """Return `size` as (H, W) ints, or raise ValueError saying what is accepted."""
        max_h, max_w = self.max_image_size
        try:
            h, w = (int(v) for v in size)
            ok = (h, w) == tuple(size)
        except (TypeError, ValueError):
            ok = False
        if not ok or not (0 < h <= max_h and 0 < w <= max_w):
            raise InvalidValueError(
                f"{name}={size!r} is not a renderable (H, W): expected two positive integers with "
                f"H <= {max_h} and W <= {max_w} (the offscreen buffer set in {self.xml_path.name})."
            )
        return h, w

    def validate_cameras(self, cameras: Sequence[str], name: str = "cameras") -> tuple[str, ...]:
        """Return `cameras` as a tuple, or raise ValueError naming the accepted camera names."""
        if isinstance(cameras, str):
            raise InvalidValueError(f"{name} must be a sequence of camera names, e.g. ({cameras!r},), not a string.")
        cameras = tuple(cameras)
        for cam in cameras:
            if cam not in self.camera_names:
                raise InvalidValueError(
                    f"unknown camera {cam!r} in {name}; accepted values: {', '.join(self.camera_names)}."
                )
        if len(set(cameras)) != len(cameras):
            raise InvalidValueError(f"{name}={cameras!r} names a camera twice.")
        return cameras

    def _renderer(self, size: tuple[int, int]) -> mujoco.Renderer:
        renderer = self._renderers.get(size)
        if renderer is None:
            global _atexit_registered
            renderer = mujoco.Renderer(self.model, height=size[0], width=size[1])
            self._renderers[size] = renderer
            _OPEN.add(self)
            if not _atexit_registered:
                atexit.register(_close_open_sims)
                _atexit_registered = True
        return renderer

    def render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        """A fresh (H, W, 3) uint8 frame from `camera` for the current state (call `forward()` first).

        `mujoco.Renderer` flips OpenGL's bottom-up rows, and every camera in our MJCF has image-up along
        +z/+y of the world, so frames come out upright; `upright_probe` lets a test prove it.
        """
        renderer = self._renderer(size)
        renderer.update_scene(self.data, camera=camera)
        return renderer.render().copy()

    def upright_probe(self, camera: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Three frames of `camera` for `robolearn.env.check_upright`: plain, with a marker up, with a marker right.

        The markers are drawn into the scene only (the model is untouched) around the point the camera
        looks at: one moved along world up (world +z, or +y for a camera looking straight down), one
        moved along the world direction that is right of the view. An upright, unmirrored frame shows the
        first in its top half and the second in its right half.
        """
        renderer = self._renderer(size)
        cam_id = self.id("camera", camera)
        pos = self.data.cam_xpos[cam_id].copy()
        forward = -self.data.cam_xmat[cam_id].reshape(3, 3)[:, 2]
        # Aim at the table (z = 0) when the camera looks down at it, else 0.5 m ahead.
        depth = -pos[2] / forward[2] if forward[2] < -1e-3 else 0.5
        center = pos + depth * forward
        up = np.array([0.0, 0.0, 1.0])
        if abs(forward @ up) > 0.99:
            up = np.array([0.0, 1.0, 0.0])
        up = up - (up @ forward) * forward
        up /= np.linalg.norm(up)
        right = np.cross(forward, up)
        offset = 0.25 * depth * np.tan(np.deg2rad(self.model.cam_fovy[cam_id]) / 2)
        frames = [self.render(camera, size)]
        for direction in (up, right):
            renderer.update_scene(self.data, camera=camera)
            scene = renderer.scene
            if scene.ngeom >= scene.maxgeom:
                raise RuntimeError("no room in the MuJoCo scene for the upright probe marker.")
            mujoco.mjv_initGeom(
                scene.geoms[scene.ngeom],
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=np.array([0.15 * offset, 0, 0]),
                pos=center + offset * direction,
                mat=np.eye(3).ravel(),
                rgba=np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32),
            )
            scene.ngeom += 1
            frames.append(renderer.render().copy())
        return frames[0], frames[1], frames[2]

    def close(self) -> None:
        """Free the GL contexts (left open, EGL reports errors at interpreter exit). Safe to call twice."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        _OPEN.discard(self)


class SetpointRamp:
    """Absolute normalized targets in [-1, 1]^Da -> position-actuator setpoints moving at <= `max_speed`.

    Each physics substep moves the setpoints a bounded distance towards the commanded target, so the
    actuators never see a jump however far the target is: one control step travels at most
    `max_speed / control_hz` metres.
    """

    def __init__(self, sim: Sim, actuators: Sequence[str], low: Sequence[float], high: Sequence[float],
                 max_speed: float) -> None:
        self._sim = sim
        self._ids = np.array([sim.id("actuator", name) for name in actuators])
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self._max_step = max_speed * sim.model.opt.timestep
        self.setpoint = (self.low + self.high) / 2
        self.target = self.setpoint.copy()

    def to_world(self, action: np.ndarray) -> np.ndarray:
        """Normalized action (Da,) in [-1, 1] -> world coordinates inside [low, high]."""
        return self.low + (np.clip(action, -1.0, 1.0) + 1.0) / 2.0 * (self.high - self.low)

    def to_action(self, world: np.ndarray) -> np.ndarray:
        """World coordinates -> normalized float32 action (Da,), clipped to [-1, 1]."""
        action = 2.0 * (np.asarray(world, dtype=np.float64) - self.low) / (self.high - self.low) - 1.0
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def reset(self, position: np.ndarray) -> None:
        """Hold `position` (world coordinates), e.g. where the episode starts."""
        self.setpoint = np.clip(np.asarray(position, dtype=np.float64), self.low, self.high)
        self.target = self.setpoint.copy()
        self._sim.data.ctrl[self._ids] = self.setpoint

    def command(self, action: np.ndarray) -> None:
        self.target = self.to_world(action)

    def substep(self) -> None:
        delta = self.target - self.setpoint
        dist = float(np.linalg.norm(delta))
        if dist > self._max_step:
            delta *= self._max_step / dist
        self.setpoint = self.setpoint + delta
        self._sim.data.ctrl[self._ids] = self.setpoint
