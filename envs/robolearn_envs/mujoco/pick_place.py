"""`robolearn/mujoco-pick-place`: pick a cube up and put it down on a target zone with a parallel-jaw gripper.

The hardest of the three native manipulation tasks (reach < push < pick-and-place): the policy has to
sequence approach, grasp, lift, carry, place and release, and the gripper command matters.

Scene (assets/pick_place.xml): the shared table scene; a 4 cm red cube (free joint, random position and
yaw each episode); a green target zone (disc of radius `ZONE_RADIUS`, visual only, random position at
least `MIN_START_DISTANCE` from the cube); a gripper on x/y/z slide joints with position actuators and
gravity compensation, whose two finger pads slide along world x (position actuators, `FINGER_OPEN` m of
travel each, about 4 N of squeeze on the cube), with a disc on the table under it so heights read from
one camera. Cameras `front`, `top` (fixed) and `wrist` (on an arm behind the palm, looking forward and
down at the grasp centre between the fingers), all upright. Physics at 500 Hz, control at 10 Hz
(50 substeps); episodes are cut at 100 control steps (10 s).

Action (Da = 4): ABSOLUTE gripper target in normalized workspace coordinates, [-1, 1] -> x, y in
[-0.2, 0.2] m and z in [0.015, 0.2] m (z is the grasp centre, 1.5 cm above the finger tips); setpoints
move there at <= 0.5 m/s (5 cm per control step). Then the gripper command in [-1, 1]: +1 closes,
-1 opens (as in robosuite and Metaworld); a command g in between asks for a finger gap of
(1 - g) * `FINGER_OPEN` m, reached at <= `FINGER_SPEED` m/s per finger.
State (Do = 11): gripper x, y, z (m); finger gap (m, 0 closed .. 0.1 open); cube x, y, z (m);
sin(4 yaw), cos(4 yaw) of the cube (a cube looks the same every 90 degrees); target zone x, y (m).
Success: the cube placed and released in the zone: its centre within `SUCCESS_RADIUS` of the zone centre
(the whole cube lies on the disc), resting on the table (centre height within `REST_TOLERANCE` of
`CUBE_HALF`, speed below `REST_SPEED`) and touched by no part of the gripper. The episode then terminates.
Reward: 1.0 on success, else minus the cube-to-zone distance in the plane (m).

Scripted expert (`get_expert()`, `PickPlaceExpert`): 100% success over seeds 0-99 (32.5 control steps on
average, 39 at most) and over seeds 0-999 (32.1 on average, 42 at most); it re-grasps a dropped cube.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn_envs.mujoco.base import SetpointRamp, Sim
from robolearn_envs.mujoco.env import MujocoEnv, Task

LOW = np.array([-0.2, -0.2, 0.015])  # gripper target workspace corners (m)
HIGH = np.array([0.2, 0.2, 0.2])
MAX_SPEED = 0.5  # m/s, gripper setpoint speed limit
FINGER_OPEN = 0.05  # m, travel of each finger from the centre (gap 0 .. 2 * FINGER_OPEN)
FINGER_SPEED = 0.25  # m/s, finger setpoint speed limit (per finger)
CUBE_HALF = 0.02  # m, half side of the cube (assets/pick_place.xml)
ZONE_RADIUS = 0.06  # m, radius of the drawn target zone
SUCCESS_RADIUS = 0.03  # m, cube centre to zone centre (its corners then stay within 5.9 cm: on the disc)
REST_TOLERANCE = 0.004  # m, cube centre height above CUBE_HALF that still counts as on the table
REST_SPEED = 0.05  # m/s, cube speed below which it counts as resting
SPAWN = 0.15  # cube and zone centres start in [-SPAWN, SPAWN]^2 ...
MIN_START_DISTANCE = 0.12  # ... at least this far apart
GRIPPER_SPAWN_LOW = np.array([-0.15, -0.2, 0.1])  # the gripper starts near the front edge, above the cube
GRIPPER_SPAWN_HIGH = np.array([0.15, -0.12, 0.18])
MAX_EPISODE_STEPS = 100  # the expert needs 32 steps on average, 42 at most (1000 seeds)


class PickPlaceTask(Task):
    xml = "pick_place.xml"
    description = "pick up the red cube and place it on the green zone"
    control_hz = 10.0
    state_names = ("gripper_x", "gripper_y", "gripper_z", "gripper_gap", "cube_x", "cube_y", "cube_z",
                   "cube_sin4yaw", "cube_cos4yaw", "target_x", "target_y")
    state_limit = 2.0  # m and sin/cos; the gripper stays in the workspace, a thrown cube cannot go far
    action_dim = 4

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.ramp = SetpointRamp(sim, ("gripper_x", "gripper_y", "gripper_z"), LOW, HIGH, MAX_SPEED)
        # Both fingers follow one command; the ramp's norm covers the two, hence the sqrt(2).
        self.finger_ramp = SetpointRamp(sim, ("finger_left", "finger_right"), (0.0, 0.0),
                                        (FINGER_OPEN, FINGER_OPEN), FINGER_SPEED * np.sqrt(2))
        self._qpos = np.array([sim.joint_qpos_adr(f"gripper_{axis}") for axis in "xyz"])
        self._qvel = np.array([sim.joint_qvel_adr(f"gripper_{axis}") for axis in "xyz"])
        self._finger_qpos = np.array([sim.joint_qpos_adr(f"finger_{side}") for side in ("left", "right")])
        self._finger_qvel = np.array([sim.joint_qvel_adr(f"finger_{side}") for side in ("left", "right")])
        self._cube_qpos = sim.joint_qpos_adr("cube")
        self._cube_qvel = sim.joint_qvel_adr("cube")
        self._cube_geom = sim.id("geom", "cube")
        self._gripper_geoms = frozenset(
            sim.id("geom", name) for name in ("palm", "finger_left", "finger_right")
        )
        mocap = sim.model.body_mocapid
        self._target = int(mocap[sim.id("body", "target")])
        self._gripper_mark = int(mocap[sim.id("body", "gripper_mark")])

    # ---- privileged state ----

    @property
    def gripper_xyz(self) -> np.ndarray:
        return self.sim.data.qpos[self._qpos].copy()

    @property
    def gripper_gap(self) -> float:
        """Distance between the finger pads (m): 0 closed, 2 * FINGER_OPEN fully open."""
        return float(np.sum(self.sim.data.qpos[self._finger_qpos]))

    @property
    def cube_xyz(self) -> np.ndarray:
        return self.sim.data.qpos[self._cube_qpos : self._cube_qpos + 3].copy()

    @property
    def cube_yaw(self) -> float:
        w, x, y, z = self.sim.data.qpos[self._cube_qpos + 3 : self._cube_qpos + 7]
        return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    @property
    def cube_speed(self) -> float:
        return float(np.linalg.norm(self.sim.data.qvel[self._cube_qvel : self._cube_qvel + 3]))

    @property
    def target_xy(self) -> np.ndarray:
        return self.sim.data.mocap_pos[self._target, :2].copy()

    def distance(self) -> float:
        """Cube centre to zone centre in the table plane (m)."""
        return float(np.linalg.norm(self.cube_xyz[:2] - self.target_xy))

    def gripper_touches_cube(self) -> bool:
        data = self.sim.data
        for contact in data.contact[: data.ncon]:
            pair = {int(contact.geom1), int(contact.geom2)}
            if self._cube_geom in pair and pair & self._gripper_geoms:
                return True
        return False

    def cube_on_table(self) -> bool:
        return self.cube_xyz[2] < CUBE_HALF + REST_TOLERANCE and self.cube_speed < REST_SPEED

    # ---- Task ----

    def initialize(self, rng: np.random.Generator) -> None:
        cube = rng.uniform(-SPAWN, SPAWN, 2)
        while True:
            target = rng.uniform(-SPAWN, SPAWN, 2)
            if np.linalg.norm(target - cube) >= MIN_START_DISTANCE:
                break
        yaw = rng.uniform(-np.pi, np.pi)
        gripper = rng.uniform(GRIPPER_SPAWN_LOW, GRIPPER_SPAWN_HIGH)
        self.set_target(target)
        self.set_cube_pose(np.array([*cube, CUBE_HALF]), yaw)
        self.set_gripper(gripper, gap=2 * FINGER_OPEN)

    def set_target(self, xy: np.ndarray) -> None:
        self.sim.data.mocap_pos[self._target, :2] = xy

    def set_cube_pose(self, xyz: np.ndarray, yaw: float) -> None:
        """Put the cube at rest at `xyz` (m) with `yaw` (rad); call `sim.forward()` after."""
        qpos = self.sim.data.qpos
        qpos[self._cube_qpos : self._cube_qpos + 3] = xyz
        qpos[self._cube_qpos + 3 : self._cube_qpos + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.sim.data.qvel[self._cube_qvel : self._cube_qvel + 6] = 0.0

    def set_gripper(self, xyz: np.ndarray, gap: float = 2 * FINGER_OPEN) -> None:
        """Put the gripper at rest at `xyz` (m) with the fingers `gap` m apart and hold; call `sim.forward()` after."""
        data = self.sim.data
        half = float(np.clip(gap / 2, 0.0, FINGER_OPEN))
        data.qpos[self._qpos] = xyz
        data.qvel[self._qvel] = 0.0
        data.qpos[self._finger_qpos] = half
        data.qvel[self._finger_qvel] = 0.0
        self.ramp.reset(xyz)
        self.finger_ramp.reset(np.array([half, half]))
        self._move_mark()

    def command(self, action: np.ndarray) -> None:
        self.ramp.command(action[:3])
        grip = float(action[3])  # +1 closes (finger setpoint 0), -1 opens (FINGER_OPEN)
        self.finger_ramp.command(np.array([-grip, -grip]))

    def substep(self) -> None:
        self.ramp.substep()
        self.finger_ramp.substep()
        self._move_mark()

    def _move_mark(self) -> None:
        self.sim.data.mocap_pos[self._gripper_mark, :2] = self.sim.data.qpos[self._qpos[:2]]

    def state(self) -> np.ndarray:
        yaw = self.cube_yaw
        return np.array([*self.gripper_xyz, self.gripper_gap, *self.cube_xyz, np.sin(4 * yaw), np.cos(4 * yaw),
                         *self.target_xy], dtype=np.float32)

    def success(self) -> bool:
        return (self.distance() < SUCCESS_RADIUS and self.cube_on_table()
                and not self.gripper_touches_cube())

    def reward(self) -> float:
        return 1.0 if self.success() else -self.distance()

    def measured_action(self) -> np.ndarray:
        # The grip command whose finger setpoint is the measured opening (+1 closed, -1 open).
        half = np.full(2, self.gripper_gap / 2)
        grip = -self.finger_ramp.to_action(half)[0]
        return np.append(self.ramp.to_action(self.gripper_xyz), grip).astype(np.float32)

    def expert(self) -> PickPlaceExpert:
        return PickPlaceExpert(self)


OPEN, CLOSE = -1.0, 1.0


class PickPlaceExpert:
    """Closed-loop scripted picker reading the cube and zone from the simulation.

    Phases (the gripper command is OPEN unless said otherwise):
      approach - to `hover` m above the cube (straight line, <= `step` m per control step);
      descend  - down to the cube centre, following the cube in x, y;
      close    - CLOSE and hold still for `close_steps` steps;
      lift     - CLOSE, up to `carry_height`; if the cube does not come along, approach again;
      carry    - CLOSE, across to above the zone, offset by where the cube sits in the hand;
      place    - CLOSE, down until the cube's bottom is `drop` m above the table;
      release  - OPEN, hold still, then rise back to `hover` above the cube.
    A cube that leaves the hand while lifting, carrying or placing sends the expert back to approach, and
    so does a release that has not succeeded after `retry_steps` steps (e.g. the cube landed outside).
    Each action is the gripper position plus a bounded step towards the phase's waypoint, so consecutive
    position targets stay within `step` m of the gripper (what a policy can imitate).
    """

    step = 0.04  # m per control step (0.4 m/s)
    hover = 0.07  # m above the cube centre while approaching
    carry_height = 0.1  # m, gripper height while carrying
    close_steps = 2
    drop = 0.003  # m, cube bottom above the table when released
    lost = 0.025  # m, cube centre to grasp centre beyond which the grasp is lost
    retry_steps = 6  # steps after opening without success before picking the cube again

    def __init__(self, task: PickPlaceTask) -> None:
        self._task = task
        self.reset()

    def reset(self) -> None:
        self.phase = "approach"
        self._count = 0

    def _go(self, phase: str) -> None:
        self.phase = phase
        self._count = 0

    def act(self, obs: Any = None) -> np.ndarray:
        """Next action (4,) float32; `obs` is unused (the expert reads the simulation)."""
        task = self._task
        p, c, g = task.gripper_xyz, task.cube_xyz, task.target_xy
        held = bool(np.linalg.norm(c - p) < self.lost)
        if self.phase in ("lift", "carry", "place") and not held:
            self._go("approach")
        self._count += 1

        if self.phase == "approach":
            hover = c[2] + self.hover
            if _xy(p, c) > 0.01 and p[2] < hover - 0.015:  # low beside the cube: rise first
                waypoint = np.array([p[0], p[1], hover])
            else:  # across at the current height (never lower than hover), then down to hover
                waypoint = np.array([c[0], c[1], max(hover, p[2]) if _xy(p, c) > 0.01 else hover])
            if _xy(p, c) < 0.005 and abs(p[2] - hover) < 0.01:
                self._go("descend")
            return self._action(p, waypoint, OPEN)
        if self.phase == "descend":
            waypoint = np.array([c[0], c[1], c[2]])
            if abs(p[2] - c[2]) < 0.004 and _xy(p, c) < 0.006:
                self._go("close")
            elif _xy(p, c) > 0.02:  # the cube moved away: start again from above it
                self._go("approach")
            return self._action(p, waypoint, OPEN)
        if self.phase == "close":
            if self._count > self.close_steps:
                self._go("lift")
            return self._action(p, p, CLOSE)
        if self.phase == "lift":
            waypoint = np.array([p[0], p[1], self.carry_height])
            if p[2] > self.carry_height - 0.01:
                self._go("carry")
            return self._action(p, waypoint, CLOSE)
        offset = p[:2] - c[:2]  # where the cube sits in the hand
        if self.phase == "carry":
            waypoint = np.array([*(g + offset), self.carry_height])
            if _xy(c, np.array([*g, 0.0])) < 0.005:
                self._go("place")
            return self._action(p, waypoint, CLOSE)
        if self.phase == "place":
            waypoint = np.array([*(g + offset), p[2] - (c[2] - CUBE_HALF - self.drop)])
            if c[2] < CUBE_HALF + self.drop + 0.002:
                self._go("release")
            return self._action(p, waypoint, CLOSE)
        # release: open in place, then back up; still no success after `retry_steps`: pick the cube again
        if self._count > self.retry_steps:
            self._go("approach")
        waypoint = p.copy() if self._count <= 2 else np.array([p[0], p[1], c[2] + self.hover])
        return self._action(p, waypoint, OPEN)

    def _action(self, p: np.ndarray, waypoint: np.ndarray, grip: float) -> np.ndarray:
        aim = waypoint - p
        target = p + aim * min(1.0, self.step / max(float(np.linalg.norm(aim)), 1e-9))
        return np.append(self._task.ramp.to_action(target), np.float32(grip)).astype(np.float32)


def _xy(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a[:2] - b[:2]))


def make_env(**kwargs: Any) -> MujocoEnv:
    """Entry point of `robolearn/mujoco-pick-place`; kwargs go to `MujocoEnv` (image_size, cameras, ...)."""
    return MujocoEnv(PickPlaceTask, **kwargs)
