"""Metaworld v3 tasks (Sawyer arm, 50 manipulation tasks) as `robolearn/metaworld-<task>` envs.

Each id runs the one `MetaworldEnv` (env.py) on one task from tasks.py; `MT10` and `MT50` name
metaworld's multi-task groups. Needs the `metaworld` extra (`pip install robolearn-envs[metaworld]`).
The ids are registered with a string entry point, so metaworld (and env.py) is imported only when an env
is made: importing `robolearn_envs` never requires it.

Example::

    import gymnasium, robolearn_envs
    env = gymnasium.make("robolearn/metaworld-pick-place-v3", cameras=("corner", "gripperPOV"))
"""

from __future__ import annotations

import importlib.util

import gymnasium

from robolearn.errors import MissingExtraError
from robolearn_envs.metaworld.tasks import MT10, MT50, TASKS, env_id, max_episode_steps

__all__ = ["ENVS", "ENTRY_POINT", "INSTALL_HINT", "MT10", "MT50", "TASKS", "register"]

INSTALL_HINT = "pip install robolearn-envs[metaworld]"
ENTRY_POINT = "robolearn_envs.metaworld.env:make_env"  # imported by gymnasium.make, not here

# id -> metaworld task name
ENVS: dict[str, str] = {env_id(task): task for task in TASKS}


def register() -> list[str]:
    """Register the 50 Metaworld tasks with gymnasium (idempotent); return their ids.

    Raises ImportError (MissingExtraError) naming the extra to install when `metaworld` is missing, which
    `robolearn_envs.UNAVAILABLE` and `robolearn.env.registry` report for the family.
    """
    if importlib.util.find_spec("metaworld") is None:
        raise MissingExtraError(f"the Metaworld envs need the `metaworld` package; install it with `{INSTALL_HINT}`.")
    for env_id_, task in ENVS.items():
        if env_id_ not in gymnasium.registry:
            gymnasium.register(env_id_, entry_point=ENTRY_POINT, kwargs={"task": task},
                               max_episode_steps=max_episode_steps(task))
    return list(ENVS)
