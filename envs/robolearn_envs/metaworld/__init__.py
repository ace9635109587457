"""Metaworld v3 tasks (Sawyer arm, 50 manipulation tasks) as `robolearn/metaworld-<task>` envs.

Each id runs the one `MetaworldEnv` (env.py) on one task from tasks.py; `MT10` and `MT50` name
metaworld's multi-task groups. Needs the `metaworld` extra (`pip install robolearn-envs[metaworld]`);
it is imported only when an env is made, so importing `robolearn_envs` never requires it.

Example::

    from robolearn.env.registry import make_env
    env = make_env("robolearn/metaworld-pick-place-v3", cameras=("corner", "gripperPOV"))
"""

from __future__ import annotations

import importlib.util

import gymnasium

from robolearn_envs.metaworld.env import INSTALL_HINT, make_env
from robolearn_envs.metaworld.tasks import MT10, MT50, TASKS, env_id, max_episode_steps

__all__ = ["ENVS", "MT10", "MT50", "TASKS", "register"]

# id -> metaworld task name
ENVS: dict[str, str] = {env_id(task): task for task in TASKS}


def register() -> list[str]:
    """Register the 50 Metaworld tasks with gymnasium (idempotent); return their ids.

    Raises ImportError naming the extra to install when `metaworld` is missing, which
    `robolearn.env.registry` reports for the family.
    """
    if importlib.util.find_spec("metaworld") is None:
        raise ImportError(f"the Metaworld envs need the `metaworld` package; install it with `{INSTALL_HINT}`.")
    for env_id_, task in ENVS.items():
        if env_id_ not in gymnasium.registry:
            gymnasium.register(env_id_, entry_point=make_env, kwargs={"task": task},
                               max_episode_steps=max_episode_steps(task))
    return list(ENVS)
