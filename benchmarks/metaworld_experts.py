"""Metaworld scripted experts in `robolearn/metaworld-*`: success rate per task, and env speed; writes JSON.

Each task runs `--seeds` episodes (reset seeds 0..N-1), state only, for up to `--horizon` steps
(metaworld's own 500 by default) so the episode length the expert needs is measured, not cut.
`success_within_limit` counts successes inside the task's registered limit (`max_episode_steps`).
Speed: steps/s of one task driven by its expert (resets included), state only and with one 64x64
`corner` camera (plain and `high_quality` rendering), and the per-frame render time.

Usage: nice -n 10 .venv/bin/python benchmarks/metaworld_experts.py [--seeds 10] [--horizon 500]
       [--tasks reach-v3 push-v3] [--out benchmarks/results/metaworld_experts.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import machine as shared_machine  # noqa: E402

from robolearn_envs.metaworld.env import MetaworldEnv  # noqa: E402
from robolearn_envs.metaworld.tasks import MT10, TASKS, max_episode_steps  # noqa: E402


def run_expert(env: MetaworldEnv, seed: int, horizon: int) -> tuple[bool, int]:
    """(success, steps until the first success or the horizon)."""
    obs, _ = env.reset(seed=seed)
    expert = env.get_expert()
    expert.reset()
    for t in range(1, horizon + 1):
        obs, _, terminated, _, info = env.step(expert.act(obs))
        if terminated:
            return True, t
    return False, horizon


def task_row(task: str, seeds: int, horizon: int) -> dict:
    env = MetaworldEnv(task, cameras=())
    t0 = time.perf_counter()
    results = [run_expert(env, seed, horizon) for seed in range(seeds)]
    elapsed = time.perf_counter() - t0
    env.close()
    lengths = [n for ok, n in results if ok]
    limit = max_episode_steps(task)
    return {
        "success_rate": sum(ok for ok, _ in results) / seeds,
        "success_within_limit": sum(ok and n <= limit for ok, n in results) / seeds,
        "max_episode_steps": limit,
        "failed_seeds": [seed for seed, (ok, _) in enumerate(results) if not ok],
        "mean_steps_to_success": round(statistics.mean(lengths), 1) if lengths else None,
        "p95_steps_to_success": int(np.percentile(lengths, 95)) if lengths else None,
        "max_steps_to_success": max(lengths) if lengths else None,
        "seconds": round(elapsed, 2),
    }


def speed(task: str, cameras: tuple[str, ...], high_quality: bool = False, episodes: int = 3,
          steps: int = 100) -> dict:
    env = MetaworldEnv(task, cameras=cameras, high_quality=high_quality)
    env.reset(seed=0)  # GL context creation out of the timing
    load = os.getloadavg()[0]
    n, t0 = 0, time.perf_counter()
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        expert = env.get_expert()
        for _ in range(steps):
            obs, *_ = env.step(expert.act(obs))
            n += 1
    elapsed = time.perf_counter() - t0
    out = {"cameras": list(cameras), "high_quality": high_quality, "image_size": list(env.image_size),
           "steps_per_s": round(n / elapsed, 1), "loadavg_1min_before": round(load, 2)}
    if cameras:
        t0 = time.perf_counter()
        for _ in range(50):
            env.render()
        out["render_ms_per_frame"] = round((time.perf_counter() - t0) / 50 * 1000, 2)
    env.close()
    return out


def machine() -> dict:
    return shared_machine("mujoco", "metaworld")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=500)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--speed-task", default="pick-place-v3")
    parser.add_argument("--out", default="benchmarks/results/metaworld_experts.json")
    args = parser.parse_args()

    rows = {}
    for task in args.tasks:
        rows[task] = task_row(task, args.seeds, args.horizon)
        print(task, json.dumps(rows[task]), flush=True)
    rates = [r["success_within_limit"] for r in rows.values()]
    result = {
        "benchmark": "metaworld scripted experts (metaworld.policies.ENV_POLICY_MAP) in robolearn/metaworld-*",
        "seeds_per_task": args.seeds,
        "horizon": args.horizon,
        "mean_success_within_limit": round(float(np.mean(rates)), 4),
        "mean_success_within_limit_mt10": round(float(np.mean([rows[t]["success_within_limit"] for t in MT10
                                                               if t in rows] or [float("nan")])), 4),
        "tasks": rows,
        "speed": {"task": args.speed_task,
                  "runs": [speed(args.speed_task, ()), speed(args.speed_task, ("corner",)),
                           speed(args.speed_task, ("corner",), high_quality=True)]},
        "machine": machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "tasks"}, indent=2))


if __name__ == "__main__":
    main()
