"""Replay: a recorded episode's actions played back on a robot (or in an env) at the recorded rate.

The actions replayed are the store's ``action`` -- what was really sent when it was recorded -- one per tick of
a `ControlLoop` at the store's fps (``RealClock`` on a robot, ``VirtualClock`` in sim), in order: a missed tick
delays the rest, it never skips an action. Every action passes the `SafetyFilter` of the robot config (or
``--safety``): a replay on a robot that is not where the recording started walks there at the safety limits
instead of jumping. The summary says what was sent, how far it was from the recording and what the filter did.

Example::

    summary = replay_episode("demos.zarr", 3, robot="so101")
    summary["max_abs_error"], summary["safety"]["clipped_relative"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import CannotCompleteError, InvalidValueError
from robolearn.spaces import ACTION

__all__ = ["ReplaySource", "replay_episode"]


class ReplaySource:
    """The loop's `ActionSource`: the recorded actions (T, Da), the next one each tick; None after the last."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions, dtype=np.float32)
        self.i = 0

    def reset(self, seed: int | None = None) -> None:
        self.i = 0

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        if self.i >= len(self.actions):
            return None
        action, self.i = self.actions[self.i], self.i + 1
        return action


def replay_episode(store: str | Path, episode: int, *, robot: str | Path | None = None, env: str | None = None,
                   fps: float | None = None, safety: str | None = None) -> dict[str, Any]:
    """Play episode `episode` of `store` back on the robot of config `robot` (or env id `env`); returns the
    summary: steps, fps, sent (T, Da) as lists, max_abs_error from the recording, safety counts, missed ticks."""
    from robolearn.devices.robot_config import build_robot_env, load_robot_config
    from robolearn.record.robot import DEVICE_FAULTS
    from robolearn.runtime import ControlLoop, RealClock, SafetyFilter, VirtualClock, load_safety_config
    from robolearn.store import open_store

    if (robot is None) == (env is None):
        raise InvalidValueError("replay needs exactly one of robot (a robot config) and env (an env id)")
    if fps is not None and not fps > 0:
        raise InvalidValueError(f"--fps must be > 0, got {fps}")
    src = open_store(store)
    if not 0 <= episode < src.n_episodes:
        raise InvalidValueError(f"--episode {episode} is not in {store}: it holds episodes 0..{src.n_episodes - 1}")
    actions = np.asarray(src.episode(episode, [ACTION])[ACTION], dtype=np.float32)
    hz = float(fps or src.fps)
    if robot is not None:
        cfg = load_robot_config(robot)
        the_env, preset, clock = build_robot_env(cfg, fps=hz), safety or cfg.safety, RealClock(hz)
    else:
        from robolearn.env.registry import make_env

        the_env = make_env(env, **dict(src.info.get("env_kwargs") or {}))
        preset, clock = safety or "default", VirtualClock(hz)
    sent: list[np.ndarray] = []
    try:
        space = the_env.action_space
        if tuple(space.shape) != actions.shape[1:]:
            raise InvalidValueError(f"episode {episode} of {store} holds actions of shape {list(actions.shape[1:])}; "
                                    f"{robot or env} takes {list(space.shape)}")
        filt = SafetyFilter.for_env(the_env, load_safety_config(preset))
        loop = ControlLoop(the_env, ReplaySource(actions), clock, on_step=lambda rec: sent.append(rec.action),
                           max_steps=len(actions), safety=filt)
        try:
            result = loop.run_episode(seed=int(src.episodes["seed"][episode]))
        except DEVICE_FAULTS as e:
            raise CannotCompleteError(f"a device failed after {len(sent)} of {len(actions)} replayed actions "
                                      f"({type(e).__name__}: {e}); the robot holds where it was") from None
    finally:
        try:
            the_env.close()
        except DEVICE_FAULTS:
            pass  # the fault above is the one to report
    sent_arr = np.asarray(sent, dtype=np.float32).reshape(len(sent), *actions.shape[1:])
    err = np.abs(sent_arr - actions[:len(sent_arr)])
    return {"store": str(store), "episode": episode, "target": str(robot or env), "steps": result.steps,
            "fps": hz, "safety_preset": preset, "safety": filt.stats(), "missed_ticks": result.missed_ticks,
            "max_abs_error": float(err.max()) if err.size else 0.0, "sent": sent_arr.tolist()}
