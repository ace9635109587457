"""`ArmTwin`: one arm's MuJoCo model, stepped with position-controlled joints, shared by the servo emulator
(twins/coupling.py) and the gymnasium env (twins/env.py), so both move the arm the same way.

Each joint takes a `JointCommand` (what its servo does) and every physics step (``timestep``, 2 ms):
  - position (``target``): a setpoint moves toward the target at no more than ``vmax`` rad/s (the servo's
    profile speed);
  - velocity (``velocity``): the setpoint moves at that speed;
  - torque off (neither): the joint is free (a dynamic twin sags under gravity, a kinematic one stays);
  - ``blocked``: the joint is held where it was when it got blocked (something in its way).
A dynamic twin (SO-101) puts the setpoint into the joint's position actuator (its kp and force limit, as the
MJCF sets them; gains zeroed while torque is off) and lets MuJoCo integrate; a kinematic twin (Koch) moves each
joint toward its setpoint with `emulators.motion.Shaft` (first order, ``KINEMATIC_TAU_S``) and only computes
the kinematics. Contacts are off: the twin is an arm alone, its links pass through each other and the floor.

Scene (``visual=True``): the arm on a floor with a light and three cameras, ``front``, ``side`` and ``wrist``
(riding on the gripper), images upright (image up is world up for the fixed cameras).

Example::

    twin = ArmTwin(SO101_TWIN)
    twin.commands[1] = JointCommand(target=0.5, vmax=2.0)   # shoulder_lift to 0.5 rad
    twin.step(250)                                          # 0.5 s
    twin.qpos[1]                                            # ~0.5
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

# Headless by default: MuJoCo picks its GL backend when it is first imported, and GLFW needs a display.
if "MUJOCO_GL" not in os.environ and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robolearn.errors import InvalidValueError  # noqa: E402

from ..emulators.motion import Shaft  # noqa: E402
from .specs import KINEMATIC_TAU_S, TwinSpec  # noqa: E402

__all__ = ["ArmTwin", "JointCommand", "FREE", "CAMERAS", "TIMESTEP_S"]

TIMESTEP_S = 0.002
"""Physics step (the SO-101 MJCF's own)."""
CAMERAS = ("front", "side", "wrist")
MAX_IMAGE = (480, 640)
"""Largest (H, W) a camera renders (the offscreen buffer)."""

# Twins with open renderers, closed at exit before MuJoCo's own eglTerminate: MuJoCo registers that when its
# first GL context opens, so ours is registered after the first renderer (atexit runs last-in first) and a
# twin nobody closed exits without EGL errors.
_OPEN: "weakref.WeakSet[ArmTwin]" = weakref.WeakSet()
_atexit_registered = False


def _close_open_twins() -> None:
    for twin in list(_OPEN):
        twin.close()


@dataclass(frozen=True)
class JointCommand:
    """What one joint's servo does (module docstring); radians and seconds."""

    target: float | None = None
    velocity: float | None = None
    vmax: float = math.inf
    blocked: bool = False

    @property
    def torque(self) -> bool:
        return self.target is not None or self.velocity is not None


FREE = JointCommand()
"""Torque off."""


def _look_at(pos: Sequence[float], target: Sequence[float]) -> list[float]:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``target`` with image up along world +z."""
    forward = np.subtract(target, pos, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return [*right, *np.cross(right, forward)]


def _scene(spec: "mujoco.MjSpec", twin: TwinSpec, image_max: tuple[int, int]) -> None:
    world = spec.worldbody
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1, 1, 0.01], rgba=[0.32, 0.34, 0.38, 1])
    # No shadows and no multisampling: software GL (llvmpipe) renders the SO-101's meshes ~50x faster without.
    world.add_light(name="top", pos=[0, 0, 1.5], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8], castshadow=False)
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0
    centre = [0.12, 0.0, 0.12]
    for name, pos in (("front", [0.55, 0.0, 0.32]), ("side", [0.12, -0.55, 0.25])):
        cam = world.add_camera(name=name, pos=pos, fovy=50)
        cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
        cam.alt.xyaxes = _look_at(pos, centre)
    body = next(b for b in spec.bodies if b.name == twin.wrist_body)
    pos, xyaxes = twin.wrist_camera
    wrist = body.add_camera(name="wrist", pos=list(pos), fovy=70)
    wrist.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    wrist.alt.xyaxes = list(xyaxes)
    spec.visual.global_.offheight, spec.visual.global_.offwidth = image_max


class ArmTwin:
    """One arm's model, data and joint commands (module docstring).

    Args:
        twin: which arm (`specs.TWINS`).
        visual: build the scene with meshes, floor and cameras (for rendering); False compiles faster.
        timestep: physics step in seconds.
    """

    def __init__(self, twin: TwinSpec, visual: bool = False, timestep: float = TIMESTEP_S):
        if not timestep > 0:
            raise InvalidValueError(f"timestep must be > 0 s, got {timestep!r}")
        self.spec = twin
        spec = twin.build(visual)
        spec.option.timestep = timestep
        spec.option.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
        if visual:
            _scene(spec, twin, MAX_IMAGE)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.visual = visual
        self.dt = float(timestep)
        self.names = twin.joints
        self._qadr = np.array([self.model.jnt_qposadr[self._id(mujoco.mjtObj.mjOBJ_JOINT, n)] for n in self.names])
        self._vadr = np.array([self.model.jnt_dofadr[self._id(mujoco.mjtObj.mjOBJ_JOINT, n)] for n in self.names])
        self.low = np.array([r[0] for r in twin.ranges])
        self.high = np.array([r[1] for r in twin.ranges])
        self._low, self._high = self.low.tolist(), self.high.tolist()
        if twin.dynamic:
            self._act = np.array([self._id(mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in self.names])
            self._kp = self.model.actuator_gainprm[self._act, 0].copy()
            self._kv = -self.model.actuator_biasprm[self._act, 2].copy()
        self.camera_names = tuple(mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i)
                                  for i in range(self.model.ncam))
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.commands: list[JointCommand] = [FREE] * len(self.names)
        self.reset(twin.rest)

    def _id(self, kind: "mujoco.mjtObj", name: str) -> int:
        idx = mujoco.mj_name2id(self.model, kind, name)
        if idx < 0:
            raise ValueError(f"the {self.spec.name} twin's MJCF ({self.spec.source}) has no {kind.name[6:].lower()} "
                             f"named {name!r}")
        return idx

    # -- state --
    @property
    def qpos(self) -> np.ndarray:
        """Joint angles (rad), in `names` order."""
        return self.data.qpos[self._qadr].copy()

    @property
    def qvel(self) -> np.ndarray:
        """Joint speeds (rad/s)."""
        return self.data.qvel[self._vadr].copy()

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, pose: Sequence[float]) -> None:
        """Back to rest at ``pose`` (rad, clipped to the limits), torque off everywhere, time 0."""
        mujoco.mj_resetData(self.model, self.data)
        pose = np.clip(np.asarray(pose, float), self.low, self.high)
        self.data.qpos[self._qadr] = pose
        self.setpoint = pose.copy()
        self._pinned = np.full(len(self.names), np.nan)
        self._enabled = np.ones(len(self.names), bool)
        self._shafts = [Shaft(position=float(q), tau=KINEMATIC_TAU_S) for q in pose]
        self.commands = [FREE] * len(self.names)
        self._apply_gains()
        mujoco.mj_forward(self.model, self.data)

    def set_joint(self, index: int, angle_rad: float) -> None:
        """Put joint ``index`` at ``angle_rad`` at rest (a hand moving it); a joint under torque will pull back."""
        q = float(np.clip(angle_rad, self.low[index], self.high[index]))
        self.data.qpos[self._qadr[index]] = q
        self.data.qvel[self._vadr[index]] = 0.0
        self._shafts[index] = Shaft(position=q, tau=KINEMATIC_TAU_S)
        if not self.commands[index].torque:
            self.setpoint[index] = q
        if not np.isnan(self._pinned[index]):
            self._pinned[index] = q
        mujoco.mj_forward(self.model, self.data)

    # -- stepping --
    def step(self, n: int = 1) -> None:
        """``n`` physics steps under the current ``commands``."""
        for _ in range(max(0, int(n))):
            self._setpoints()
            if self.spec.dynamic:
                self.data.ctrl[self._act] = self.setpoint
                mujoco.mj_step(self.model, self.data)
            else:
                self._kinematic_step()
            pinned = ~np.isnan(self._pinned)
            if pinned.any():
                self.data.qpos[self._qadr[pinned]] = self._pinned[pinned]
                self.data.qvel[self._vadr[pinned]] = 0.0
        if not self.spec.dynamic:
            mujoco.mj_kinematics(self.model, self.data)

    def _setpoints(self) -> None:
        q = self.data.qpos[self._qadr].tolist()
        sp = self.setpoint.tolist()  # plain floats: this runs every physics step, numpy scalars cost ~10x
        changed = False
        for i, c in enumerate(self.commands):
            pinned = not math.isnan(self._pinned[i])
            if c.blocked != pinned:
                self._pinned[i] = q[i] if c.blocked else math.nan
            on = c.torque and not c.blocked
            if on != self._enabled[i]:
                self._enabled[i], changed = on, True
            if not on:
                sp[i] = q[i]
            elif c.target is not None:
                step = c.vmax * self.dt
                sp[i] += min(step, max(-step, c.target - sp[i]))
            else:
                sp[i] += c.velocity * self.dt
        self.setpoint = np.clip(sp, self.low, self.high)
        if changed:
            self._apply_gains()

    def _apply_gains(self) -> None:
        """Torque off: the position actuator's gains go to zero, so it pushes nothing."""
        if not self.spec.dynamic:
            return
        on = self._enabled.astype(float)
        self.model.actuator_gainprm[self._act, 0] = self._kp * on
        self.model.actuator_biasprm[self._act, 1] = -self._kp * on
        self.model.actuator_biasprm[self._act, 2] = -self._kv * on

    def _kinematic_step(self) -> None:
        setpoint = self.setpoint.tolist()
        for i, shaft in enumerate(self._shafts):
            if self._enabled[i]:
                shaft.track_position(setpoint[i], math.inf, self.dt)
            else:
                shaft.hold()
            shaft.position = min(self._high[i], max(self._low[i], shaft.position))
        self.data.qpos[self._qadr] = [s.position for s in self._shafts]
        self.data.qvel[self._vadr] = [s.velocity for s in self._shafts]
        self.data.time += self.dt

    # -- rendering --
    def render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        """An upright (H, W, 3) uint8 frame of ``camera`` for the current state."""
        if not self.visual:
            raise RuntimeError("this twin was built without its scene; build it with ArmTwin(..., visual=True)")
        renderer = self._renderers.get(size)
        if renderer is None:
            global _atexit_registered
            renderer = self._renderers[size] = mujoco.Renderer(self.model, height=size[0], width=size[1])
            _OPEN.add(self)
            if not _atexit_registered:
                atexit.register(_close_open_twins)
                _atexit_registered = True
        mujoco.mj_forward(self.model, self.data)
        renderer.update_scene(self.data, camera=camera)
        return renderer.render().copy()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        _OPEN.discard(self)
