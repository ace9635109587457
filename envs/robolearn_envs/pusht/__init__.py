"""PushT (Diffusion Policy's 2-D T-pushing task) as the `robolearn/pusht` env.

One id runs `PushTEnv` (env.py), a composition over gym-pusht's simulation. Needs the `pusht` extra
(`pip install robolearn-envs[pusht]`). The id is registered with a string entry point, so gym-pusht
(pymunk, pygame) and env.py are imported only when the env is made: importing `robolearn_envs` never
requires them.

Example::

    import gymnasium, robolearn_envs
    env = gymnasium.make("robolearn/pusht")                                 # pixels: state (2,) + images/front
    env = gymnasium.make("robolearn/pusht", obs_type="environment_state_agent_pos")   # state (18,), no image
"""

from __future__ import annotations

import importlib.util

import gymnasium

from robolearn.errors import MissingExtraError

__all__ = ["ENTRY_POINT", "ENV_ID", "INSTALL_HINT", "MAX_EPISODE_STEPS", "register"]

INSTALL_HINT = "pip install robolearn-envs[pusht]"
ENTRY_POINT = "robolearn_envs.pusht.env:make_env"  # imported by gymnasium.make, not here
ENV_ID = "robolearn/pusht"
MAX_EPISODE_STEPS = 300  # gym-pusht's and Diffusion Policy's horizon


def register() -> list[str]:
    """Register `robolearn/pusht` with gymnasium (idempotent); return its id.

    Raises ImportError (MissingExtraError) naming the extra to install when `gym_pusht` is missing, which
    `robolearn_envs.UNAVAILABLE` and `robolearn.env.registry` report for the family.
    """
    if importlib.util.find_spec("gym_pusht") is None:
        raise MissingExtraError(f"the PushT env needs the `gym-pusht` package; install it with `{INSTALL_HINT}`.")
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point=ENTRY_POINT, max_episode_steps=MAX_EPISODE_STEPS)
    return [ENV_ID]
