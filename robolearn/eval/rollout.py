"""Policy evaluation by rollouts: success rate with a 95 % interval, per-episode results, a video.

Episode ``i`` is reset with seed ``seed + i`` (env and torch sampling), so the result does not
depend on how many workers ran the episodes. Each episode runs in a ``ControlLoop`` on a
``VirtualClock`` at the env's ``control_hz``: same tick semantics as on the robot, as fast as the
simulator allows.

Example::

    import robolearn_envs  # registers the envs
    from robolearn.eval import evaluate

    result = evaluate("runs/pusht/checkpoints/last", "robolearn/PushT-v0", episodes=50,
                      video_path="runs/pusht/eval.mp4", workers=2)
    print(result.success_rate, result.ci95)
    Path("eval.json").write_text(json.dumps(result.to_json(), indent=2))
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robolearn.errors import InvalidValueError
from robolearn.eval.metrics import wilson_interval
from robolearn.eval.video import tile_episodes, write_video
from robolearn.runtime import ControlLoop, PolicySource, VirtualClock

__all__ = ["EvalResult", "evaluate"]

PolicyLike = Any  # a Policy object, or a checkpoint directory (str | os.PathLike)


@dataclass
class EvalResult:
    """Outcome of ``evaluate``; ``to_json()`` gives the dict written as eval.json."""

    env_id: str
    n_episodes: int
    success_rate: float
    ci95: tuple[float, float]
    """Wilson 95 % interval of the success rate."""
    mean_length: float
    """Mean episode length in steps."""
    mean_reward: float
    episodes: list[dict[str, Any]] = field(default_factory=list)
    """Per episode, in order: ``{"seed", "success", "length", "reward"}``."""
    seed: int = 0
    workers: int = 1
    latency_ticks: int = 0
    """Simulated inference latency the rollouts ran with, in control ticks."""
    video_path: str | None = None
    checkpoint: str | None = None
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict of every field (``json.dumps(result.to_json())`` is the report)."""
        out = dataclasses.asdict(self)
        out["ci95"] = list(self.ci95)
        return out


# --- pieces that other modules are still growing; each is isolated so it can be swapped -----------


def _make_env(env: str | gym.envs.registration.EnvSpec, env_kwargs: dict[str, Any]) -> gym.Env:
    """Create one evaluation env: ``robolearn.env.registry.make_env`` for an id (finds plugin envs,
    names close matches for a typo), ``gymnasium.make`` for a spec."""
    if isinstance(env, str):
        make_env = _optional_attr("robolearn.env.registry", "make_env")
        if make_env is not None:
            return make_env(env, **env_kwargs)
    return gym.make(env, **env_kwargs)


def _load_policy(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Any:
    """Load a policy from a checkpoint directory through ``robolearn.policies.load`` (``overrides``: its
    ``model.<field>`` inference overrides)."""
    load = _policies_attr("load")
    if load is None:
        raise ImportError(
            f"evaluate: cannot load the checkpoint {os.fspath(path)!r}: robolearn.policies.load "
            "is not available"
        )
    return load(Path(path), overrides=overrides) if overrides else load(Path(path))


def _check_compatible(policy: Any, env: gym.Env) -> None:
    """Raise ValueError if the policy cannot run on the env (when the policies package says so)."""
    check = _policies_attr("check_compatible")
    if check is not None:
        check(policy, env.observation_space, env.action_space)


def _policies_attr(name: str) -> Callable[..., Any] | None:
    return _optional_attr("robolearn.policies", name)


def _optional_attr(module_name: str, name: str) -> Callable[..., Any] | None:
    """``module.name`` if that module exists (an import error inside it still raises)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
            return None
        raise
    return getattr(module, name, None)


def _control_hz(env: gym.Env) -> float:
    hz = getattr(env.unwrapped, "control_hz", None) or env.metadata.get("render_fps")
    if not hz:
        raise ValueError(
            f"evaluate: {env.unwrapped.__class__.__name__} has no control_hz attribute "
            "(nor metadata['render_fps']); the eval clock needs the env's control rate"
        )
    return float(hz)


def _policy_device(policy: Any) -> str:
    first = next(policy.parameters(), None) if isinstance(policy, torch.nn.Module) else None
    return "cpu" if first is None else str(first.device)


def _env_ref(env_id: str) -> str:
    """What a worker passes to gym.make: the registered spec as JSON when possible, so a Ray
    worker needs neither the registration side effect of an import nor pickle; else the id."""
    if env_id not in gym.registry:
        load_plugins = _optional_attr("robolearn.env.registry", "load_env_plugins")
        if load_plugins is not None:
            load_plugins()
    try:
        return gym.spec(env_id).to_json()
    except Exception:  # unregistered here, or a spec with a callable entry point
        return env_id


def _env_from_ref(ref: str) -> str | gym.envs.registration.EnvSpec:
    if ref.startswith("{"):
        return gym.envs.registration.EnvSpec.from_json(ref)
    return ref


class _Rollouts:
    """One env and one policy; runs episodes by seed. Used in-process and as a Ray actor."""

    def __init__(
        self,
        policy: PolicyLike,
        env_ref: str,
        env_kwargs: dict[str, Any],
        max_steps: int | None,
        latency_ticks: int = 0,
        compile: bool = False,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(policy, (str, os.PathLike)):
            policy = _load_policy(policy, overrides)  # in eval mode
        if compile:
            from robolearn.policies.compile import compile_for_inference

            compile_for_inference(policy)
        self.env = _make_env(_env_from_ref(env_ref), env_kwargs)
        _check_compatible(policy, self.env)
        self.hz = _control_hz(self.env)
        device = _policy_device(policy)
        task = getattr(self.env.unwrapped, "task_description", None)
        # A policy that runs at its own rates (e.g. RDP's slow planner + fast decoder) supplies its source.
        source = policy.make_action_source(device=device)
        if source is not None and latency_ticks:
            raise InvalidValueError(f"evaluate: latency_ticks is not supported for {type(policy).__name__}, "
                                    "which runs its own multi-rate action source")
        if source is None:
            source = PolicySource(policy, device=device, task=task, latency_ticks=latency_ticks)
        self.loop = ControlLoop(self.env, source, VirtualClock(self.hz), max_steps=max_steps)

    def run(self, seed: int, record_video: bool) -> dict[str, Any]:
        result = self.loop.run_episode(seed, record_video=record_video)
        return {
            "seed": seed,
            "success": bool(result.success),
            "length": int(result.steps),
            "reward": float(result.total_reward),
            "frames": result.frames,
            "hz": self.hz,
        }

    def close(self) -> None:
        self.env.close()


def evaluate(
    policy: PolicyLike,
    env_id: str,
    episodes: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    max_steps: int | None = None,
    video_path: str | os.PathLike | None = None,
    video_episodes: int = 4,
    progress: bool = True,
    workers: int = 1,
    latency_ticks: int = 0,
    address: str | None = None,
    compile: bool = False,
    episode_video_dir: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
) -> EvalResult:
    """Roll ``policy`` out for ``episodes`` episodes on ``env_id`` and summarise.

    Args:
        policy: a policy object, or its checkpoint directory (loaded with
            ``robolearn.policies.load``). ``workers > 1`` needs the directory: each Ray actor loads
            its own copy.
        env_id: a registered gymnasium id (import the package that registers it first).
        episodes: number of episodes; episode ``i`` uses seed ``seed + i``.
        env_kwargs: passed to ``gymnasium.make``.
        max_steps: cap on steps per episode (None: the env's own truncation).
        video_path: if set, an mp4 tiling the first ``video_episodes`` episodes, each with a
            green (success) or red (failure) bar.
        episode_video_dir: with ``video_path``, also one mp4 per filmed episode in this folder,
            ``episode_<i>.mp4``, named in that episode's result as ``video`` (relative to the folder
            holding ``video_path``, as eval.json sits beside it).
        progress: show a rich progress bar on stderr.
        workers: episodes run on this many Ray actors (1: in this process).
        latency_ticks: simulated inference latency in control ticks (see ``PolicySource``), so that
            sim results reflect what a robot whose policy takes that long would see.
        address: a running Ray cluster for ``workers > 1`` (default: a local Ray).
        compile: compile the policy for inference first (`robolearn.policies.compile`; each Ray
            actor compiles its own copy).
        overrides: with a checkpoint directory, ``model.<field>`` values applied as it loads
            (``robolearn.policies.INFERENCE_FIELDS``, e.g. ``n_action_steps``).
    """
    if episodes < 1:
        raise InvalidValueError(f"evaluate: episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise InvalidValueError(f"evaluate: workers must be >= 1, got {workers}")
    is_path = isinstance(policy, (str, os.PathLike))
    if workers > 1 and not is_path:
        raise ValueError(
            "evaluate: workers > 1 needs the policy as a checkpoint directory (each Ray actor "
            "loads its own copy); pass the path, or use workers=1 for a policy object"
        )
    if overrides and not is_path:
        raise InvalidValueError("evaluate: overrides apply as a checkpoint directory loads; pass its path, or set "
                                "them on the policy object's config")
    env_kwargs = dict(env_kwargs or {})
    n_video = min(video_episodes, episodes) if video_path is not None else 0
    if n_video > 0:
        env_kwargs.setdefault("render_mode", "rgb_array")
    env_ref = _env_ref(env_id)

    results: list[dict[str, Any] | None] = [None] * episodes
    start = time.monotonic()
    with _Progress(env_id, episodes, enabled=progress) as bar:

        def collect(i: int, res: dict[str, Any]) -> None:
            results[i] = res
            bar.advance(bool(res["success"]))

        if workers == 1:
            _run_local(policy, env_ref, env_kwargs, max_steps, latency_ticks, seed, episodes, n_video, collect,
                       compile, overrides)
        else:
            _run_ray(os.fspath(policy), env_ref, env_kwargs, max_steps, latency_ticks, seed, episodes, n_video,
                     workers, collect, address, compile, overrides)
    duration = time.monotonic() - start

    done: list[dict[str, Any]] = [r for r in results if r is not None]
    assert len(done) == episodes
    written = None
    if n_video > 0:
        frames = tile_episodes([r["frames"] for r in done[:n_video]],
                               [r["success"] for r in done[:n_video]])
        written = str(write_video(video_path, frames, fps=done[0]["hz"]))

    per_episode = [{k: r[k] for k in ("seed", "success", "length", "reward")} for r in done]
    if n_video > 0 and episode_video_dir is not None:
        for i, r in enumerate(done[:n_video]):
            path = write_video(Path(episode_video_dir) / f"episode_{i}.mp4", r["frames"], fps=r["hz"])
            per_episode[i]["video"] = os.path.relpath(path, Path(video_path).parent)
    successes = sum(r["success"] for r in per_episode)
    return EvalResult(
        env_id=env_id,
        n_episodes=episodes,
        success_rate=successes / episodes,
        ci95=wilson_interval(successes, episodes),
        mean_length=float(np.mean([r["length"] for r in per_episode])),
        mean_reward=float(np.mean([r["reward"] for r in per_episode])),
        episodes=per_episode,
        seed=seed,
        workers=workers,
        latency_ticks=latency_ticks,
        video_path=written,
        checkpoint=os.fspath(policy) if is_path else None,
        duration_s=duration,
    )


def _run_local(
    policy: PolicyLike,
    env_ref: str,
    env_kwargs: dict[str, Any],
    max_steps: int | None,
    latency_ticks: int,
    seed: int,
    episodes: int,
    n_video: int,
    collect: Callable[[int, dict[str, Any]], None],
    compile: bool = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    # Put a caller's policy in eval mode for the rollouts and give it back as it was.
    was_training = isinstance(policy, torch.nn.Module) and policy.training
    if was_training:
        policy.eval()
    rollouts = _Rollouts(policy, env_ref, env_kwargs, max_steps, latency_ticks, compile, overrides)
    try:
        for i in range(episodes):
            collect(i, rollouts.run(seed + i, i < n_video))
    finally:
        rollouts.close()
        if was_training:
            policy.train()


def _run_ray(
    checkpoint: str,
    env_ref: str,
    env_kwargs: dict[str, Any],
    max_steps: int | None,
    latency_ticks: int,
    seed: int,
    episodes: int,
    n_video: int,
    workers: int,
    collect: Callable[[int, dict[str, Any]], None],
    address: str | None = None,
    compile: bool = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    from robolearn.cluster import ray_session

    with ray_session(workers, address, purpose="evaluate with workers > 1") as ray:
        actor_cls = ray.remote(num_cpus=1)(_Rollouts)
        n_actors = min(workers, episodes)
        actors = [actor_cls.remote(checkpoint, env_ref, env_kwargs, max_steps, latency_ticks, compile, overrides)
                  for _ in range(n_actors)]
        try:
            _dispatch(ray, actors, seed, episodes, n_video, collect)
        finally:
            for actor in actors:
                ray.kill(actor)


def _dispatch(ray, actors, seed: int, episodes: int, n_video: int, collect) -> None:
    # Hand the next episode to whichever actor finishes first; results are keyed by index.
    pending: dict[Any, tuple[int, Any]] = {}
    next_i = 0
    for actor in actors:
        if next_i < episodes:
            pending[actor.run.remote(seed + next_i, next_i < n_video)] = (next_i, actor)
            next_i += 1
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            i, actor = pending.pop(ref)
            collect(i, ray.get(ref))
            if next_i < episodes:
                pending[actor.run.remote(seed + next_i, next_i < n_video)] = (next_i, actor)
                next_i += 1


class _Progress:
    """A rich progress bar (or nothing) that also shows the running success count."""

    def __init__(self, env_id: str, total: int, enabled: bool) -> None:
        self.enabled = enabled
        self.env_id = env_id
        self.total = total
        self.successes = 0
        self._progress = None
        self._task = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]eval[/] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("success {task.fields[successes]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.env_id, total=self.total, successes=0)
        return self

    def advance(self, success: bool) -> None:
        self.successes += int(success)
        if self._progress is not None:
            self._progress.update(self._task, advance=1, successes=self.successes)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
