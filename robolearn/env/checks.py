"""Conformance checks every robolearn env passes, in two parts: the contract and the simulator's extras.

A new env gets its whole contract test from one call::

    import gymnasium, robolearn_envs
    from robolearn.env import check_env_conformance

    def test_conformance():
        env = gymnasium.make("robolearn/mujoco-push")
        check_env_conformance(env)          # check_env_contract + check_env_simulation
        env.close()

A hardware env (`robolearn.devices.RobotEnv`) runs `check_env_contract(env)` alone: it never needs a seed
to repeat the world or a scripted expert, and it is stepped only with its own hold.

The contract (`check_env_contract`), every env:
  - the observation space is a `gymnasium.spaces.Dict` keyed by the feature vocabulary of
    `robolearn.spaces` (`state` required, `images/<camera>`, `depth/<camera>`, `tactile/<sensor>`,
    `force`), each key following its family's rule; the action space is a float32 (Da,) Box with
    finite bounds;
  - the unwrapped env exposes `control_hz` (float > 0, equal to `metadata["render_fps"]`),
    `task_description` (non-empty str) and `hold_action()`;
  - observations match the space exactly (keys, dtype, shape, bounds), from reset and from step;
  - `info` from reset and step holds `timestamps`: a float capture time (monotonic seconds) for every
    observation key, never going back from one step to the next; `info` from step holds `action`, the
    action really applied (float32 (Da,) inside the action space); `success`, where present, is a bool;
  - the hold holds: stepping `hold_action()` applies exactly it, and afterwards `hold_action()` is
    unchanged (the last target sent, or a zero delta; never a fresh reading of the measured position);
  - `render()` returns an (H, W, 3) uint8 frame; gymnasium's passive checks raise no warning.
The simulator-only part (`check_env_simulation`):
  - `reset(seed=s)` twice gives identical observations, and the same actions after it give the same
    observations step by step; gymnasium's full `check_env` passes;
  - `info` holds a bool `success` at every step (every simulated task defines it);
  - an action outside the bounds is applied clipped (`info["action"]` inside the action space);
  - `get_expert()` returns an object with `reset()` and `act(obs) -> (Da,) float32` inside the action space;
  - frames are upright when the env can prove it: see `check_upright`.
Every failure raises `ConformanceError` (an AssertionError) with one sentence naming the key and what was
expected.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.spaces import ACTION, OBSERVATION_FAMILIES, STATE, Spec, SpecError, check_key, describe_keys

__all__ = ["ConformanceError", "check_env_conformance", "check_env_contract", "check_env_simulation",
           "check_observation", "check_upright"]

_ACCEPTED_KEYS = describe_keys(OBSERVATION_FAMILIES)


# gymnasium warnings that say nothing about the env itself.
# Warnings that do not break the contract: a spec-less env, and an action space in env units (PushT pixels).
_BENIGN = ("not having a spec", "symmetric and normalized space")


class ConformanceError(AssertionError):
    """An env breaks the robolearn env contract; the message names the key and what was expected."""


def _fail(message: str) -> None:
    raise ConformanceError(message)


def check_env_conformance(env: gym.Env, seed: int = 0, strict: bool = True, expert_steps: int = 3) -> None:
    """Both parts: `check_env_contract` then `check_env_simulation` (what every simulated env passes).

    Args:
        env: the env, wrapped or not (e.g. straight from `gymnasium.make`); it is reset and stepped.
        seed: seed for the determinism and step checks.
        strict: treat gymnasium's checker warnings as failures.
        expert_steps: how many steps to drive with `get_expert()` (0 steps random actions instead).
    """
    check_env_contract(env, seed=seed, strict=strict)
    check_env_simulation(env, seed=seed, strict=strict, expert_steps=expert_steps)


def check_env_contract(env: gym.Env, seed: int = 0, strict: bool = True, steps: int = 3) -> None:
    """The part of the contract every env passes, simulated or real (module docstring).

    The env is reset once and stepped `steps` times with its own `hold_action()` only, which is safe on
    a robot: nothing here commands a motion.

    Args:
        env: the env, wrapped or not; it is reset and stepped.
        seed: passed to `reset`.
        strict: treat the warnings of gymnasium's passive checker as failures.
        steps: hold steps to take.
    """
    from gymnasium.utils import passive_env_checker as passive

    unwrapped = env.unwrapped
    _check_spaces(unwrapped)
    _check_attributes(unwrapped)
    space = unwrapped.observation_space
    with _gymnasium_warnings(strict, "gymnasium's passive checker"):
        passive.check_observation_space(space)
        passive.check_action_space(unwrapped.action_space)
        obs, info = passive.env_reset_passive_checker(env, seed=seed)
        where = f"reset(seed={seed})"
        check_observation(space, obs, where)
        stamps = _check_info(info, where, space)
        hold = _check_hold_action(unwrapped, where)
        for i in range(steps):
            obs, reward, terminated, truncated, info = passive.env_step_passive_checker(env, hold)
            where = f"step {i} (holding)"
            check_observation(space, obs, where)
            stamps = _check_info(info, where, space, unwrapped.action_space, stamps)
            _check_step_types(reward, terminated, truncated, where)
            if not np.allclose(info["action"], hold, rtol=0.0, atol=1e-6):
                _fail(f"info['action'] from {where} is {np.asarray(info['action']).tolist()} after stepping "
                      f"hold_action() {hold.tolist()}; expected the hold itself to be applied.")
            after = _check_hold_action(unwrapped, where)
            if not np.allclose(after, hold, rtol=0.0, atol=1e-6):
                _fail(f"hold_action() changed from {hold.tolist()} to {after.tolist()} by stepping it ({where}); "
                      "expected it to stay: the hold is the last target sent (or a zero delta), never a fresh "
                      "reading of the measured position.")
            if terminated or truncated:
                break
        if unwrapped.render_mode != "rgb_array":
            _fail(f"render_mode is {unwrapped.render_mode!r}; expected 'rgb_array' so render() returns frames.")
        frame = passive.env_render_passive_checker(env)
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3
                and frame.shape[2] == 3):
            _fail(f"render() returned {_describe(frame)}; expected an (H, W, 3) uint8 frame.")


def check_env_simulation(env: gym.Env, seed: int = 0, strict: bool = True, expert_steps: int = 3) -> None:
    """The simulator-only part (module docstring): seeded determinism, success, clipping, the scripted expert.

    Args: as `check_env_conformance`.
    """
    unwrapped = env.unwrapped
    space = unwrapped.observation_space
    if not callable(getattr(unwrapped, "get_expert", None)):
        _fail("env.unwrapped has no get_expert(); expected one returning a scripted expert with reset() and act(obs).")

    obs_a, info = env.reset(seed=seed)
    _check_success(info, f"reset(seed={seed})")
    obs_b, _ = env.reset(seed=seed)
    for key in space.spaces:
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
        check_observation(space, obs, where)
        _check_success(info, where)
        _check_step_types(reward, terminated, truncated, where)
        if terminated or truncated:
            break

    _check_seeded_rollouts_repeat(env, seed)
    _check_out_of_bounds_action_is_clipped(env, seed)
    if hasattr(unwrapped, "upright_probe"):
        check_upright(env)
    # Last: our checks above name the key; gymnasium's then catch whatever API detail is left.
    with _gymnasium_warnings(strict, "gymnasium's check_env"):
        from gymnasium.utils.env_checker import check_env

        check_env(unwrapped, skip_render_check=False)


def _check_out_of_bounds_action_is_clipped(env: gym.Env, seed: int) -> None:
    """One step beyond the bounds: the applied action reported in info must lie inside the action space."""
    space = env.unwrapped.action_space
    env.reset(seed=seed)
    beyond = (space.high + (space.high - space.low)).astype(np.float32)
    info = env.step(beyond)[4]
    applied = np.asarray(info.get("action"))
    if applied.shape != space.shape or applied not in space:
        _fail(f"info['action'] after stepping {beyond.tolist()} (beyond the bounds) is {applied.tolist()}; expected "
              f"the action really applied, clipped inside {space}.")


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


@contextlib.contextmanager
def _gymnasium_warnings(strict: bool, who: str) -> Iterator[None]:
    """Collect gymnasium's warnings over the block; with `strict`, the first one that matters fails."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    complaints = [str(w.message) for w in caught
                  if "WARN" in str(w.message) and not any(benign in str(w.message) for benign in _BENIGN)]
    if strict and complaints:
        _fail(f"{who} warned: {complaints[0].strip()}")


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
    if not callable(getattr(unwrapped, "hold_action", None)):
        _fail("env.unwrapped has no hold_action(); expected one returning the action that keeps the robot still "
              "(the last target sent, the measured position at episode start, or a zero delta).")


def _check_hold_action(unwrapped: gym.Env, where: str) -> np.ndarray:
    hold = unwrapped.hold_action()
    space = unwrapped.action_space
    if not (isinstance(hold, np.ndarray) and hold.dtype == np.float32 and hold.shape == space.shape):
        _fail(f"hold_action() after {where} returned {_describe(hold)}; expected a float32 array of shape {space.shape}.")
    if hold not in space:
        _fail(f"hold_action() after {where} returned {hold.tolist()}; expected a value inside {space}.")
    return hold.copy()


def _check_step_types(reward: Any, terminated: Any, truncated: Any, where: str) -> None:
    if not isinstance(reward, (float, int, np.floating, np.integer)) or isinstance(reward, bool):
        _fail(f"reward from {where} is {type(reward).__name__}; expected a float.")
    for name, flag in (("terminated", terminated), ("truncated", truncated)):
        if not isinstance(flag, (bool, np.bool_)):
            _fail(f"{name} from {where} is {type(flag).__name__}; expected a bool.")


def _check_info(info: Any, where: str, space: gym.spaces.Dict, action_space: gym.spaces.Box | None = None,
                previous: dict[str, float] | None = None) -> dict[str, float]:
    """The contract's info keys (module docstring), `action` only when `action_space` is given (step info);
    returns the capture times for the next step's check."""
    if not isinstance(info, dict):
        _fail(f"info from {where} is a {type(info).__name__}; expected a dict.")
    if "success" in info and not isinstance(info["success"], (bool, np.bool_)):
        _fail(f"info['success'] from {where} is {type(info['success']).__name__}; expected a bool.")
    stamps = info.get("timestamps")
    if not isinstance(stamps, dict):
        _fail(f"info from {where} has no 'timestamps' dict (keys: {sorted(info)}); expected observation key -> "
              "capture time in monotonic seconds.")
    for key in space.spaces:
        t = stamps.get(key)
        if not (isinstance(t, (float, np.floating)) and np.isfinite(t)):
            _fail(f"info['timestamps'][{key!r}] from {where} is {t!r}; expected the capture time of {key!r} as a "
                  "finite float (monotonic seconds).")
        if previous is not None and t < previous[key]:
            _fail(f"info['timestamps'][{key!r}] from {where} is {t}, earlier than the previous {previous[key]}; "
                  "expected capture times that never go back.")
    if action_space is not None:
        action = info.get("action")
        if not (isinstance(action, np.ndarray) and action.dtype == np.float32 and action.shape == action_space.shape):
            _fail(f"info['action'] from {where} is {_describe(action)}; expected the applied action as a float32 "
                  f"array of shape {action_space.shape} (what a recorder stores).")
        if action not in action_space:
            _fail(f"info['action'] from {where} is {action.tolist()}; expected the applied action inside {action_space}.")
    return {key: float(stamps[key]) for key in space.spaces}


def _check_success(info: Any, where: str) -> None:
    if "success" not in info:
        _fail(f"info from {where} has no 'success' key (keys: {sorted(info)}); expected a bool.")
    if not isinstance(info["success"], (bool, np.bool_)):
        _fail(f"info['success'] from {where} is {type(info['success']).__name__}; expected a bool.")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"
