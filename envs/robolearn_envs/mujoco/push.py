"""`robolearn/mujoco-push`: push a block onto a target with a planar pusher.

Scene (assets/push.xml): table plane z = 0; workspace x, y in [-0.25, 0.25] m; a 7 cm red block
(free joint, random position and yaw each episode); a blue capsule pusher on x/y slide joints with
position actuators (random start); a fixed green target disc (radius 5 cm) at (0.08, 0.08) m
(`task.target_xy`, read from the MJCF), drawn on the table and never colliding. Physics at 500 Hz,
control at 10 Hz (50 substeps); episodes are cut at 100 control steps (10 s).

Action (Da = 2): ABSOLUTE pusher target in normalized workspace coordinates, [-1, 1] -> [-0.25, 0.25] m
per axis. The actuator setpoints move there at <= 0.5 m/s (5 cm per control step).
State (Do = 6): pusher x, y; block x, y (m); sin(4 yaw), cos(4 yaw) of the block (the square looks the
same every 90 degrees, so the angle is encoded modulo that symmetry).
Success: block centre within `SUCCESS_RADIUS` of the target; the episode then terminates.
Reward: 1.0 on success, else minus the block-to-target distance in metres.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn_envs.mujoco.base import SetpointRamp, Sim
from robolearn_envs.mujoco.env import MujocoEnv, Task

WORKSPACE = 0.25  # pusher targets span [-WORKSPACE, WORKSPACE] m in x and y
MAX_SPEED = 0.5  # m/s, setpoint speed limit
SUCCESS_RADIUS = 0.03  # m, block centre to target centre
BLOCK_HALF = 0.035  # m, half side of the block (assets/push.xml)
PUSHER_RADIUS = 0.015  # m (assets/push.xml)
BLOCK_SPAWN = 0.15  # block centre starts in [-BLOCK_SPAWN, BLOCK_SPAWN]^2 ...
MIN_START_DISTANCE = 0.1  # ... at least this far from the target
PUSHER_SPAWN = 0.2
MAX_EPISODE_STEPS = 100  # the expert needs 17 steps on average, 29 at most (1000 seeds)


class PushTask(Task):
    xml = "push.xml"
    description = "push the block onto the target"
    control_hz = 10.0
    state_names = ("pusher_x", "pusher_y", "block_x", "block_y", "block_sin4yaw", "block_cos4yaw")
    state_limit = 1.0  # m and sin/cos; the pusher stays within 0.25 m, the block cannot be pushed past ~0.35 m
    action_dim = 2

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.ramp = SetpointRamp(sim, ("pusher_x", "pusher_y"), (-WORKSPACE,) * 2, (WORKSPACE,) * 2, MAX_SPEED)
        self._pusher_qpos = np.array([sim.joint_qpos_adr("pusher_x"), sim.joint_qpos_adr("pusher_y")])
        self._block_qpos = sim.joint_qpos_adr("block")
        self._block_z = float(sim.model.body_pos[sim.id("body", "block")][2])
        self.target_xy = sim.model.geom_pos[sim.id("geom", "target")][:2].copy()

    # ---- privileged state ----

    @property
    def pusher_xy(self) -> np.ndarray:
        return self.sim.data.qpos[self._pusher_qpos].copy()

    @property
    def block_xy(self) -> np.ndarray:
        return self.sim.data.qpos[self._block_qpos : self._block_qpos + 2].copy()

    @property
    def block_yaw(self) -> float:
        w, x, y, z = self.sim.data.qpos[self._block_qpos + 3 : self._block_qpos + 7]
        return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    def distance(self) -> float:
        return float(np.linalg.norm(self.block_xy - self.target_xy))

    # ---- Task ----

    def initialize(self, rng: np.random.Generator) -> None:
        while True:
            block = rng.uniform(-BLOCK_SPAWN, BLOCK_SPAWN, 2)
            if np.linalg.norm(block - self.target_xy) >= MIN_START_DISTANCE:
                break
        yaw = rng.uniform(-np.pi, np.pi)
        clearance = BLOCK_HALF * np.sqrt(2) + PUSHER_RADIUS + 0.01
        while True:
            pusher = rng.uniform(-PUSHER_SPAWN, PUSHER_SPAWN, 2)
            if np.linalg.norm(pusher - block) >= clearance:
                break
        self.set_block_pose(block, yaw)
        self.set_pusher(pusher)

    def set_block_pose(self, xy: np.ndarray, yaw: float) -> None:
        """Put the block at rest on the table at `xy` (m) with `yaw` (rad); call `sim.forward()` after."""
        qpos = self.sim.data.qpos
        qpos[self._block_qpos : self._block_qpos + 3] = (*xy, self._block_z)
        qpos[self._block_qpos + 3 : self._block_qpos + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        dof = self.sim.joint_qvel_adr("block")
        self.sim.data.qvel[dof : dof + 6] = 0.0

    def set_pusher(self, xy: np.ndarray) -> None:
        """Put the pusher at rest at `xy` (m) and hold it there; call `sim.forward()` after."""
        self.sim.data.qpos[self._pusher_qpos] = xy
        self.sim.data.qvel[[self.sim.joint_qvel_adr("pusher_x"), self.sim.joint_qvel_adr("pusher_y")]] = 0.0
        self.ramp.reset(xy)

    def command(self, action: np.ndarray) -> None:
        self.ramp.command(action)

    def substep(self) -> None:
        self.ramp.substep()

    def state(self) -> np.ndarray:
        yaw = self.block_yaw
        return np.array([*self.pusher_xy, *self.block_xy, np.sin(4 * yaw), np.cos(4 * yaw)], dtype=np.float32)

    def success(self) -> bool:
        return self.distance() < SUCCESS_RADIUS

    def reward(self) -> float:
        return 1.0 if self.success() else -self.distance()

    def measured_action(self) -> np.ndarray:
        return self.ramp.to_action(self.pusher_xy)

    def expert(self) -> PushExpert:
        return PushExpert(self)


class PushExpert:
    """Closed-loop scripted pusher: get behind the block on the block->target line, then push along it.

    Frame: u points from the block to the target, n is u turned left; s and l are the pusher's
    coordinates along u and n relative to the block centre (s < 0: behind the block). Phases:
      approach - straight to the point `behind` m behind the block on the line when the way is clear,
                 otherwise along an arc of radius `behind` around the block (the shorter way round);
      push     - step `push_step` m along u while removing `lateral_gain` of l, so the pusher stays on
                 the line through the block centre as the block drifts and turns (re-aimed every step).
                 Ending up `lost_lateral` m off the line, or beside the block, starts the approach again.
    Each action is the pusher position plus a bounded step towards the phase's waypoint, so consecutive
    actions are smooth and stay close to the pusher (what a policy can imitate).
    """

    behind = 0.08  # m, approach radius around the block centre
    clear = 0.07  # m, a straight approach keeps this far from the block centre (corners: 0.0645)
    arc_step = 0.7  # rad, how far ahead on the arc the approach waypoint lies
    approach_step = 0.04  # m per control step (0.4 m/s)
    push_step = 0.025  # m per control step (0.25 m/s)
    lateral_gain = 0.7  # fraction of the lateral offset l removed per push step
    lost_lateral = 0.045  # m

    def __init__(self, task: PushTask) -> None:
        self._task = task
        self._pushing = False

    def reset(self) -> None:
        self._pushing = False

    def act(self, obs: Any = None) -> np.ndarray:
        """Next action (2,) float32; `obs` is unused (the expert reads the simulation)."""
        task = self._task
        p, b, g = task.pusher_xy, task.block_xy, task.target_xy
        dist = float(np.linalg.norm(g - b))
        u = (g - b) / max(dist, 1e-6)
        n = np.array([-u[1], u[0]])
        s, lat = float((p - b) @ u), float((p - b) @ n)

        if self._pushing and (abs(lat) > self.lost_lateral or s > -0.02):
            self._pushing = False
        elif not self._pushing and s < -0.045 and abs(lat) < 0.012:
            self._pushing = True

        if self._pushing:
            target = p + u * min(self.push_step, dist) - n * self.lateral_gain * lat
        else:
            waypoint = b - u * self.behind
            if _segment_distance(b, p, waypoint) < self.clear:
                phi = np.arctan2(lat, s)  # +-pi is straight behind the block
                phi_next = np.clip(phi + np.copysign(self.arc_step, phi), -np.pi, np.pi)
                waypoint = b + self.behind * (np.cos(phi_next) * u + np.sin(phi_next) * n)
            aim = waypoint - p
            target = p + aim * min(1.0, self.approach_step / max(float(np.linalg.norm(aim)), 1e-9))
        return task.ramp.to_action(target)


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from `point` to the segment a-b."""
    ab = b - a
    t = float(np.clip((point - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(a + t * ab - point))


def make_env(**kwargs: Any) -> MujocoEnv:
    """Entry point of `robolearn/mujoco-push`; kwargs go to `MujocoEnv` (image_size, cameras, ...)."""
    return MujocoEnv(PushTask, **kwargs)
