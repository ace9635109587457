"""robosuite scripted experts in `robolearn/robosuite-*`: success rate per task, and env speed; writes JSON.

Each task runs `--seeds` episodes (reset seeds 0..N-1), state only, up to the task's registered limit
(`tasks.TASKS[task].max_episode_steps`). Speed: steps/s of Lift driven by its expert (resets included),
state only and with one 84x84 `agentview` camera, and the per-frame render time.

Usage: nice -n 10 .venv/bin/python benchmarks/robosuite_experts.py [--seeds 20] [--tasks lift stack]
       [--out benchmarks/results/robosuite_experts.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from robolearn_envs.robosuite.env import RobosuiteEnv  # noqa: E402
from robolearn_envs.robosuite.tasks import TASKS  # noqa: E402


def run_expert(env: RobosuiteEnv, seed: int, horizon: int) -> tuple[bool, int]:
    """(success, steps until the first success or the horizon)."""
    obs, _ = env.reset(seed=seed)
    expert = env.get_expert()
    expert.reset()
    for t in range(1, horizon + 1):
        obs, _, terminated, _, _ = env.step(expert.act(obs))
        if terminated:
            return True, t
    return False, horizon


def task_row(task: str, seeds: int) -> dict:
    env = RobosuiteEnv(task, cameras=())
    limit = TASKS[task].max_episode_steps
    t0 = time.perf_counter()
    results = [run_expert(env, seed, limit) for seed in range(seeds)]
    elapsed = time.perf_counter() - t0
    env.close()
    lengths = [n for ok, n in results if ok]
    return {
        "success_rate": sum(ok for ok, _ in results) / seeds,
        "max_episode_steps": limit,
        "failed_seeds": [seed for seed, (ok, _) in enumerate(results) if not ok],
        "mean_steps_to_success": round(statistics.mean(lengths), 1) if lengths else None,
        "max_steps_to_success": max(lengths) if lengths else None,
        "seconds": round(elapsed, 2),
    }


def speed(task: str, cameras: tuple[str, ...], episodes: int = 2, steps: int = 100) -> dict:
    env = RobosuiteEnv(task, cameras=cameras)
    env.reset(seed=0)
    for _ in range(5):  # numba JIT and GL context creation out of the timing
        env.step(np.zeros(7, np.float32))
    load = os.getloadavg()[0]
    n, t0 = 0, time.perf_counter()
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        expert = env.get_expert()
        for _ in range(steps):
            obs, *_ = env.step(expert.act(obs))
            n += 1
    elapsed = time.perf_counter() - t0
    out = {"cameras": list(cameras), "image_size": list(env.image_size), "steps_per_s": round(n / elapsed, 1),
           "loadavg_1min_before": round(load, 2)}
    if cameras:
        t0 = time.perf_counter()
        for _ in range(50):
            env.render()
        out["render_ms_per_frame"] = round((time.perf_counter() - t0) / 50 * 1000, 2)
    env.close()
    return out


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "mujoco": version("mujoco"), "robosuite": version("robosuite"), "MUJOCO_GL": os.environ.get("MUJOCO_GL"),
            "note": "shared machine: other jobs ran alongside, so speeds are lower bounds"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--speed-task", default="lift")
    parser.add_argument("--out", default="benchmarks/results/robosuite_experts.json")
    args = parser.parse_args()

    rows = {}
    for task in args.tasks:
        rows[task] = task_row(task, args.seeds)
        print(task, json.dumps(rows[task]), flush=True)
    result = {
        "benchmark": "scripted waypoint experts (robolearn_envs.robosuite.experts) in robolearn/robosuite-*",
        "seeds_per_task": args.seeds,
        "tasks": rows,
        "speed": {"task": args.speed_task,
                  "runs": [speed(args.speed_task, ()), speed(args.speed_task, ("agentview",))]},
        "machine": machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["speed"], indent=2))


if __name__ == "__main__":
    main()
