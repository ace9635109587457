"""Simulated environments for robolearn behind gymnasium.Env: native MuJoCo tasks, Metaworld, robosuite, PushT.

`import robolearn_envs` registers with gymnasium every `robolearn/...` id whose simulator is installed: the
same ids `robolearn envs` lists. Metaworld, robosuite and PushT ids carry string entry points, so their
simulator (metaworld, robosuite, gym-pusht with pygame and pymunk) is imported only when one of their envs is
made. A family whose package is missing registers nothing; `UNAVAILABLE` holds the error naming the extra to
install, which `robolearn.env.make_env` raises for that family's ids.

Example::

    import gymnasium as gym
    import robolearn_envs  # noqa: F401  (registers the ids)

    env = gym.make("robolearn/metaworld-reach-v3")
    env = gym.make("robolearn_envs:robolearn/metaworld-reach-v3")  # gymnasium imports robolearn_envs first
    envs = gym.make_vec("robolearn/mujoco-reach", num_envs=2, vectorization_mode="sync")

Async vector envs fork their workers by default; a fork after this process has rendered (an EGL context)
hangs them, so pass `vector_kwargs={"context": "spawn"}` there.
"""

from robolearn_envs import metaworld, mujoco, planar, pusht, robosuite

__all__ = ["FAMILIES", "REGISTERED", "UNAVAILABLE", "register_all"]

# family -> its register(); the same functions are the `robolearn.envs` entry points (envs/pyproject.toml)
FAMILIES = {
    "mujoco": mujoco.register,
    "metaworld": metaworld.register,
    "robosuite": robosuite.register,
    "pusht": pusht.register,
    "planar": planar.register,
}


def register_all() -> tuple[dict[str, list[str]], dict[str, ImportError]]:
    """Register every family (idempotent): (family -> its ids, family -> why it is unavailable)."""
    registered, unavailable = {}, {}
    for family, register in FAMILIES.items():
        try:
            registered[family] = register()
        except ImportError as e:
            unavailable[family] = e
    return registered, unavailable


REGISTERED, UNAVAILABLE = register_all()
