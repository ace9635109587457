"""Finding environments across distributions: entry points in the group `robolearn.envs` register
gymnasium ids; the core never imports a simulator itself."""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points

import gymnasium as gym

from robolearn.errors import UserError

_loaded: dict[str, list[str] | Exception] = {}


class EnvNotFoundError(UserError, LookupError):
    """An env id no installed family provides."""


def load_env_plugins() -> dict[str, list[str] | Exception]:
    """Call every `robolearn.envs` entry point once; a family whose package is missing records its error."""
    for ep in entry_points(group="robolearn.envs"):
        if ep.name in _loaded:
            continue
        try:
            _loaded[ep.name] = list(ep.load()())
        except ImportError as e:
            _loaded[ep.name] = e
    return dict(_loaded)


def env_ids() -> list[str]:
    load_env_plugins()
    return sorted(i for i in gym.registry if i.startswith("robolearn/"))


def describe(env_id: str) -> dict:
    spec = gym.registry[env_id]
    return {"id": env_id, "family": env_id.split("/", 1)[1].split("-", 1)[0],
            "max_episode_steps": spec.max_episode_steps, "kwargs": dict(spec.kwargs)}


def make_env(env_id: str, **kwargs) -> gym.Env:
    """gymnasium.make for a robolearn id, with a clear error listing close matches for an unknown id."""
    plugins = load_env_plugins()
    if env_id not in gym.registry:
        ids = env_ids()
        family = env_id.split("/", 1)[-1].split("-", 1)[0]
        broken = {k: v for k, v in plugins.items() if isinstance(v, Exception)}
        if family in broken:
            raise EnvNotFoundError(f"env family {family!r} is not available: {broken[family]}")
        close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EnvNotFoundError(f"unknown env id {env_id!r}{hint} (`robolearn envs` lists all {len(ids)})")
    return gym.make(env_id, **kwargs)
