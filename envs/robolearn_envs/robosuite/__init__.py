"""robosuite tasks (Panda, OSC_POSE at 20 Hz) as `robolearn/robosuite-<task>` envs.

Four tasks, each run by the one `RobosuiteEnv` (env.py) with its entry in tasks.py: `lift`, `stack`,
`pickplacecan` (robosuite `PickPlaceCan`) and `nutassemblysquare` (`NutAssemblySquare`); each has a
scripted waypoint expert (experts.py). Needs the `robosuite` extra (`pip install robolearn-envs[robosuite]`).
The ids are registered with a string entry point, so robosuite (and env.py) is imported only when an env
is made: importing `robolearn_envs` never requires it.

Example::

    import gymnasium, robolearn_envs
    env = gymnasium.make("robolearn/robosuite-lift", cameras=("agentview", "robot0_eye_in_hand"))
"""

from __future__ import annotations

import importlib.util

import gymnasium

from robolearn.errors import MissingExtraError
from robolearn_envs.robosuite.tasks import STATE_LAYOUT, TASKS, env_id

__all__ = ["ENTRY_POINT", "ENVS", "INSTALL_HINT", "STATE_LAYOUT", "TASKS", "register"]

INSTALL_HINT = "pip install robolearn-envs[robosuite]"
ENTRY_POINT = "robolearn_envs.robosuite.env:make_env"  # imported by gymnasium.make, not here

# id -> task name
ENVS: dict[str, str] = {env_id(task): task for task in TASKS}


def register() -> list[str]:
    """Register the robosuite tasks with gymnasium (idempotent); return their ids.

    Raises ImportError (MissingExtraError) naming the extra to install when `robosuite` is missing, which
    `robolearn_envs.UNAVAILABLE` and `robolearn.env.registry` report for the family.
    """
    if importlib.util.find_spec("robosuite") is None:
        raise MissingExtraError(f"the robosuite envs need the `robosuite` package; install it with `{INSTALL_HINT}`.")
    for env_id_, task in ENVS.items():
        if env_id_ not in gymnasium.registry:
            gymnasium.register(env_id_, entry_point=ENTRY_POINT, kwargs={"task": task},
                               max_episode_steps=TASKS[task].max_episode_steps)
    return list(ENVS)
