"""`TwinIK`: joint targets that put an arm's tool at a position and pitch, by damped least squares on its
MuJoCo twin.

A 5-DoF arm (SO-101, Koch: pan, lift, elbow, wrist flex, wrist roll) cannot reach every orientation; what a
person steering the tool needs is where it is and how steeply it points. The IK solves position (3) + pitch
(1) over the joints that change them (pan, lift, elbow, flex); the wrist roll is left to the caller (the
phone's roll drives it directly). Pitch is the tool axis' angle below the horizontal (positive: pointing
down). The Jacobian is taken by finite differences of ``mj_kinematics``, so any MJCF works.

Example::

    ik = TwinIK.for_twin("so101")                     # the SO-101 twin's model, site gripperframe
    pos, pitch = ik.fk(q)                             # q: (n,) radians of ik.joints
    q, err = ik.solve(q, pos + [0.03, 0, 0], pitch)   # err: (position m, pitch rad) left
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robolearn.errors import InvalidValueError

__all__ = ["TwinIK", "URToolIK"]

AXES = {"x": 0, "y": 1, "z": 2}


class TwinIK:
    """Position + pitch IK on a MuJoCo model (module docstring).

    Args:
        model: a compiled ``mujoco.MjModel``.
        site: the tool site.
        joints: the joints the IK moves (hinge or slide; their qpos order is the solution's).
        tool_axis: the site's axis along the tool ("x", "y" or "z").
        pitch_weight: metres of position error one radian of pitch error counts as.
        damping: damped-least-squares lambda.
    """

    def __init__(self, model, site: str, joints: Sequence[str], tool_axis: str = "x", pitch_weight: float = 0.1,
                 damping: float = 1e-3, max_iterations: int = 200) -> None:
        import mujoco

        self.mujoco, self.model = mujoco, model
        self.data = mujoco.MjData(model)
        try:
            self.site = model.site(site).id
            ids = [model.joint(j).id for j in joints]
        except KeyError as e:
            raise InvalidValueError(f"TwinIK: the model has no {e}; sites: "
                                    f"{[model.site(i).name for i in range(model.nsite)]}, joints: "
                                    f"{[model.joint(i).name for i in range(model.njnt)]}.") from None
        if tool_axis not in AXES:
            raise InvalidValueError(f"TwinIK: tool_axis={tool_axis!r}; accepted values: x, y, z.")
        self.joints = tuple(joints)
        self.qadr = np.array([model.jnt_qposadr[i] for i in ids])
        self.limited = np.array([bool(model.jnt_limited[i]) for i in ids])
        self.range = np.array([model.jnt_range[i] for i in ids])
        self.axis = AXES[tool_axis]
        self.w, self.damping, self.max_iterations = float(pitch_weight), float(damping), int(max_iterations)
        self.qpos0 = model.qpos0.copy()

    @classmethod
    def for_twin(cls, name: str = "so101", site: str | None = None, **kwargs) -> TwinIK:
        """The IK of a robolearn arm twin (`robolearn_hardware.twins`) over its arm joints but the wrist roll;
        `site`: the tool site (default: the SO-101's ``gripperframe``)."""
        from robolearn_hardware.twins.specs import TWINS

        if name not in TWINS:
            raise InvalidValueError(f"TwinIK: no twin {name!r}; accepted values: {', '.join(TWINS)}.")
        twin = TWINS[name]
        model = twin.build(False).compile()
        site = site or "gripperframe"
        arm = [j for j in twin.joints if j != twin.gripper and "roll" not in j]
        return cls(model, site, arm, **kwargs)

    def _set(self, q: np.ndarray) -> None:
        self.data.qpos[:] = self.qpos0
        self.data.qpos[self.qadr] = q
        self.mujoco.mj_kinematics(self.model, self.data)

    def fk(self, q: Sequence[float]) -> tuple[np.ndarray, float]:
        """Tool position (3,) in the model's world frame and its pitch (rad) at joint angles `q`."""
        self._set(np.asarray(q, np.float64))
        a = self.data.site_xmat[self.site].reshape(3, 3)[:, self.axis]
        return self.data.site_xpos[self.site].copy(), float(np.arctan2(-a[2], np.hypot(a[0], a[1])))

    def _residual(self, q, pos, pitch) -> np.ndarray:
        p, th = self.fk(q)
        r = pos - p
        if pitch is None:
            return r
        return np.append(r, self.w * ((pitch - th + np.pi) % (2 * np.pi) - np.pi))

    def clip(self, q: np.ndarray) -> np.ndarray:
        return np.where(self.limited, np.clip(q, self.range[:, 0], self.range[:, 1]), q)

    def solve(self, q0: Sequence[float], pos: Sequence[float], pitch: float | None = None,
              tol: float = 1e-5) -> tuple[np.ndarray, tuple[float, float]]:
        """Joint angles near `q0` putting the tool at `pos` (and `pitch`, when given), inside the joint limits;
        and the error left: (position in m, pitch in rad). An unreachable target gives the closest found."""
        q = self.clip(np.asarray(q0, np.float64).copy())
        pos = np.asarray(pos, np.float64)
        eps = 1e-6
        for _ in range(self.max_iterations):
            r = self._residual(q, pos, pitch)
            if np.linalg.norm(r) < tol:
                break
            jac = np.empty((len(r), len(q)))
            for j in range(len(q)):
                dq = q.copy()
                dq[j] += eps
                jac[:, j] = (r - self._residual(dq, pos, pitch)) / eps   # d(fk)/dq = -d(residual)/dq
            step = jac.T @ np.linalg.solve(jac @ jac.T + self.damping ** 2 * np.eye(len(r)), r)
            step *= min(1.0, 0.3 / (np.abs(step).max() + 1e-12))        # at most 0.3 rad per iteration
            q = self.clip(q + step)
        p, th = self.fk(q)
        return q, (float(np.linalg.norm(pos - p)), 0.0 if pitch is None else float(abs(pitch - th)))


class URToolIK(TwinIK):
    """`TwinIK`'s position + pitch IK for a UR e-Series arm from its DH kinematics (`robolearn_hardware.ur.kinematics`,
    no MuJoCo): the tool is the flange (its z axis points along the tool), solved over the five joints before
    wrist 3, whose turn moves neither (the phone's roll drives it directly)."""

    def __init__(self, pitch_weight: float = 0.1, damping: float = 1e-3, max_iterations: int = 200) -> None:
        from robolearn_hardware.ur.arm import UR5E_JOINT_LIMITS
        from robolearn_hardware.ur.kinematics import UR5E

        self.dh = UR5E
        self.joints = ("shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2")
        self.limited = np.ones(5, bool)
        self.range = np.stack([-UR5E_JOINT_LIMITS[:5], UR5E_JOINT_LIMITS[:5]], axis=1)
        self.axis = AXES["z"]
        self.w, self.damping, self.max_iterations = float(pitch_weight), float(damping), int(max_iterations)

    def fk(self, q: Sequence[float]) -> tuple[np.ndarray, float]:
        from robolearn_hardware.ur.kinematics import forward_matrix

        t = forward_matrix(self.dh, np.append(np.asarray(q, np.float64), 0.0))
        a = t[:3, self.axis]
        return t[:3, 3].copy(), float(np.arctan2(-a[2], np.hypot(a[0], a[1])))
