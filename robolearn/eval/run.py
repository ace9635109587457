"""Evaluating a checkpoint directory (what `robolearn eval` calls)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from robolearn.errors import MissingPathError
from robolearn.experiment import ExperimentConfig
from robolearn.output import check_output, claim_output


def read_run_config(checkpoint: str | Path) -> dict:
    path = Path(checkpoint) / "config.json"
    if not Path(checkpoint).exists():
        raise MissingPathError(f"no checkpoint at {checkpoint}: it does not exist (expected a run directory "
                               "written by `robolearn train`)")
    if not path.is_file():
        raise MissingPathError(f"{checkpoint} is not a checkpoint: it has no config.json")
    return json.loads(path.read_text())


def evaluate_checkpoint(checkpoint: str | Path, cfg: ExperimentConfig, env: str | None = None,
                        episodes: int | None = None, seed: int | None = None, workers: int | None = None,
                        out: str | Path | None = None, progress: bool = True,
                        address: str | None = None, overwrite: bool = False,
                        model_overrides: dict | None = None) -> dict:
    """Roll out the policy in `checkpoint` (EMA weights when present); write eval.json, rollouts.mp4 (the filmed
    episodes tiled) and rollouts/episode_<i>.mp4 (each filmed episode) into
    `out` (default `<checkpoint>/eval`): a new or empty folder, or, with `overwrite`, an earlier evaluation
    folder (anything else there is refused: robolearn.output). ``model_overrides``: ``model.<field>`` values
    from the command line (`robolearn.policies.INFERENCE_FIELDS` change how the policy acts, e.g.
    ``n_action_steps``; any other field must match the checkpoint), recorded in eval.json."""
    from robolearn.env.registry import load_env_plugins, make_env
    from robolearn.eval.rollout import evaluate
    from robolearn.policies import check_compatible, load

    import torch

    if cfg.eval.threads > 0:
        torch.set_num_threads(cfg.eval.threads)
    run = read_run_config(checkpoint)
    out = Path(out) if out is not None else Path(checkpoint) / "eval"
    check_output(out, "eval", overwrite=overwrite)  # an earlier evaluation is replaced only when asked
    env_id = env or run.get("env_id") or cfg.task.env
    env_kwargs = {**(run.get("env_kwargs") or {}), **cfg.task.env_kwargs}  # explicit overrides win
    model_overrides = dict(model_overrides or {})
    policy = load(checkpoint, overrides=model_overrides)  # a bad override fails here, before any output
    load_env_plugins()
    probe = make_env(env_id, **env_kwargs)  # unknown id / incompatible spaces fail here, before any rollout
    try:
        check_compatible(policy, probe.observation_space, probe.action_space)
    finally:
        probe.close()
    claim_output(out, "eval", overwrite=overwrite)
    n_workers = workers or cfg.eval.workers
    if cfg.eval.compile and progress:
        print("compiling the policy for inference before the rollouts (~1-2 min the first time, cached after)",
              file=sys.stderr, flush=True)
    result = evaluate(policy if n_workers <= 1 else str(checkpoint), env_id, episodes or cfg.eval.episodes,
                      seed=cfg.eval.seed if seed is None else seed, env_kwargs=env_kwargs,
                      max_steps=cfg.task.max_steps, video_path=out / "rollouts.mp4",
                      video_episodes=cfg.eval.video_episodes, episode_video_dir=out / "rollouts",
                      progress=progress, workers=n_workers,
                      latency_ticks=cfg.eval.latency_ticks, address=address, compile=cfg.eval.compile,
                      overrides=model_overrides if n_workers > 1 else None)
    summary = {**result.to_json(), "checkpoint": str(Path(checkpoint).resolve()), "env": env_id,
               "compile": cfg.eval.compile, "model_overrides": model_overrides}
    (out / "eval.json").write_text(json.dumps(summary, indent=2))
    summary["json"] = str((out / "eval.json").resolve())
    return summary
