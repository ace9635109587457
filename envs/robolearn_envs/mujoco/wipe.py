"""`robolearn/mujoco-wipe`: wipe a line of dirt across a pad that rises and falls, pressing with a force in a band.

The contact-rich native task (force feedback matters): the pad's height drifts during the episode as a
smooth random signal the policy cannot predict from a few frames, so a tool that holds its planned height
open loop loses contact or presses too hard within a fraction of a second; the force/torque reading tells
it which, at every control tick.

Scene (assets/wipe.xml): the shared table scene; a grey pad (mocap body, 34 x 12 cm, centred at y = -0.12 m)
whose top face sits at `PAD_TOP` m plus the sum of two random sinusoids (0.4-1.2 cm each, 0.4-1.2 Hz); twelve 2 cm dirt
bins on a line y = `line_y` (random per episode) for x in [-0.12, 0.12]; a sphere tool (radius 1.2 cm)
on x/y/z slide joints with position actuators (z compliant: `KZ` N/m) behind a 6-axis force/torque
sensor. Physics at 480 Hz, control at 24 Hz (20 substeps); episodes are cut at 200 control steps (8.3 s).

Action (Da = 3): ABSOLUTE tool target in normalized workspace coordinates, [-1, 1] -> x, y in
[-0.2, 0.2] m and z in [-0.02, 0.14] m (below the pad top, so pressing is a target under the surface).
Setpoints move there at <= 0.5 m/s.
State (Do = 4): tool x, y, z (m); line y (m).
Force (6,): the wrench the environment exerts on the tool, N and N m, world-aligned axes at the tool
centre: pressing down on the pad reads +fz (about KZ times the setpoint depth below the contact point),
sliding along +x reads -fx (friction). Clipped to [-FORCE_LIMIT, FORCE_LIMIT].
Wiping: a dirt bin is wiped once the tool has spent `WIPE_TIME` s over it (|y - line_y| < 1.5 cm) with a
normal force fz in [`FORCE_LOW`, `FORCE_HIGH`] N; wiped bins turn white.
Success: all twelve bins wiped; the episode then terminates. The expert succeeds on every seed in ~100 of the
200 steps; zero actions and uniform random targets wipe no bin (tests/envs/test_mujoco_contact.py). A bin
missed is never revisited, so policies are also compared on the fraction wiped (benchmarks/rdp.py).
Reward: 1.0 on success, else the fraction of bins wiped.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robolearn_envs.mujoco.base import SetpointRamp, Sim
from robolearn_envs.mujoco.env import MujocoEnv, Task

LOW = np.array([-0.2, -0.2, -0.02])  # tool target workspace corners (m)
HIGH = np.array([0.2, 0.2, 0.14])
MAX_SPEED = 0.5  # m/s, setpoint speed limit
KZ = 300.0  # N/m, z actuator stiffness (assets/wipe.xml)
TOOL_RADIUS = 0.012  # m
PAD_TOP = 0.03  # m, mean height of the pad's top face
PAD_Y = -0.12  # m, pad centre y (near the front camera, clear of the upright probe's markers)
PAD_HALF_HEIGHT = 0.02  # m (assets/wipe.xml); pad body z = top - PAD_HALF_HEIGHT
N_BINS = 12
BIN_X0, BIN_WIDTH = -0.12, 0.02  # bins cover x in [BIN_X0, BIN_X0 + N_BINS * BIN_WIDTH]
LINE_HALF_WIDTH = 0.015  # m, |tool y - line y| that still wipes
FORCE_LOW, FORCE_HIGH = 3.0, 7.0  # N, normal force band that wipes (KZ: +-1.3 cm of setpoint depth)
WIPE_TIME = 0.12  # s in band over a bin to wipe it (the expert spends ~0.28 s over each)
FORCE_LIMIT = 100.0  # N (and N m), bounds of the `force` observation
MAX_EPISODE_STEPS = 200  # the expert needs ~100 steps
DIRT_RGBA = np.array([0.45, 0.30, 0.12, 1.0], dtype=np.float32)
CLEAN_RGBA = np.array([0.97, 0.97, 0.97, 1.0], dtype=np.float32)


class WipeTask(Task):
    xml = "wipe.xml"
    description = "wipe the dirt off the pad along the line"
    control_hz = 24.0
    state_names = ("tool_x", "tool_y", "tool_z", "line_y")
    state_limit = 1.0  # m; the tool stays within the workspace
    action_dim = 3

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.ramp = SetpointRamp(sim, ("effector_x", "effector_y", "effector_z"), LOW, HIGH, MAX_SPEED)
        self._qpos = np.array([sim.joint_qpos_adr(f"effector_{axis}") for axis in "xyz"])
        self._qvel = np.array([sim.joint_qvel_adr(f"effector_{axis}") for axis in "xyz"])
        self._pad = int(sim.model.body_mocapid[sim.id("body", "pad")])
        self._bins = np.array([sim.id("geom", f"bin{i}") for i in range(N_BINS)])
        force, torque = sim.id("sensor", "ft_force"), sim.id("sensor", "ft_torque")
        self._force_adr = int(sim.model.sensor_adr[force])
        self._torque_adr = int(sim.model.sensor_adr[torque])
        self._substep_dt = float(sim.model.opt.timestep)
        self.line_y = 0.0
        self._wave = np.zeros((2, 3))  # per component: amplitude (m), frequency (Hz), phase (rad)
        self.in_band_time = np.zeros(N_BINS)
        self.wiped = np.zeros(N_BINS, dtype=bool)

    # ---- privileged state ----

    @property
    def tool_xyz(self) -> np.ndarray:
        return self.sim.data.qpos[self._qpos].copy()

    def pad_top(self, t: float | None = None) -> float:
        """Height (m) of the pad's top face at sim time `t` (default: now)."""
        t = self.sim.time if t is None else t
        amp, freq, phase = self._wave.T
        return PAD_TOP + float(np.sum(amp * np.sin(2 * np.pi * freq * t + phase)))

    def wrench(self) -> np.ndarray:
        """(6,) float32: force (N) and torque (N m) the environment exerts on the tool (see module doc)."""
        data = self.sim.data.sensordata
        raw = np.concatenate([data[self._force_adr : self._force_adr + 3],
                              data[self._torque_adr : self._torque_adr + 3]])
        # The sensor reads the carriage's wrench on the tool; the environment's is its opposite at rest.
        return np.clip(-raw, -FORCE_LIMIT, FORCE_LIMIT).astype(np.float32)

    # ---- Task ----

    def initialize(self, rng: np.random.Generator) -> None:
        self.line_y = PAD_Y + float(rng.uniform(-0.03, 0.03))
        amp = rng.uniform(0.004, 0.012, 2)
        freq = rng.uniform(0.4, 1.2, 2)
        phase = rng.uniform(-np.pi, np.pi, 2)
        self._wave = np.stack([amp, freq, phase], axis=1)
        self.in_band_time[:] = 0.0
        self.wiped[:] = False
        model = self.sim.model
        model.geom_rgba[self._bins] = DIRT_RGBA
        model.geom_pos[self._bins, 1] = self.line_y - PAD_Y  # bins are children of the pad body
        self._move_pad()
        start = np.array([rng.uniform(-0.2, -0.08), rng.uniform(-0.17, 0.03), rng.uniform(0.08, 0.12)])
        self.set_tool(start)

    def set_tool(self, xyz: np.ndarray) -> None:
        """Put the tool at rest at `xyz` (m) and hold it there; call `sim.forward()` after."""
        self.sim.data.qpos[self._qpos] = xyz
        self.sim.data.qvel[self._qvel] = 0.0
        self.ramp.reset(xyz)

    def _move_pad(self) -> None:
        self.sim.data.mocap_pos[self._pad] = (0.0, PAD_Y, self.pad_top() - PAD_HALF_HEIGHT)

    def command(self, action: np.ndarray) -> None:
        self.ramp.command(action)

    def substep(self) -> None:
        # sensordata is from the previous mj_step: the wrench over the substep that just ended.
        x, y, _ = self.tool_xyz
        fz = float(self.wrench()[2])
        i = int(np.floor((x - BIN_X0) / BIN_WIDTH))
        if 0 <= i < N_BINS and abs(y - self.line_y) < LINE_HALF_WIDTH and FORCE_LOW <= fz <= FORCE_HIGH:
            self.in_band_time[i] += self._substep_dt
            if not self.wiped[i] and self.in_band_time[i] >= WIPE_TIME - 1e-9:
                self.wiped[i] = True
                self.sim.model.geom_rgba[self._bins[i]] = CLEAN_RGBA
        self.ramp.substep()
        # The pad follows its signal at the time the coming substep ends.
        t = self.sim.time + self._substep_dt
        self.sim.data.mocap_pos[self._pad, 2] = self.pad_top(t) - PAD_HALF_HEIGHT

    def state(self) -> np.ndarray:
        return np.array([*self.tool_xyz, self.line_y], dtype=np.float32)

    def sensor_spaces(self) -> dict[str, gym.spaces.Box]:
        return {"force": gym.spaces.Box(-FORCE_LIMIT, FORCE_LIMIT, (6,), np.float32)}

    def sensors(self) -> dict[str, np.ndarray]:
        return {"force": self.wrench()}

    def success(self) -> bool:
        return bool(self.wiped.all())

    def reward(self) -> float:
        return 1.0 if self.success() else float(self.wiped.mean())

    def measured_action(self) -> np.ndarray:
        return self.ramp.to_action(self.tool_xyz)

    def expert(self) -> WipeExpert:
        return WipeExpert(self)


class WipeExpert:
    """Scripted wiper that closes the loop on the measured force (it never reads the pad height).

    Phases:
      approach - to `hover` m above the start of the line, at most `approach_step` m per control step;
      descend  - lower the target `descend_step` m per step until the normal force exceeds `touch_force`;
      wipe     - advance `wipe_step` m per step along +x; the z target integrates the force error,
                 z += `gain` * (fz - `target_force`) / KZ (an admittance controller), so the tool
                 follows the moving pad at about `target_force` N;
      lift     - past the line's end, rise back to `hover` m.
    Targets are built from the previous target, so consecutive actions are smooth.
    """

    hover = 0.09  # m, tool height while approaching (above the highest pad top plus the tool radius)
    approach_step = 0.012  # m per control step
    descend_step = 0.005  # m per control step
    touch_force = 1.0  # N
    wipe_step = 0.003  # m per control step (7.2 cm/s)
    target_force = 5.0  # N, the middle of the wiping band
    gain = 0.8  # fraction of the force error corrected per control step
    x_start, x_end = BIN_X0 - 0.008, BIN_X0 + N_BINS * BIN_WIDTH + 0.012

    def __init__(self, task: WipeTask) -> None:
        self._task = task
        self.reset()

    def reset(self) -> None:
        self._phase = "approach"
        self._target: np.ndarray | None = None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Next action (3,) float32 from `obs["force"]` and the tool position; the line comes from `state`."""
        task = self._task
        p = task.tool_xyz
        fz = float(np.asarray(obs["force"])[2])
        line_y = float(np.asarray(obs["state"])[3])
        target = p.copy() if self._target is None else self._target.copy()
        if self._phase == "approach":
            aim = np.array([self.x_start, line_y, self.hover]) - target
            dist = float(np.linalg.norm(aim))
            target = target + aim * min(1.0, self.approach_step / max(dist, 1e-9))
            if dist < 1e-3:
                self._phase = "descend"
        elif self._phase == "descend":
            target[2] -= self.descend_step
            if fz > self.touch_force:
                self._phase = "wipe"
        if self._phase == "wipe":
            target[0] = min(target[0] + self.wipe_step, self.x_end)
            target[1] = line_y
            target[2] += self.gain * (fz - self.target_force) / KZ
            if target[0] >= self.x_end:
                self._phase = "lift"
        elif self._phase == "lift":
            target[2] = min(target[2] + self.approach_step, self.hover)
        target = np.clip(target, LOW, HIGH)
        self._target = target
        return task.ramp.to_action(target)


def make_env(**kwargs: Any) -> MujocoEnv:
    """Entry point of `robolearn/mujoco-wipe`; kwargs go to `MujocoEnv` (image_size, cameras, ...)."""
    return MujocoEnv(WipeTask, **kwargs)
