"""The control loop: one loop for recording, deployment and evaluation.

Per tick::

    tick = clock.wait_next_tick()          # the clock paces; env.step never sleeps
    action = source.act(obs, tick)         # expert, teleop device or policy; None: hold_action(env)
    sent = safety.filter(action, obs)      # with a SafetyFilter (None -> safety.hold())
    obs', reward, terminated, truncated, info = env.step(sent)
    on_step(StepRecord(tick, t, obs, action, reward, info, ...))   # obs: what the action saw
    obs = obs'

The episode ends on ``terminated``, ``truncated`` or after ``max_steps`` steps.

What a StepRecord says happened: ``action`` is what the env applied (its ``info["action"]``, after clipping or a
filter), ``commanded`` what the source asked; ``obs_timestamps`` are the capture times the env reported
(``info["timestamps"]``) with that ``obs`` -- at reset or on the previous step -- so each stream keeps its own
stamp (see ``robolearn.store.layout`` for the rule).

Example::

    loop = ControlLoop(env, PolicySource(policy), VirtualClock(env.unwrapped.control_hz),
                       on_step=recorder.add, max_steps=300)
    result = loop.run_episode(seed=0)      # EpisodeResult(steps=..., success=..., ...)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.runtime.clock import Clock
from robolearn.runtime.hold import hold_action
from robolearn.runtime.safety import SafetyFilter
from robolearn.runtime.sources import ActionSource

__all__ = ["ControlLoop", "EpisodeResult", "StepRecord"]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One executed tick, as handed to ``on_step`` (e.g. a Recorder)."""

    tick: int
    """Tick index on the loop's clock (gaps where ticks were missed)."""
    t: float
    """Clock time (s since the episode's clock start) at which the tick fired."""
    obs: dict[str, np.ndarray]
    """The observation the action was computed from."""
    action: np.ndarray
    """The action applied: ``info["action"]`` when the env reports what it really sent
    (after clipping / a safety filter), otherwise the action the source chose."""
    reward: float
    info: dict[str, Any]
    terminated: bool = False
    truncated: bool = False
    obs_timestamps: dict[str, float] = field(default_factory=dict)
    """Capture time of each key of ``obs``, from the ``info["timestamps"]`` the env returned with it (reset or
    the previous step); keys the env does not stamp are absent (the Recorder gives them the tick time)."""
    commanded: np.ndarray | None = None
    """The action the source asked for, before the env's clipping or any filter (``action`` is what was applied)."""
    timing: dict[str, float] = field(default_factory=dict)
    """Per-tick loop timing, stage -> monotonic seconds (stored as ``timing/<stage>``); empty where not measured."""
    intervention: bool = False
    """A person drove this tick instead of the policy (a takeover during deploy; stored as ``intervention``)."""


@dataclass(slots=True)
class EpisodeResult:
    """Summary of one episode run by ``ControlLoop.run_episode``."""

    steps: int
    """env.step calls."""
    success: bool
    """True if any step reported ``info["success"]``."""
    total_reward: float
    terminated: bool
    truncated: bool
    """True when the env truncated the episode (a ``max_steps`` stop is not a truncation)."""
    missed_ticks: int
    """Ticks the clock skipped because the loop body overran."""
    duration_s: float
    """Wall-clock seconds the episode took."""
    seed: int | None = None
    frames: list[np.ndarray] = field(default_factory=list)
    """``env.render()`` after reset and after each step, when video is recorded."""
    clock_stats: dict[str, float] = field(default_factory=dict)
    holds: int = 0
    """Ticks where the source gave no command and the loop sent the env's hold (`robolearn.runtime.hold_action`)."""


class ControlLoop:
    """Runs ``env`` with actions from ``source``, paced by ``clock``.

    Args:
        env: a gymnasium env with a Dict observation space.
        source: decides the action at each tick (``ExpertSource``, ``PolicySource``, ...).
        clock: ``RealClock`` on hardware, ``VirtualClock`` (or a ``RealClock``) in simulation.
        on_step: called with a ``StepRecord`` after every step.
        max_steps: stop after this many steps (None: only on terminated/truncated).
        record_video: collect ``env.render()`` frames in ``EpisodeResult.frames``.
        safety: every action passes this filter before ``env.step`` (a missing command becomes its
            ``hold()``); it is reset to ``hold_action(env)`` at each episode start. None: actions go to the
            env as the source gave them.
        stop_when: asked before each tick; True ends the episode there, like ``max_steps`` (an operator's
            episode key from a live view: ``robolearn.view.live.LiveSession.poll``). Called in the loop's
            thread, so it must be quick.
    """

    def __init__(
        self,
        env: gym.Env,
        source: ActionSource,
        clock: Clock,
        on_step: Callable[[StepRecord], None] | None = None,
        max_steps: int | None = None,
        *,
        record_video: bool = False,
        safety: SafetyFilter | None = None,
        stop_when: Callable[[], bool] | None = None,
    ) -> None:
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"ControlLoop: max_steps must be >= 1 or None, got {max_steps}")
        self.env = env
        self.source = source
        self.clock = clock
        self.on_step = on_step
        self.max_steps = max_steps
        self.record_video = record_video
        self.safety = safety
        self.stop_when = stop_when

    def run_episode(self, seed: int | None = None, *, record_video: bool | None = None) -> EpisodeResult:
        """Reset env and source with ``seed`` and run until the episode ends."""
        record = self.record_video if record_video is None else record_video
        frames: list[np.ndarray] = []
        obs, info = self.env.reset(seed=seed)
        obs_stamps = _stamps_of(obs, info)
        self.source.reset(seed)
        if self.safety is not None:
            self.safety.reset(hold_action(self.env))  # the target the robot holds now
        if record:
            frames.append(self._render())

        steps, total_reward, success, holds = 0, 0.0, False, 0
        terminated = truncated = False
        start = time.monotonic()
        self.clock.start()
        while not (terminated or truncated):
            if self.max_steps is not None and steps >= self.max_steps:
                break
            if self.stop_when is not None and self.stop_when():
                break
            tick = self.clock.wait_next_tick()
            t = self.clock.now()
            action = self.source.act(obs, tick)
            if action is None:  # no command this tick: hold, never a zero action
                action = hold_action(self.env) if self.safety is None else self.safety.hold("no command")[0]
                holds += 1
                sent = action
            else:
                sent = action if self.safety is None else self.safety.filter(action, obs)[0]
            next_obs, reward, terminated, truncated, info = self.env.step(sent)
            steps += 1
            total_reward += float(reward)
            success = success or bool(info.get("success", False))
            if self.on_step is not None:
                applied = info.get("action", sent)
                self.on_step(
                    StepRecord(tick, t, obs, np.asarray(applied), float(reward), info,
                               bool(terminated), bool(truncated), obs_stamps, np.asarray(action))
                )
            if record:
                frames.append(self._render())
            obs = next_obs
            obs_stamps = _stamps_of(obs, info)

        return EpisodeResult(
            steps=steps,
            success=success,
            total_reward=total_reward,
            terminated=bool(terminated),
            truncated=bool(truncated),
            missed_ticks=int(self.clock.missed_ticks),
            duration_s=time.monotonic() - start,
            seed=seed,
            frames=frames,
            clock_stats=self.clock.stats(),
            holds=holds,
        )

    def _render(self) -> np.ndarray:
        frame = self.env.render()
        if frame is None:
            raise RuntimeError(
                "ControlLoop: env.render() returned None; create the env with render_mode='rgb_array' "
                "to record video"
            )
        return np.asarray(frame)


def _stamps_of(obs: dict[str, np.ndarray], info: dict[str, Any]) -> dict[str, float]:
    """The capture times the env reported (``info["timestamps"]``) for the keys of `obs`."""
    stamps = info.get("timestamps") or {}
    return {k: float(v) for k, v in stamps.items() if k in obs}
