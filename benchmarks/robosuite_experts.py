"""robosuite scripted experts in `robolearn/robosuite-*`: success rate per task, and env speed; writes JSON.

Each task runs `--seeds` episodes (reset seeds 0..N-1), state only, up to the task's registered limit
(`tasks.TASKS[task].max_episode_steps`). Speed: steps/s of Lift driven by its expert (resets included),
state only and with one 84x84 `agentview` camera, plain (the default) and `high_quality` rendering, and
the per-frame render time of `agentview` at 84x84 and 128x128 in both modes.

With `--tasks`, only those rows of an existing `--out` file (same `--seeds`) are replaced; `--no-speed`
keeps its speed section.

Usage: nice -n 10 .venv/bin/python benchmarks/robosuite_experts.py [--seeds 20] [--tasks lift stack]
       [--no-speed] [--out benchmarks/results/robosuite_experts.json]
    e.g. the square-nut expert alone:
       .venv/bin/python benchmarks/robosuite_experts.py --tasks nutassemblysquare --no-speed
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


def speed(task: str, cameras: tuple[str, ...], high_quality: bool = False, episodes: int = 2,
          steps: int = 100) -> dict:
    env = RobosuiteEnv(task, cameras=cameras, high_quality=high_quality)
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
    out = {"cameras": list(cameras), "image_size": list(env.image_size), "high_quality": high_quality,
           "steps_per_s": round(n / elapsed, 1), "loadavg_1min_before": round(load, 2)}
    if cameras:
        t0 = time.perf_counter()
        for _ in range(50):
            env.render()
        out["render_ms_per_frame"] = round((time.perf_counter() - t0) / 50 * 1000, 2)
    env.close()
    return out


def render_times(task: str, sizes: tuple[int, ...] = (84, 128), frames: int = 20, rounds: int = 5) -> dict:
    """ms per `agentview` frame, plain and high_quality, per square size: the median of `rounds` rounds,
    the modes interleaved round by round so that load from other jobs hits both alike."""
    envs = {}
    for high_quality in (False, True):
        for size in sizes:
            env = RobosuiteEnv(task, cameras=("agentview",), image_size=(size, size), high_quality=high_quality)
            env.reset(seed=0)
            for _ in range(3):  # GL context and buffers out of the timing
                env.render()
            envs[("high_quality" if high_quality else "plain", f"{size}x{size}")] = env
    times: dict = {key: [] for key in envs}
    load = os.getloadavg()[0]
    for _ in range(rounds):
        for key, env in envs.items():
            t0 = time.perf_counter()
            for _ in range(frames):
                env.render()
            times[key].append((time.perf_counter() - t0) / frames * 1000)
    for env in envs.values():
        env.close()
    out: dict = {"camera": "agentview", "loadavg_1min_before": round(load, 2)}
    for (mode, size), ms in times.items():
        out.setdefault(mode, {})[size] = {"median_ms": round(statistics.median(ms), 2), "min_ms": round(min(ms), 2)}
    return out


def machine() -> dict:
    return shared_machine("mujoco", "robosuite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--speed-task", default="lift")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed runs (keep --out's)")
    parser.add_argument("--out", default="benchmarks/results/robosuite_experts.json")
    args = parser.parse_args()
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown tasks {unknown}; accepted values: {', '.join(TASKS)}")

    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    if old.get("seeds_per_task") != args.seeds:
        old = {}  # rows over other seeds are not comparable: start afresh
    rows = dict(old.get("tasks", {}))
    for task in args.tasks:
        rows[task] = task_row(task, args.seeds)
        print(task, json.dumps(rows[task]), flush=True)
    if args.no_speed and "speed" in old:
        speed_section = old["speed"]
    else:
        speed_section = {"task": args.speed_task,
                         "runs": [speed(args.speed_task, ()), speed(args.speed_task, ("agentview",)),
                                  speed(args.speed_task, ("agentview",), high_quality=True)],
                         "render": render_times(args.speed_task)}
        print(json.dumps(speed_section, indent=2))
    result = {
        "benchmark": "scripted waypoint experts (robolearn_envs.robosuite.experts) in robolearn/robosuite-*",
        "seeds_per_task": args.seeds,
        "tasks": {task: rows[task] for task in TASKS if task in rows},
        "speed": speed_section,
        "machine": machine(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
