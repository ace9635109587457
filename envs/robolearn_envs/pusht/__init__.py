"""PushT (Diffusion Policy's 2-D T-pushing task) as the `robolearn/pusht` env.

One id runs `PushTEnv` (env.py), a composition over gym-pusht's simulation. Needs the `pusht` extra
(`pip install robolearn-envs[pusht]`); gym-pusht (pymunk, pygame) is imported only when the env is made,
so importing `robolearn_envs` never requires it.

Example::

    from robolearn.env.registry import make_env
    env = make_env("robolearn/pusht")                                   # pixels: state (2,) + images/front
    env = make_env("robolearn/pusht", obs_type="environment_state_agent_pos")   # state (18,), no image
"""

from __future__ import annotations

import importlib.util

import gymnasium

from robolearn_envs.pusht.env import INSTALL_HINT, make_env

__all__ = ["ENV_ID", "MAX_EPISODE_STEPS", "register"]

ENV_ID = "robolearn/pusht"
MAX_EPISODE_STEPS = 300  # gym-pusht's and Diffusion Policy's horizon


def register() -> list[str]:
    """Register `robolearn/pusht` with gymnasium (idempotent); return its id.

    Raises ImportError naming the extra to install when `gym_pusht` is missing, which
    `robolearn.env.registry` reports for the family.
    """
    if importlib.util.find_spec("gym_pusht") is None:
        raise ImportError(f"the PushT env needs the `gym-pusht` package; install it with `{INSTALL_HINT}`.")
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point=make_env, max_episode_steps=MAX_EPISODE_STEPS)
    return [ENV_ID]
