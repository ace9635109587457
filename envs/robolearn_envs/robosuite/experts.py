"""Scripted waypoint experts for the robosuite tasks, driving robosuite's delta OSC_POSE controller.

Each expert is a list of `Phase`s (move above the object, descend, close, lift, ...). Every step it reads
privileged sim state through the env (object poses, the gripper site), takes the current phase's goal and
commands a proportional step toward it, clipped to [-1, 1]: position `(goal - eef) * KP_POS`, orientation
the axis-angle from the current gripper frame to a top-down grasp frame turned by the phase's yaw, and an
explicit gripper command (+1 close, -1 open). A phase ends when the eef is within its tolerance (or after
`steps` steps for timed phases such as closing the gripper); the last phase holds until the episode ends.

Example::

    env = RobosuiteEnv("stack", cameras=())
    obs, _ = env.reset(seed=0)
    expert = env.get_expert()
    expert.reset()
    while not done:
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

if TYPE_CHECKING:
    from robolearn_envs.robosuite.env import RobosuiteEnv

POS_SCALE = 0.05  # m of OSC goal offset per unit action (robosuite's OSC_POSE output_max)
ROT_SCALE = 0.5  # rad per unit action
KP_POS = 0.7 / POS_SCALE  # a 5 cm error asks for 70% of the step: fast, no overshoot at kp=150
KP_ROT = 0.8 / ROT_SCALE
OPEN, CLOSE = -1.0, 1.0
# Gripper site frame pointing straight down with yaw 0 (columns: site x, y, z in world): the Panda's pose
# at reset. The fingers close along the site's x axis: world y at yaw 0, (-sin yaw, cos yaw) in general.
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass
class Phase:
    """One waypoint: where the gripper site goes, how it is turned, what the fingers do, when it is done."""

    name: str
    goal: Callable[[], np.ndarray]
    """eef (gripper site) goal position, world frame (m); re-evaluated every step."""
    grip: float
    """gripper command held during the phase: OPEN or CLOSE."""
    yaw: Callable[[], float] | None = None
    """gripper yaw goal (rad about world z, relative to R_DOWN); None keeps the previous phase's."""
    tol: float = 0.01
    """position error (m) at which the phase is done."""
    steps: int = 0
    """> 0: a timed phase, done after this many steps whatever the error."""
    timeout: int = 80
    """steps after which a phase moves on even if the error is still above tol."""
    on_enter: Callable[[], None] | None = None
    """called once when the phase starts (to remember grasp offsets and the like)."""
    ready: Callable[[], bool] | None = None
    """an extra condition, besides tol, for the phase to be done before its timeout (e.g. an aligned yaw)."""


class WaypointExpert:
    """Runs a task's phases (see module docstring); `reset()` before each episode, `act(obs) -> (7,) float32`."""

    def __init__(self, env: RobosuiteEnv, plan: Callable[[WaypointExpert], list[Phase]]) -> None:
        self.env = env
        self.rs = env.robosuite_env
        self._plan = plan
        self.reset()

    def reset(self) -> None:
        self._phases: list[Phase] | None = None  # planned on the first act(), once the scene exists
        self._index = 0
        self._in_phase = 0
        self._yaw = 0.0
        self.memory: dict[str, Any] = {}  # values a plan stores at phase changes (grasp offsets, ...)

    @property
    def phase(self) -> str:
        return self._phases[self._index].name if self._phases else "start"

    # privileged reads -------------------------------------------------------------------------------

    def eef_pos(self) -> np.ndarray:
        return self.rs.sim.data.site_xpos[self._site_id()].copy()

    def eef_mat(self) -> np.ndarray:
        return self.rs.sim.data.site_xmat[self._site_id()].reshape(3, 3).copy()

    def body_pos(self, body_id: int) -> np.ndarray:
        return self.rs.sim.data.body_xpos[body_id].copy()

    def gripper_yaw(self) -> float:
        """Yaw (rad about world z) of the gripper site relative to R_DOWN, for a gripper pointing down."""
        turn = self.eef_mat() @ R_DOWN.T
        return float(np.arctan2(turn[1, 0], turn[0, 0]))

    def nearest_yaw(self, yaw: float, period: float) -> float:
        """The angle equal to `yaw` modulo `period` closest to the gripper's yaw now.

        Once the gripper turns toward one of two equivalent goals it keeps that one: a goal picked by
        wrapping alone flips between +-period/2 near the boundary and can leave the gripper halfway.
        """
        now = self.gripper_yaw()
        return now + _wrap(yaw - now, period)

    def body_yaw(self, body_id: int) -> float:
        mat = self.rs.sim.data.body_xmat[body_id].reshape(3, 3)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def _site_id(self) -> int:
        return self.rs.robots[0].eef_site_id["right"]

    # control ----------------------------------------------------------------------------------------

    def act(self, obs: Any = None) -> np.ndarray:
        if self._phases is None:
            self._phases = self._plan(self)
        phase = self._phases[self._index]
        if phase.yaw is not None:
            self._yaw = phase.yaw()
        goal = phase.goal()
        err = goal - self.eef_pos()
        self._in_phase += 1
        done = (self._in_phase >= phase.steps) if phase.steps else (
            (np.linalg.norm(err) < phase.tol and (phase.ready is None or phase.ready()))
            or self._in_phase >= phase.timeout)
        if done and self._index + 1 < len(self._phases):
            self._index += 1
            self._in_phase = 0
            if self._phases[self._index].on_enter is not None:
                self._phases[self._index].on_enter()
        action = np.zeros(7)
        action[:3] = err * KP_POS
        action[3:6] = _rotvec(_rot_z(self._yaw) @ R_DOWN @ self.eef_mat().T) * KP_ROT
        action[6] = phase.grip
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotvec(mat: np.ndarray) -> np.ndarray:
    """Axis-angle (world frame) of a rotation matrix."""
    quat, vel = np.zeros(4), np.zeros(3)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat).ravel())
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


def _wrap(angle: float, period: float) -> float:
    """`angle` shifted by multiples of `period` into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


# ---- plans ------------------------------------------------------------------------------------------


def _pick(x: WaypointExpert, body: int, yaw: Callable[[], float], grasp_dz: float = 0.0,
          approach: float = 0.08, close_steps: int = 12) -> list[Phase]:
    """Above `body`, down to it, close: the first three phases of the cube and can plans."""
    up = np.array([0.0, 0.0, approach])
    down = np.array([0.0, 0.0, grasp_dz])
    return [
        Phase("above", lambda: x.body_pos(body) + up, OPEN, yaw=yaw, tol=0.012),
        Phase("descend", lambda: x.body_pos(body) + down, OPEN, yaw=yaw, tol=0.006, timeout=60),
        Phase("close", lambda: x.body_pos(body) + down, CLOSE, steps=close_steps),
    ]


def _carry(x: WaypointExpert, body: int, place: Callable[[], np.ndarray], carry_z: float,
           yaw: Callable[[], float] | None = None, release_steps: int = 8, place_tol: float = 0.008,
           over_tol: float = 0.01, hover: float | None = None) -> list[Phase]:
    """Lift to `carry_z`, move so the held object's centre sits over `place()`, lower it there, open, back off.

    Entering the lift records the grasp: the eef offset from the object and the gripper yaw. With `hover`,
    the object first stops `hover` m above `place()` and lines up there (tolerance place_tol / 2).
    """

    def remember() -> None:
        x.memory["offset"] = x.eef_pos() - x.body_pos(body)
        x.memory["grasp_yaw"] = x._yaw

    def held_goal(target: np.ndarray) -> np.ndarray:
        return target + x.memory.get("offset", np.zeros(3))

    def over() -> np.ndarray:
        return held_goal(np.array([*place()[:2], carry_z]))

    def retreat() -> np.ndarray:
        return x.memory.setdefault("retreat", x.eef_pos() + np.array([0.0, 0.0, 0.12]))

    phases = [
        Phase("lift", lambda: np.array([*x.eef_pos()[:2], carry_z]), CLOSE, tol=0.02, on_enter=remember),
        Phase("over", over, CLOSE, yaw=yaw, tol=over_tol, timeout=100),
    ]
    if hover is not None:
        above = np.array([0.0, 0.0, hover])
        phases.append(Phase("hover", lambda: held_goal(place() + above), CLOSE, tol=place_tol / 2, timeout=40))
    return [
        *phases,
        Phase("lower", lambda: held_goal(place()), CLOSE, tol=place_tol, timeout=60),
        Phase("release", lambda: held_goal(place()), OPEN, steps=release_steps),
        Phase("retreat", retreat, OPEN, tol=0.01, timeout=10**6),
    ]


def lift_plan(x: WaypointExpert) -> list[Phase]:
    cube = x.rs.cube_body_id
    yaw = lambda: _wrap(x.body_yaw(cube), np.pi / 2)  # noqa: E731  (a cube: any face will do)
    hold = lambda: x.memory.setdefault("lifted", x.eef_pos() + np.array([0.0, 0.0, 0.15]))  # noqa: E731
    return [*_pick(x, cube, yaw), Phase("lift", hold, CLOSE, tol=0.01, timeout=10**6)]


def stack_plan(x: WaypointExpert) -> list[Phase]:
    rs = x.rs
    a, b = rs.cubeA_body_id, rs.cubeB_body_id
    half_a, half_b = float(rs.cubeA.size[2]), float(rs.cubeB.size[2])
    yaw_a = lambda: _wrap(x.body_yaw(a), np.pi / 2)  # noqa: E731
    # Turn cube A with the gripper so its faces line up with cube B's.
    yaw_b = lambda: x.memory["grasp_yaw"] + _wrap(x.body_yaw(b) - x.body_yaw(a), np.pi / 2)  # noqa: E731
    top_of_b = lambda: x.body_pos(b) + np.array([0.0, 0.0, half_b + half_a + 0.004])  # noqa: E731
    return [*_pick(x, a, yaw_a), *_carry(x, a, top_of_b, carry_z=float(x.body_pos(b)[2]) + 0.12, yaw=yaw_b)]


def can_plan(x: WaypointExpert) -> list[Phase]:
    rs = x.rs
    can = rs.obj_body_id["Can"]
    target = rs.target_bin_placements[rs.object_to_id["can"]]
    # Released a few cm above the bin floor; the bin's quarter is ~10 cm wide, so coarse tolerances do, and
    # they matter: the can's quarter lies at the edge of the Panda's reach, where OSC settles slowly.
    place = lambda: np.array([target[0], target[1], target[2] + 0.10])  # noqa: E731
    return [*_pick(x, can, lambda: 0.0, grasp_dz=0.01, approach=0.10),
            *_carry(x, can, place, carry_z=float(target[2]) + 0.18, place_tol=0.02, over_tol=0.03)]


HANDLE_OUT = 0.012  # m past the nut's handle site where the square-nut expert grasps (the handle ends 2.5 cm past)


def square_plan(x: WaypointExpert) -> list[Phase]:
    """Grasp the nut by its handle, then servo the nut itself (not the gripper) onto the square peg.

    The hole leaves 6.75 mm each side around the peg when square to it, so after the grasp every goal is
    closed-loop on the nut's measured pose: the eef moves by the nut's position error (the nut shifts and
    tilts in the fingers while carried) and turns by the nut's yaw error to the peg (modulo 90 degrees).
    The nut comes down to 2 cm above the peg top (at most 2 cm a step, so it never lands on the top) and
    waits there until it is within 2 mm and 2 degrees of the peg; then it goes down the peg, at most
    1.5 cm a step, is let go near the table and the gripper backs off.
    """
    rs = x.rs
    nut = rs.obj_body_id["SquareNut"]
    handle = rs.sim.model.site_name2id(rs.nuts[0].important_sites["handle"])  # 5.4 cm from the hole's centre
    peg = rs.peg1_body_id
    table_z = float(rs.table_offset[2])
    peg_top = float(x.body_pos(peg)[2] + rs.sim.model.geom_size[rs.sim.model.body_geomadr[peg]][2])

    def handle_yaw() -> float:  # fingers across the handle (which runs along the nut's x axis): yaw = nut yaw
        return x.nearest_yaw(x.body_yaw(nut), np.pi)

    def choose_nut_yaw() -> None:
        """The nut yaw to put it on the peg with: square to the peg, handle not pointing away from the robot.

        Any multiple of 90 degrees from the peg's yaw fits; with the handle (where the gripper holds it)
        pointing away from the base (+x), the gripper would have to reach 5 cm past the peg, at the edge
        of the Panda's workspace. Of the other three, the one closest to the nut's yaw now.
        """
        now, peg_yaw_ = x.body_yaw(nut), x.body_yaw(peg)
        candidates = [peg_yaw_ + k * np.pi / 2 for k in range(4)]
        candidates = [c for c in candidates if np.cos(c) < 0.5]
        x.memory["nut_yaw"] = min(candidates, key=lambda c: abs(_wrap(c - now, 2 * np.pi)))

    def yaw_error() -> float:  # nut yaw to the chosen one
        return _wrap(x.body_yaw(nut) - x.memory["nut_yaw"], 2 * np.pi)

    def peg_yaw() -> float:  # gripper yaw now, less the nut's yaw error: a P loop on the nut's yaw
        return x.gripper_yaw() - yaw_error()

    def move_nut(z: float, max_drop: float | None = None) -> Callable[[], np.ndarray]:
        """eef goal that brings the nut's centre over the peg at height z (at most max_drop lower per step)."""

        def goal() -> np.ndarray:
            nut_pos = x.body_pos(nut)
            target = np.array([*x.body_pos(peg)[:2], z])
            if max_drop is not None:
                target[2] = max(z, nut_pos[2] - max_drop)
            return x.eef_pos() + target - nut_pos

        return goal

    def aligned() -> bool:
        return abs(_wrap(x.body_yaw(nut) - x.body_yaw(peg), np.pi / 2)) < np.deg2rad(2.0)

    def handle_pos() -> np.ndarray:
        """Grasp point: 1.2 cm past the handle site, away from the ring, so the open fingers (8 cm apart,
        across the handle) clear the ring's corners even with the eef a centimetre short."""
        site = x.rs.sim.data.site_xpos[handle].copy()
        out = site - x.body_pos(nut)
        out[2] = 0.0
        return site + HANDLE_OUT * out / np.linalg.norm(out)

    retreat = lambda: x.memory.setdefault("retreat", x.eef_pos() + np.array([0.0, 0.0, 0.12]))  # noqa: E731
    return [
        Phase("above", lambda: handle_pos() + np.array([0.0, 0.0, 0.08]), OPEN, yaw=handle_yaw, tol=0.012),
        Phase("descend", handle_pos, OPEN, yaw=handle_yaw, tol=0.006, timeout=60),
        Phase("close", handle_pos, CLOSE, steps=12),
        Phase("lift", lambda: np.array([*x.eef_pos()[:2], table_z + 0.25]), CLOSE, tol=0.02,
              on_enter=choose_nut_yaw),
        Phase("over", move_nut(table_z + 0.25), CLOSE, yaw=peg_yaw, tol=0.01, timeout=100),
        # the nut's centre 3 cm above the peg top: its bottom (1 cm below the centre) 2 cm above it
        Phase("hover", move_nut(peg_top + 0.03, max_drop=0.02), CLOSE, yaw=peg_yaw, tol=0.002, timeout=60,
              ready=aligned),
        Phase("insert", move_nut(table_z + 0.035, max_drop=0.015), CLOSE, yaw=peg_yaw, tol=0.008, timeout=60),
        Phase("release", move_nut(table_z + 0.035), OPEN, steps=8),
        Phase("retreat", retreat, OPEN, tol=0.01, timeout=10**6),
    ]


PLANS: dict[str, Callable[[WaypointExpert], list[Phase]]] = {
    "lift": lift_plan,
    "stack": stack_plan,
    "pickplacecan": can_plan,
    "nutassemblysquare": square_plan,
}


def make_expert(env: RobosuiteEnv) -> WaypointExpert:
    return WaypointExpert(env, PLANS[env.task])
