"""Conformance checks every robolearn env passes: gymnasium's `check_env` plus our feature-key rules.

A new env gets its whole contract test from one call::

    import gymnasium, robolearn_envs
    from robolearn.env import check_env_conformance

    def test_conformance():
        env = gymnasium.make("robolearn/mujoco-push")
        check_env_conformance(env)
        env.close()

Our rules, on top of gymnasium's:
  - the observation space is a `gymnasium.spaces.Dict` whose keys are `state` (float32, 1-D; required),
    `images/<camera>` (uint8 (H, W, 3) in [0, 255]), `depth/<camera>` (float32 (H, W) or (H, W, 1)),
    `tactile/<sensor>` (float32 of any shape, or a uint8 (H, W, 3) tactile image) and `force`
    (float32 (6,) wrench);
  - the action space is a float32 1-D Box with finite bounds;
  - observations match the space exactly (keys, dtype, shape, bounds), from reset and from step;
  - `reset(seed=s)` twice gives identical observations, and the same actions after it give the same
    observations step by step;
  - `info` from reset and step holds a bool `success`;
  - `render()` returns an (H, W, 3) uint8 frame;
  - the unwrapped env exposes `control_hz` (float > 0, equal to `metadata["render_fps"]`),
    `task_description` (non-empty str) and `get_expert()` (an object with `reset()` and
    `act(obs) -> (Da,) float32` inside the action space);
  - frames are upright when the env can prove it: see `check_upright`.
Every failure raises `ConformanceError` (an AssertionError) with one sentence naming the key and what was
expected.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.spaces import ACTION, OBSERVATION_FAMILIES, STATE, Spec, SpecError, check_key, describe_keys

__all__ = ["ConformanceError", "check_env_conformance", "check_observation", "check_upright"]

_ACCEPTED_KEYS = describe_keys(OBSERVATION_FAMILIES)


# gymnasium warnings that say nothing about the env itself.
# Warnings that do not break the contract: a spec-less env, and an action space in env units (PushT pixels).
_BENIGN = ("not having a spec", "symmetric and normalized space")


class ConformanceError(AssertionError):
    """An env breaks the robolearn env contract; the message names the key and what was expected."""


def _fail(message: str) -> None:
    raise ConformanceError(message)


def check_env_conformance(env: gym.Env, seed: int = 0, strict: bool = True, expert_steps: int = 3) -> None:
    """Run gymnasium's `check_env` on `env.unwrapped` and every robolearn rule (module docstring).

    Args:
        env: the env, wrapped or not (e.g. straight from `gymnasium.make`); it is reset and stepped.
        seed: seed for the determinism and step checks.
        strict: treat gymnasium's checker warnings as failures.
        expert_steps: how many steps to drive with `get_expert()` (0 skips stepping with the expert).
    """
    unwrapped = env.unwrapped
    _check_spaces(unwrapped)
    _check_attributes(unwrapped)

    obs_a, info = env.reset(seed=seed)
    check_observation(unwrapped.observation_space, obs_a, f"reset(seed={seed})")
    _check_info(info, f"reset(seed={seed})")
    obs_b, _ = env.reset(seed=seed)
    for key in unwrapped.observation_space.spaces:
        if not np.array_equal(obs_a[key], obs_b[key]):
            _fail(f"observation {key!r} differs between two reset(seed={seed}) calls; expected identical "
                  "observations (seed every random draw from self.np_random).")

    expert = unwrapped.get_expert()
    if not (callable(getattr(expert, "reset", None)) and callable(getattr(expert, "act", None))):
        _fail(f"get_expert() returned {type(expert).__name__}; expected an object with reset() and act(obs).")
    expert.reset()
    obs = obs_b
    for i in range(max(expert_steps, 1)):
        if expert_steps > 0:
            action = expert.act(obs)
            if not isinstance(action, np.ndarray) or action.dtype != np.float32:
                _fail(f"get_expert().act(obs) returned {type(action).__name__} "
                      f"{getattr(action, 'dtype', '')}; expected a float32 np.ndarray.")
            if action not in unwrapped.action_space:
                _fail(f"get_expert().act(obs) returned {action!r}; expected a value inside {unwrapped.action_space}.")
        else:
            action = unwrapped.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        where = f"step {i}"
        check_observation(unwrapped.observation_space, obs, where)
        _check_info(info, where)
        if not isinstance(reward, (float, int, np.floating, np.integer)) or isinstance(reward, bool):
            _fail(f"reward from {where} is {type(reward).__name__}; expected a float.")
        for name, flag in (("terminated", terminated), ("truncated", truncated)):
            if not isinstance(flag, (bool, np.bool_)):
                _fail(f"{name} from {where} is {type(flag).__name__}; expected a bool.")
        if terminated or truncated:
            break

    _check_seeded_rollouts_repeat(env, seed)

    if unwrapped.render_mode != "rgb_array":
        _fail(f"render_mode is {unwrapped.render_mode!r}; expected 'rgb_array' so render() returns frames.")
    frame = env.render()
    if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
        _fail(f"render() returned {_describe(frame)}; expected an (H, W, 3) uint8 frame.")

    if hasattr(unwrapped, "upright_probe"):
        check_upright(env)
    # Last: our checks above name the key; gymnasium's then catch whatever API detail is left.
    _check_gymnasium(unwrapped, strict)


def _check_seeded_rollouts_repeat(env: gym.Env, seed: int, steps: int = 5) -> None:
    """Twice: reset(seed) then the same actions; every observation must repeat exactly."""
    space = gym.spaces.Box(env.action_space.low, env.action_space.high, dtype=env.action_space.dtype, seed=seed)
    actions = [space.sample() for _ in range(steps)]
    runs = []
    for _ in range(2):
        env.reset(seed=seed)
        run = []
        for action in actions:
            obs, _, terminated, truncated, _ = env.step(action)
            run.append(obs)
            if terminated or truncated:
                break
        runs.append(run)
    if len(runs[0]) != len(runs[1]):
        _fail(f"the same actions after reset(seed={seed}) ended after {len(runs[0])} and {len(runs[1])} steps; "
              "expected identical rollouts (seed every random draw from self.np_random).")
    for i, (a, b) in enumerate(zip(*runs)):
        for key in a:
            if not np.array_equal(a[key], b[key]):
                _fail(f"observation {key!r} at step {i} differs between two rollouts of the same actions after "
                      f"reset(seed={seed}); expected identical rollouts (seed every random draw from self.np_random).")


def check_observation(space: gym.spaces.Dict, obs: Any, where: str = "observation") -> None:
    """Check that `obs` matches the Dict `space` exactly: same keys, dtype, shape and within bounds."""
    if not isinstance(obs, dict):
        _fail(f"{where} returned a {type(obs).__name__} observation; expected a dict with keys {list(space.spaces)}.")
    if set(obs) != set(space.spaces):
        _fail(f"{where} observation keys {sorted(obs)} do not match the observation space keys "
              f"{sorted(space.spaces)}.")
    for key, sub in space.spaces.items():
        value = obs[key]
        if not isinstance(value, np.ndarray):
            _fail(f"observation {key!r} from {where} is a {type(value).__name__}; expected an np.ndarray.")
        if value.dtype != sub.dtype:
            _fail(f"observation {key!r} from {where} has dtype {value.dtype}; expected {sub.dtype}.")
        if value.shape != sub.shape:
            _fail(f"observation {key!r} from {where} has shape {value.shape}; expected {sub.shape}.")
        if value not in sub:
            _fail(f"observation {key!r} from {where} is outside its space {sub} (NaN or out of bounds).")


def check_upright(env: gym.Env, camera: str | None = None) -> None:
    """Check that frames are upright and not mirrored, from the env's `upright_probe(camera)`.

    The env renders three frames of one camera: plain, with a marker placed along world up from the
    point the camera looks at, and with a marker placed to the world's right of the view direction.
    The marker pixels (where a frame differs from the plain one) must lie in the top half and in the
    right half respectively. MuJoCo envs get this from `robolearn_envs.mujoco.base.Sim.upright_probe`.
    """
    unwrapped = env.unwrapped
    probe = getattr(unwrapped, "upright_probe", None)
    if probe is None:
        _fail(f"{type(unwrapped).__name__} has no upright_probe(camera); expected one returning "
              "(plain, marker_up, marker_right) frames so upright rendering can be checked.")
    plain, up, right = probe(camera)
    h, w = plain.shape[:2]
    for name, frame, axis, expect in (("up", up, 0, "top"), ("right", right, 1, "right")):
        mask = np.abs(frame.astype(np.int16) - plain.astype(np.int16)).max(axis=-1) > 30
        if not mask.any():
            _fail(f"the world-{name} marker of upright_probe({camera!r}) is not visible; expected it in the {expect} half.")
        centre = np.argwhere(mask)[:, axis].mean()
        half = ((h if axis == 0 else w) - 1) / 2
        if (centre >= half) if expect == "top" else (centre <= half):
            _fail(f"frames of camera {camera or 'default'!r} are not upright: the world-{name} marker is at "
                  f"{'row' if axis == 0 else 'column'} {centre:.0f} of {h if axis == 0 else w}; "
                  f"expected it in the {expect} half.")


# ---- helpers ---------------------------------------------------------------------------------------


def _check_gymnasium(unwrapped: gym.Env, strict: bool) -> None:
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(unwrapped, skip_render_check=False)
    complaints = [str(w.message) for w in caught
                  if "WARN" in str(w.message) and not any(benign in str(w.message) for benign in _BENIGN)]
    if strict and complaints:
        _fail(f"gymnasium's check_env warned: {complaints[0].strip()}")


def _check_spaces(unwrapped: gym.Env) -> None:
    space = unwrapped.observation_space
    if not isinstance(space, gym.spaces.Dict):
        _fail(f"observation_space is {type(space).__name__}; expected a gymnasium.spaces.Dict keyed by "
              f"{_ACCEPTED_KEYS}.")
    if STATE not in space.spaces:
        _fail(f"observation_space has no 'state' key (keys: {list(space.spaces)}); expected a float32 1-D 'state'.")
    # Each key's rule is its family's in robolearn.spaces (FAMILY_RULES).
    for key, sub in space.spaces.items():
        try:
            check_key(key, OBSERVATION_FAMILIES)
        except SpecError:
            _fail(f"observation key {key!r} is not a robolearn feature key; expected one of {_ACCEPTED_KEYS}.")
        try:
            Spec.from_space(sub, key)
        except SpecError as e:
            _fail(f"observation {e}")
    try:
        Spec.from_space(unwrapped.action_space, ACTION)
    except SpecError as e:
        _fail(f"action_space {unwrapped.action_space} breaks the rule of 'action': {e}")


def _check_attributes(unwrapped: gym.Env) -> None:
    hz = getattr(unwrapped, "control_hz", None)
    if not (isinstance(hz, float) and hz > 0):
        _fail(f"env.unwrapped.control_hz is {hz!r}; expected a positive float (control steps per second).")
    fps = unwrapped.metadata.get("render_fps")
    if fps != hz:
        _fail(f"metadata['render_fps'] is {fps!r}; expected control_hz ({hz}) so recorded videos play in real time.")
    text = getattr(unwrapped, "task_description", None)
    if not (isinstance(text, str) and text.strip()):
        _fail(f"env.unwrapped.task_description is {text!r}; expected a non-empty language instruction (str).")
    if not callable(getattr(unwrapped, "get_expert", None)):
        _fail("env.unwrapped has no get_expert(); expected one returning a scripted expert with reset() and act(obs).")


def _check_info(info: Any, where: str) -> None:
    if not isinstance(info, dict):
        _fail(f"info from {where} is a {type(info).__name__}; expected a dict.")
    if "success" not in info:
        _fail(f"info from {where} has no 'success' key (keys: {sorted(info)}); expected a bool.")
    if not isinstance(info["success"], (bool, np.bool_)):
        _fail(f"info['success'] from {where} is {type(info['success']).__name__}; expected a bool.")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"
