"""`robolearn demo`: collect -> train -> eval composed from the same library calls the subcommands use."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from robolearn.experiment import ExperimentConfig


def run_demo(cfg: ExperimentConfig, out: str | Path, progress: bool = True) -> dict:
    from robolearn.eval.run import evaluate_checkpoint
    from robolearn.record.collect import collect
    from robolearn.train.run import train_policy

    console = Console(stderr=True, quiet=not progress)
    out = Path(out).resolve()
    store, run_dir = out / "store.zarr", out / "run"
    # A demo folder is rebuilt from scratch each time: each step replaces only its own earlier output
    # (robolearn.output refuses anything else at those paths).
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t = time.perf_counter()
    console.rule(f"1/3 collect {cfg.collect.episodes} expert episodes of {cfg.task.env}")
    col = collect(cfg.task.env, store, cfg.collect.episodes, seed=cfg.collect.seed, env_kwargs=cfg.task.env_kwargs,
                  max_steps=cfg.task.max_steps, only_success=cfg.collect.only_success, progress=progress,
                  overwrite=True)
    timings["collect_s"] = time.perf_counter() - t
    t = time.perf_counter()
    console.rule(f"2/3 train {cfg.policy} for {cfg.train.steps} steps")
    tr = train_policy(cfg, str(store), run_dir, progress=progress, overwrite=True)
    timings["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    console.rule(f"3/3 evaluate {cfg.eval.episodes} episodes")
    ev = evaluate_checkpoint(run_dir, cfg, out=out / "eval", progress=progress, overwrite=True)
    timings["eval_s"] = time.perf_counter() - t
    return {"store": str(store), "episodes": col["episodes"], "checkpoint": str(run_dir),
            "success_rate": ev["success_rate"], "ci95": list(ev["ci95"]), "video": ev["video_path"],
            "plot": tr["plot"], "timings": {k: round(v, 1) for k, v in timings.items()},
            "expert_success_rate": col["expert_success_rate"]}
