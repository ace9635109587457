"""`ActionMapper`: how a teleop device's per-tick command becomes an action of the env's space.

A device reports motion as values in [-1, 1] per axis (a stick, a SpaceMouse cap, keys) and optionally a
gripper value in [0, 1] (0 open, 1 closed). The mapper puts them into the env's action (Da,):

- ``mode="delta"``: action[:k] = motion * step (k motion axes), the rest 0; None when the device gives no
  motion and its gripper never changed (the loop then holds the robot);
- ``mode="absolute"``: a target that starts where the robot is (``origin(obs)``: the env's ``hold_action``)
  and moves by motion * step per tick;
- ``gripper_axis`` (default: none): that axis gets the gripper value mapped onto its [low, high] bounds and is
  not a motion axis.

``axes`` picks and signs the device axes per action axis: ``axes=(1, -0, 2)`` puts device axis 1 on action
axis 0, minus device axis 0 on action axis 1, device axis 2 on action axis 2 (use ``-0.0`` or a string "-0"
for a negated axis 0); default: device axis i on action axis i.

``kinematics="ur5e"`` (absolute mode only): the motion moves the arm's tool in Cartesian space instead of its
joints one by one. The first six non-gripper action axes are the UR5e's joint targets (rad); device axes go to
the flange's (x, y, z, rx, ry, rz) in the base frame (``axes`` picks them as above), ``step`` metres and
``rotation_step`` radians per tick at full deflection, and the new flange pose is solved into joint targets
near the current ones (`robolearn_hardware.ur.kinematics.inverse`). A pose the IK cannot reach leaves the
target where it was (counted in ``unreachable``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from robolearn.errors import InvalidValueError

__all__ = ["KINEMATICS", "MODES", "ActionMapper"]

MODES = ("delta", "absolute")
KINEMATICS = ("ur5e",)
CARTESIAN_STEP_M, CARTESIAN_STEP_RAD = 0.004, 0.03


class ActionMapper:
    """Device command -> action (module docstring).

    Args:
        action_space: the env's 1-D Box action space.
        mode: "delta" or "absolute".
        step: action units per tick at full deflection (default: a quarter of the smallest motion axis range
            in delta mode, 2% of it in absolute mode).
        axes: device axis (with sign) per motion action axis, as strings "i" / "-i" or ints.
        gripper_axis: the action axis of the gripper (negative counts from the end), or None.
        origin: ``origin(obs) -> (Da,)`` where an absolute target starts (default: the middle of the bounds).
        kinematics: "ur5e": motion moves the tool in Cartesian space (module docstring); None: the axes.
        rotation_step: with kinematics, radians per tick at full deflection.
    """

    def __init__(self, action_space: gym.spaces.Box, mode: str = "delta", step: float | None = None,
                 axes: Sequence[int | str] | None = None, gripper_axis: int | None = None,
                 origin: Callable[[dict], np.ndarray] | None = None, kinematics: str | None = None,
                 rotation_step: float | None = None) -> None:
        if not (isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1):
            raise InvalidValueError(f"teleop needs a 1-D Box action space, got {action_space}.")
        if mode not in MODES:
            raise InvalidValueError(f"teleop mode={mode!r} is not supported; accepted values: {', '.join(MODES)}.")
        da = action_space.shape[0]
        self.action_space, self.mode, self.origin = action_space, mode, origin
        self.gripper_axis = None if gripper_axis is None else int(gripper_axis) % da
        motion_axes = [i for i in range(da) if i != self.gripper_axis]
        self.kinematics = kinematics
        self.unreachable = 0
        """Ticks whose Cartesian goal the IK could not reach (the target stayed)."""
        if kinematics is not None:
            if kinematics not in KINEMATICS:
                raise InvalidValueError(f"teleop kinematics={kinematics!r} is not known; accepted values: "
                                        f"{', '.join(KINEMATICS)}.")
            if mode != "absolute" or len(motion_axes) < 6:
                raise InvalidValueError(f"teleop kinematics={kinematics!r} needs mode='absolute' and six joint axes "
                                        f"besides the gripper; got mode={mode!r} and {action_space}.")
            self.arm = motion_axes[:6]
            motion_axes = list(range(6))  # the flange's x, y, z, rx, ry, rz
        specs = [str(a) for a in (axes if axes is not None else range(len(motion_axes)))]
        if len(specs) > len(motion_axes):
            raise InvalidValueError(f"teleop axes={list(axes)!r} name {len(specs)} motion axes; the action space "
                                    f"{action_space} has {len(motion_axes)} besides the gripper.")
        self.targets = motion_axes[:len(specs)]
        self.sources = [int(s.lstrip("+-")) for s in specs]
        self.signs = np.array([-1.0 if s.startswith("-") else 1.0 for s in specs])
        if kinematics is not None:
            self.step = float(step) if step is not None else CARTESIAN_STEP_M
            self.rotation_step = float(rotation_step) if rotation_step is not None else CARTESIAN_STEP_RAD
            self.reset()
            return
        span = (action_space.high - action_space.low)[self.targets].astype(np.float64)
        if not np.all(np.isfinite(span)):
            raise InvalidValueError(f"teleop needs finite action bounds on the motion axes, got {action_space}.")
        self.step = float(step) if step is not None else float(span.min()) * (0.02 if mode == "absolute" else 0.25)
        self.reset()

    def reset(self) -> None:
        self._target: np.ndarray | None = None
        self._gripper: float | None = None

    def __call__(self, obs: dict, motion: np.ndarray | None, gripper: float | None = None) -> np.ndarray | None:
        """The action for one tick: `motion` (device axes, each in [-1, 1] for a stick; a key pressed twice
        since the last tick gives 2), or None: no motion; `gripper` in [0, 1] or None (unchanged)."""
        low, high = self.action_space.low, self.action_space.high
        if gripper is not None:
            self._gripper = float(np.clip(gripper, 0.0, 1.0))
        moved = motion is not None and np.any(np.asarray(motion) != 0)
        if self.mode == "delta":
            if not moved and self._gripper is None:
                return None
            action = np.zeros(self.action_space.shape, np.float64)
        else:
            if self._target is None:
                self._target = (np.asarray(self.origin(obs), np.float64).copy() if self.origin is not None
                                else (low.astype(np.float64) + high) / 2)
            action = self._target
        if moved and self.kinematics is not None:
            action = action.copy()
            action[self.arm] = self._cartesian(action[self.arm], np.asarray(motion, np.float64))
        elif moved:
            m = np.asarray(motion, np.float64)
            action[self.targets] += self.signs * m[self.sources] * self.step
        if self.gripper_axis is not None and self._gripper is not None:
            g = self.gripper_axis
            action[g] = low[g] + self._gripper * (high[g] - low[g])
        action = np.clip(action, low, high)
        if self.mode == "absolute":
            self._target = action
        return action.astype(np.float32)

    def _cartesian(self, q: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """Joint targets moving the flange by `motion` (device axes) from where targets `q` put it."""
        from robolearn_hardware.ur.kinematics import UR5E, IKError, forward_matrix, inverse, matrix_to_rotvec, \
            rotvec_to_matrix

        d = np.zeros(6)
        d[self.targets] = self.signs * motion[self.sources]
        d[:3] *= self.step
        d[3:] *= self.rotation_step
        t = forward_matrix(UR5E, q)
        goal = np.concatenate([t[:3, 3] + d[:3], matrix_to_rotvec(rotvec_to_matrix(d[3:]) @ t[:3, :3])])
        try:
            return inverse(UR5E, goal, seed=q)
        except IKError:
            self.unreachable += 1
            return q
