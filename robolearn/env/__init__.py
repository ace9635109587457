"""Env helpers: the registry (families found through `robolearn.envs` entry points) and conformance
checks: `check_env_contract` (every env, hardware included) and `check_env_simulation` (seeded
determinism, success, clipping, the scripted expert); `check_env_conformance` runs both.

>>> from robolearn.env import make_env  # doctest: +SKIP
>>> env = make_env("robolearn/mujoco-push", image_size=(64, 64))  # doctest: +SKIP
"""

from robolearn.env.checks import (
    ConformanceError,
    check_env_conformance,
    check_env_contract,
    check_env_simulation,
    check_observation,
    check_upright,
)
from robolearn.env.registry import EnvNotFoundError, env_ids, load_env_plugins, make_env

__all__ = ["ConformanceError", "EnvNotFoundError", "check_env_conformance", "check_env_contract", "check_env_simulation",
           "check_observation", "check_upright",
           "env_ids", "load_env_plugins", "make_env"]
