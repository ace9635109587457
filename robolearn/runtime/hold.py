"""The hold: what keeps a robot still, defined once for every env, device and loop in robolearn.

Hold = keep sending the last target that was sent; at the start of an episode (before any), the measured
position. Not a fresh reading of the measured position at every tick: a position servo under gravity
settles a little below its target, so chasing the measurement walks an arm down (tests/devices show it).
For delta actions the hold is the zero delta (plus the last absolute parts, e.g. a gripper command).

Who implements it:
  - every env: ``env.unwrapped.hold_action()`` returns the action that holds (`robolearn.env.check_env_contract`
    checks that stepping it changes nothing);
  - every robot: ``Robot.hold()`` resends its last target (`robolearn.devices.check_device` checks it).
Who calls it: the `ControlLoop` when its source gives no command (a teleop device with nothing pressed,
a policy with nothing scheduled): never a zero action, which on absolute-target tasks means "go to the
centre". The deploy runtime's empty-queue hold and its watchdog call `hold_action` too.

Example::

    action = source.act(obs, tick)
    if action is None:
        action = hold_action(env)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

__all__ = ["hold_action"]


def hold_action(env: gym.Env) -> np.ndarray:
    """The action (Da,) float32 that keeps `env`'s robot still now (module docstring)."""
    hold = getattr(env.unwrapped, "hold_action", None)
    if not callable(hold):
        raise TypeError(f"{type(env.unwrapped).__name__} has no hold_action(); every robolearn env defines one "
                        "(the last target sent, the measured position at episode start, or a zero delta) so the "
                        "control loop can hold the robot when no command comes.")
    return np.asarray(hold(), dtype=np.float32)
