"""Pure-numpy planar tasks (no simulator): cheap enough for benchmarks that run thousands of episodes.

`robolearn/planar-catch` (catch.py): reach a moving target past a pillar with velocity actions and a
bimodal scripted expert, the task of the deploy benchmark's success-vs-delay grid (benchmarks/deploy.py).

Example::

    import gymnasium, robolearn_envs
    env = gymnasium.make("robolearn/planar-catch")
"""

from __future__ import annotations

import gymnasium

__all__ = ["ENVS", "register"]

# id -> (entry point, default max_episode_steps); catch.py is imported only when the env is made
ENVS = {"robolearn/planar-catch": ("robolearn_envs.planar.catch:PlanarCatchEnv", 80)}


def register() -> list[str]:
    """Register the planar tasks with gymnasium (idempotent); return their ids."""
    for env_id, (entry_point, max_episode_steps) in ENVS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=entry_point, max_episode_steps=max_episode_steps)
    return list(ENVS)
