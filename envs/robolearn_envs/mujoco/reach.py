"""`robolearn/mujoco-reach`: move a sphere end effector to a target ball placed at random.

Scene (assets/reach.xml): the shared table scene; an end effector on x/y/z slide joints with position
actuators and gravity compensation; a visual-only green target ball (mocap body), with discs on the
table under the target and under the effector so heights read from one camera. Physics at 500 Hz,
control at 10 Hz; episodes are cut at 50 control steps (5 s).

Action (Da = 3): ABSOLUTE effector target in normalized workspace coordinates, [-1, 1] -> x, y in
[-0.2, 0.2] m and z in [0.03, 0.23] m. Setpoints move there at <= 0.5 m/s (5 cm per control step).
State (Do = 6): effector x, y, z; target x, y, z (m).
Success: effector centre within `SUCCESS_RADIUS` of the target centre; the episode then terminates.
Reward: 1.0 on success, else minus the effector-to-target distance in metres.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn_envs.mujoco.base import SetpointRamp, Sim
from robolearn_envs.mujoco.env import MujocoEnv, Task

LOW = np.array([-0.2, -0.2, 0.03])  # workspace corners (m)
HIGH = np.array([0.2, 0.2, 0.23])
MAX_SPEED = 0.5  # m/s, setpoint speed limit
SUCCESS_RADIUS = 0.02  # m
MIN_START_DISTANCE = 0.1  # m, effector to target at reset
MAX_EPISODE_STEPS = 50  # the expert needs ~10 steps at most


class ReachTask(Task):
    xml = "reach.xml"
    description = "move the blue ball to the green ball"
    control_hz = 10.0
    state_names = ("effector_x", "effector_y", "effector_z", "target_x", "target_y", "target_z")
    state_limit = 1.0  # m; everything stays within the workspace
    action_dim = 3

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.ramp = SetpointRamp(sim, ("effector_x", "effector_y", "effector_z"), LOW, HIGH, MAX_SPEED)
        self._qpos = np.array([sim.joint_qpos_adr(f"effector_{axis}") for axis in "xyz"])
        self._qvel = np.array([sim.joint_qvel_adr(f"effector_{axis}") for axis in "xyz"])
        mocap = sim.model.body_mocapid
        self._target_mocap = int(mocap[sim.id("body", "target")])
        self._target_mark = int(mocap[sim.id("body", "target_mark")])
        self._effector_mark = int(mocap[sim.id("body", "effector_mark")])

    @property
    def effector_xyz(self) -> np.ndarray:
        return self.sim.data.qpos[self._qpos].copy()

    @property
    def target_xyz(self) -> np.ndarray:
        return self.sim.data.mocap_pos[self._target_mocap].copy()

    def distance(self) -> float:
        return float(np.linalg.norm(self.effector_xyz - self.target_xyz))

    def initialize(self, rng: np.random.Generator) -> None:
        target = rng.uniform(LOW, HIGH)
        while True:
            effector = rng.uniform(LOW, HIGH)
            if np.linalg.norm(effector - target) >= MIN_START_DISTANCE:
                break
        self.set_target(target)
        self.set_effector(effector)

    def set_target(self, xyz: np.ndarray) -> None:
        data = self.sim.data
        data.mocap_pos[self._target_mocap] = xyz
        data.mocap_pos[self._target_mark, :2] = xyz[:2]

    def set_effector(self, xyz: np.ndarray) -> None:
        """Put the effector at rest at `xyz` and hold it there; call `sim.forward()` after."""
        self.sim.data.qpos[self._qpos] = xyz
        self.sim.data.qvel[self._qvel] = 0.0
        self.ramp.reset(xyz)
        self._move_mark()

    def command(self, action: np.ndarray) -> None:
        self.ramp.command(action)

    def substep(self) -> None:
        self.ramp.substep()
        self._move_mark()

    def _move_mark(self) -> None:
        self.sim.data.mocap_pos[self._effector_mark, :2] = self.sim.data.qpos[self._qpos[:2]]

    def state(self) -> np.ndarray:
        return np.concatenate([self.effector_xyz, self.target_xyz]).astype(np.float32)

    def success(self) -> bool:
        return self.distance() < SUCCESS_RADIUS

    def reward(self) -> float:
        return 1.0 if self.success() else -self.distance()

    def measured_action(self) -> np.ndarray:
        return self.ramp.to_action(self.effector_xyz)

    def expert(self) -> ReachExpert:
        return ReachExpert(self)


class ReachExpert:
    """Straight line to the target, at most `step` m per control step."""

    step = 0.04  # m per control step (0.4 m/s)

    def __init__(self, task: ReachTask) -> None:
        self._task = task

    def reset(self) -> None:
        pass

    def act(self, obs: Any = None) -> np.ndarray:
        """Next action (3,) float32; `obs` is unused (the expert reads the simulation)."""
        p, g = self._task.effector_xyz, self._task.target_xyz
        aim = g - p
        length = float(np.linalg.norm(aim))
        return self._task.ramp.to_action(p + aim * min(1.0, self.step / max(length, 1e-9)))


def make_env(**kwargs: Any) -> MujocoEnv:
    """Entry point of `robolearn/mujoco-reach`; kwargs go to `MujocoEnv` (image_size, cameras, ...)."""
    return MujocoEnv(ReachTask, **kwargs)
