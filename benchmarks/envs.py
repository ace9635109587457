"""Environment speed: steps/s with and without rendering per family, render fps per image size, and
expert-collection throughput with 1 and 2 Ray workers (parallel efficiency).

    python benchmarks/envs.py [--seconds 5] [--out benchmarks/results/envs.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from robolearn.env.registry import make_env  # noqa: E402

FAMILIES = {  # id, camera kwargs
    "mujoco": ("robolearn/mujoco-push", {"cameras": ["front"]}),
    "metaworld": ("robolearn/metaworld-pick-place-v3", {"cameras": ["corner"]}),
    "robosuite": ("robolearn/robosuite-lift", {"cameras": ["agentview"]}),
    "pusht": ("robolearn/pusht", {}),
}
STATE_ONLY = {"mujoco": {"cameras": []}, "metaworld": {"cameras": []}, "robosuite": {"cameras": []},
              "pusht": {"obs_type": "environment_state_agent_pos"}}


def steps_per_s(env_id: str, kwargs: dict, seconds: float) -> float:
    env = make_env(env_id, **kwargs)
    try:
        env.reset(seed=0)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            n += 1
            if term or trunc:
                env.reset(seed=n)
        return n / (time.perf_counter() - t0)
    finally:
        env.close()


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return {"cpu": cpu, "nproc": os.cpu_count(), "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--episodes", type=int, default=24, help="episodes per collection run")
    ap.add_argument("--out", default="benchmarks/results/envs.json")
    args = ap.parse_args()
    res: dict = {"machine": machine(), "families": {}, "render_fps": {}, "collect": {}}
    for fam, (env_id, cam) in FAMILIES.items():
        try:
            res["families"][fam] = {"env": env_id,
                                    "steps_per_s_state_only": steps_per_s(env_id, STATE_ONLY[fam], args.seconds),
                                    "steps_per_s_one_camera": steps_per_s(env_id, cam, args.seconds)}
        except Exception as e:  # a family whose package is missing is reported, not fatal
            res["families"][fam] = {"env": env_id, "error": str(e)}
        print(fam, res["families"][fam], flush=True)
    for size in (64, 96, 128, 224):
        res["render_fps"][f"{size}x{size}"] = steps_per_s("robolearn/mujoco-push",
                                                           {"image_size": [size, size]}, args.seconds)
    from robolearn.record.collect import collect

    tmp = tempfile.mkdtemp()
    try:
        for workers in (1, 2):
            t0 = time.perf_counter()
            r = collect("robolearn/mujoco-push", f"{tmp}/w{workers}.zarr", args.episodes, workers=workers,
                        progress=False)
            res["collect"][f"workers_{workers}"] = {"episodes": r["episodes"], "seconds": time.perf_counter() - t0,
                                                     "env_steps_per_s": r["env_steps_per_s"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    w1, w2 = res["collect"]["workers_1"]["env_steps_per_s"], res["collect"]["workers_2"]["env_steps_per_s"]
    res["collect"]["parallel_efficiency_2"] = w2 / (2 * w1)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
