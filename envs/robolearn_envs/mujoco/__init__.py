"""Native MuJoCo manipulation tasks with their own MJCF and scripted experts.

Each task is a `Task` (push.py, reach.py, pick_place.py, wipe.py) run by the one `MujocoEnv` (env.py) on a
`Sim` (base.py).

Example::

    import gymnasium, robolearn_envs
    env = gymnasium.make("robolearn/mujoco-push", image_size=(96, 96), cameras=("front", "top"))
"""

from __future__ import annotations

import gymnasium

from robolearn_envs.mujoco import pick_place, push, reach, wipe

# id -> (entry point, default max_episode_steps)
ENVS = {
    "robolearn/mujoco-push": (push.make_env, push.MAX_EPISODE_STEPS),
    "robolearn/mujoco-reach": (reach.make_env, reach.MAX_EPISODE_STEPS),
    "robolearn/mujoco-pick-place": (pick_place.make_env, pick_place.MAX_EPISODE_STEPS),
    "robolearn/mujoco-wipe": (wipe.make_env, wipe.MAX_EPISODE_STEPS),
}


def register() -> list[str]:
    """Register the native MuJoCo tasks with gymnasium (idempotent); return their ids."""
    for env_id, (entry_point, max_episode_steps) in ENVS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=entry_point, max_episode_steps=max_episode_steps)
    return list(ENVS)
