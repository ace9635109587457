"""A MuJoCo twin of the UR5e for the emulated controller: robosuite's MJCF (``robots/ur5e/robot.xml``, MIT,
shipped in the robosuite wheel robolearn already pins), driven the way the real joint controllers are.

Each joint is a position servo within the model's motor limits (±150 N m for the three big joints, ±28 N m
for the wrist): stiffness for a natural frequency of ``OMEGA``, critical damping towards the target velocity,
plus gravity and Coriolis compensation (as the real controller's dynamic model does), stepped at 1 kHz. ``actual_q`` / ``actual_qd`` / torques come from the simulation, not from the target.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from robolearn.errors import MissingExtraError

__all__ = ["UR5eTwin", "ur5e_mjcf", "JOINT_NAMES"]

JOINT_NAMES = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
               "wrist_3_joint")
OMEGA = 60.0
"""Natural frequency (rad/s) of each joint's servo."""
ARMATURE = (0.6, 0.6, 0.4, 0.1, 0.1, 0.1)
"""Reflected rotor inertia (kg m^2) of the UR's harmonic-drive joints (robosuite's model has none)."""


def ur5e_mjcf() -> Path:
    """robosuite's UR5e robot.xml, found without importing robosuite (slow, and it prints warnings)."""
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("the UR5e twin needs robosuite's MJCF; install it with "
                                "`pip install -c constraints.txt -e 'envs[robosuite]'` (robosuite==1.5.2).")
    path = Path(list(spec.submodule_search_locations)[0]) / "models/assets/robots/ur5e/robot.xml"
    if not path.exists():
        raise MissingExtraError(f"robosuite is installed but has no UR5e model at {path}; install robosuite==1.5.2.")
    return path


class UR5eTwin:
    """The UR5e in MuJoCo, stepped by the controller once per control period ``dt``."""

    def __init__(self, q0: np.ndarray, dt: float = 0.002, timestep: float = 0.001):
        import mujoco

        self._mj = mujoco
        model = mujoco.MjModel.from_xml_path(str(ur5e_mjcf()))
        model.opt.timestep = timestep
        model.opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT  # the arm alone: no self-contact
        model.dof_armature[:] = ARMATURE
        self.model, self.data = model, mujoco.MjData(model)
        self.joint_ids = [model.joint(n).id for n in JOINT_NAMES]
        self.qadr = model.jnt_qposadr[self.joint_ids]
        self.dadr = model.jnt_dofadr[self.joint_ids]
        self.data.qpos[self.qadr] = q0
        mujoco.mj_forward(model, self.data)
        full = np.zeros((model.nv, model.nv))
        mujoco.mj_fullM(model, full, self.data.qM)
        inertia = np.diag(full)[self.dadr]
        self.kp = inertia * OMEGA ** 2
        self.kv = 2.0 * inertia * OMEGA
        self.torque_limit = np.abs(model.actuator_ctrlrange[:, 1])
        self._torque = np.zeros(6)
        self.substeps = max(1, round(dt / timestep))

    @property
    def q(self) -> np.ndarray:
        return self.data.qpos[self.qadr].copy()

    @property
    def qd(self) -> np.ndarray:
        return self.data.qvel[self.dadr].copy()

    @property
    def torque(self) -> np.ndarray:
        """The servo torque of the last step (N m), within the motors' limits."""
        return self._torque.copy()

    def step(self, q_target: np.ndarray, qd_target: np.ndarray) -> None:
        d = self.data
        for _ in range(self.substeps):
            q, qd = d.qpos[self.qadr], d.qvel[self.dadr]
            self._torque = np.clip(self.kp * (q_target - q) + self.kv * (qd_target - qd), -self.torque_limit,
                                   self.torque_limit)
            # the controller's model-based part: gravity and Coriolis compensated
            d.qfrc_applied[self.dadr] = self._torque + d.qfrc_bias[self.dadr]
            self._mj.mj_step(self.model, d)
