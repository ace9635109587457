"""Finding environments across distributions: entry points in the group `robolearn.envs` register
gymnasium ids; the core never imports a simulator itself."""

from __future__ import annotations

import difflib
import inspect
import sys
from importlib.metadata import entry_points

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from robolearn.errors import InvalidValueError, UserError

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
    try:
        return gym.make(env_id, **kwargs)
    except TypeError as e:  # an option the env does not take is the user's; any other TypeError is a bug
        bad = [k for k in kwargs if f"unexpected keyword argument '{k}'" in str(e)]
        if not bad:
            raise
        accepted = _accepted_options(env_id, str(e))
        raise InvalidValueError(f"env {env_id!r} takes no option {bad[0]!r}"
                                + (f"; accepted: {', '.join(accepted)}" if accepted else "")) from e


def _accepted_options(env_id: str, message: str) -> list[str]:
    """The keyword options of the env class a "Cls.__init__() got an unexpected keyword" TypeError names,
    looked up beside the id's entry point; [] where that cannot be told."""
    entry = gym.registry[env_id].entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    cls = getattr(sys.modules.get(getattr(creator, "__module__", "")), message.split(".__init__(", 1)[0], None)
    if not inspect.isclass(cls):
        return []
    fixed = set(gym.registry[env_id].kwargs)  # options are the parameters with a default the id leaves free
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.default is not p.empty and p.name not in fixed]
