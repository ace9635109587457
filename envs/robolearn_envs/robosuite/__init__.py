"""robosuite tasks (Panda, OSC_POSE at 20 Hz) as `robolearn/robosuite-<task>` envs.

Four tasks, each run by the one `RobosuiteEnv` (env.py) with its entry in tasks.py: `lift`, `stack`,
`pickplacecan` (robosuite `PickPlaceCan`) and `nutassemblysquare` (`NutAssemblySquare`); each has a
scripted waypoint expert (experts.py). Needs the `robosuite` extra (`pip install robolearn-envs[robosuite]`);
it is imported only when an env is made, so importing `robolearn_envs` never requires it.

Example::

    from robolearn.env.registry import make_env
    env = make_env("robolearn/robosuite-lift", cameras=("agentview", "robot0_eye_in_hand"))
"""

from __future__ import annotations

import importlib.util

import gymnasium

from robolearn_envs.robosuite.env import INSTALL_HINT, make_env
from robolearn_envs.robosuite.tasks import STATE_LAYOUT, TASKS, env_id

__all__ = ["ENVS", "STATE_LAYOUT", "TASKS", "register"]

# id -> task name
ENVS: dict[str, str] = {env_id(task): task for task in TASKS}


def register() -> list[str]:
    """Register the robosuite tasks with gymnasium (idempotent); return their ids.

    Raises ImportError naming the extra to install when `robosuite` is missing, which
    `robolearn.env.registry` reports for the family.
    """
    if importlib.util.find_spec("robosuite") is None:
        raise ImportError(f"the robosuite envs need the `robosuite` package; install it with `{INSTALL_HINT}`.")
    for env_id_, task in ENVS.items():
        if env_id_ not in gymnasium.registry:
            gymnasium.register(env_id_, entry_point=make_env, kwargs={"task": task},
                               max_episode_steps=TASKS[task].max_episode_steps)
    return list(ENVS)
