"""Environment speed: steps/s with and without rendering per family, render fps per image size, and
expert-collection throughput with 1 and 2 Ray workers (parallel efficiency); writes JSON.

Per family (one env each, random actions, resets included): steps/s state only, with one camera at the
family's default size (plain rendering), and with `high_quality=True` where the family has it (Metaworld,
robosuite). Render fps: `env.render()` alone, per square `render_size`, on a state-only env. Collection:
`robolearn.record.collect` of `--collect-env`'s scripted expert, `--episodes` episodes, in process (1 worker)
and on 2 Ray actors, end to end into a store: what `robolearn collect -k K` gives. Ray itself is started
once beforehand, but each collect makes its own actors (a few seconds each, inside its timing), so with
few episodes the 2-worker number is mostly start-up. `steady_state` therefore also times the experts alone
(`ExpertEpisodes.run`, no store) once the actors are up: in process, and on 2 actors kept busy.
Parallel efficiency = steps/s with 2 workers / (2 x steps/s with 1), for both.

Full run (~6 min on 2 cores; the numbers are lower bounds on a machine shared with other jobs):

    nice -n 10 .venv/bin/python benchmarks/envs.py --seconds 5 --episodes 24 --out benchmarks/results/envs.json

Smoke run (~1.5 min): python benchmarks/envs.py --seconds 0.3 --episodes 2 --sizes 64 --out /tmp/envs.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version

os.environ.setdefault("MUJOCO_GL", "egl")

from robolearn.env.registry import make_env  # noqa: E402

# family -> (env id, one-camera kwargs, state-only kwargs, whether it takes high_quality)
FAMILIES: dict[str, tuple[str, dict, dict, bool]] = {
    "mujoco": ("robolearn/mujoco-push", {"cameras": ["front"]}, {"cameras": []}, False),
    "metaworld": ("robolearn/metaworld-pick-place-v3", {"cameras": ["corner"]}, {"cameras": []}, True),
    "robosuite": ("robolearn/robosuite-lift", {"cameras": ["agentview"]}, {"cameras": []}, True),
    "pusht": ("robolearn/pusht", {"obs_type": "pixels_agent_pos"}, {"obs_type": "environment_state_agent_pos"},
              False),
}


def steps_per_s(env_id: str, kwargs: dict, seconds: float) -> float:
    """env.step with random actions for `seconds` (after one warm-up step), resets included."""
    env = make_env(env_id, **kwargs)
    try:
        env.reset(seed=0)
        env.step(env.action_space.sample())  # lazy GL contexts, JIT out of the timing
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            n += 1
            if term or trunc:
                env.reset(seed=n)
        return round(n / (time.perf_counter() - t0), 1)
    finally:
        env.close()


def render_fps(env_id: str, kwargs: dict, size: int, seconds: float) -> float:
    """env.render() frames/s at render_size (size, size) on a state-only env (no camera observations)."""
    env = make_env(env_id, render_size=[size, size], **kwargs)
    try:
        env.reset(seed=0)
        for _ in range(2):
            frame = env.render()
        assert frame.shape == (size, size, 3), frame.shape
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            env.render()
            n += 1
        return round(n / (time.perf_counter() - t0), 1)
    finally:
        env.close()


def family_rows(seconds: float, families: list[str]) -> dict:
    rows = {}
    for fam in families:
        env_id, camera, state_only, has_high_quality = FAMILIES[fam]
        try:
            row = {"env": env_id, "camera_kwargs": camera,
                   "steps_per_s_state_only": steps_per_s(env_id, state_only, seconds),
                   "steps_per_s_one_camera": steps_per_s(env_id, camera, seconds)}
            if has_high_quality:
                row["steps_per_s_one_camera_high_quality"] = steps_per_s(env_id, {**camera, "high_quality": True},
                                                                         seconds)
        except Exception as e:  # a family whose package is missing is reported, not fatal
            row = {"env": env_id, "error": f"{type(e).__name__}: {e}"}
        rows[fam] = row
        print(fam, json.dumps(row), flush=True)
    return rows


def render_rows(seconds: float, families: list[str], sizes: list[int]) -> dict:
    rows: dict = {}
    for fam in families:
        env_id, _, state_only, _ = FAMILIES[fam]
        try:
            rows[fam] = {f"{s}x{s}": render_fps(env_id, state_only, s, seconds) for s in sizes}
        except Exception as e:
            rows[fam] = {"error": f"{type(e).__name__}: {e}"}
        print("render_fps", fam, json.dumps(rows[fam]), flush=True)
    return rows


def collect_rows(env_id: str, episodes: int) -> dict:
    from robolearn.cluster import ray_session
    from robolearn.record.collect import collect

    res: dict = {"env": env_id, "episodes": episodes}
    tmp = tempfile.mkdtemp()
    try:
        with ray_session(2, purpose="benchmarks/envs.py"):  # started once: not part of either timing
            collect(env_id, f"{tmp}/warmup.zarr", 2, workers=2, progress=False)  # Ray worker processes, imports
            for workers in (1, 2):
                t0 = time.perf_counter()
                r = collect(env_id, f"{tmp}/w{workers}.zarr", episodes, workers=workers, progress=False)
                res[f"workers_{workers}"] = {"episodes": r["episodes"], "attempts": r["attempts"],
                                             "seconds": round(time.perf_counter() - t0, 2),
                                             "env_steps_per_s": round(r["env_steps_per_s"], 1)}
                print("collect", workers, json.dumps(res[f"workers_{workers}"]), flush=True)
            res["steady_state"] = steady_state(env_id, episodes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    w1, w2 = res["workers_1"]["env_steps_per_s"], res["workers_2"]["env_steps_per_s"]
    res["speedup_2"] = round(w2 / w1, 3)
    res["parallel_efficiency_2"] = round(w2 / (2 * w1), 3)
    return res


def steady_state(env_id: str, episodes: int) -> dict:
    """Expert env steps/s without start-up or store: one runner in process, then 2 warmed-up Ray actors."""
    import ray

    from robolearn.record.collect import ExpertEpisodes

    out: dict = {}
    local = ExpertEpisodes(env_id)
    try:
        local.run(10**6)  # warm-up episode
        t0 = time.perf_counter()
        steps = sum(local.run(seed)["steps"] for seed in range(episodes))
        out["workers_1"] = {"env_steps_per_s": round(steps / (time.perf_counter() - t0), 1)}
    finally:
        local.close()
    actors = [ray.remote(num_cpus=1)(ExpertEpisodes).remote(env_id) for _ in range(2)]
    try:
        ray.get([a.run.remote(10**6 + i) for i, a in enumerate(actors)])  # up and warm
        seeds = iter(range(episodes))
        t0, steps = time.perf_counter(), 0
        pending = {a.run.remote(seed): a for a, seed in zip(actors, seeds)}  # no more runs than seeds
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done)
            steps += ray.get(done)["steps"]
            seed = next(seeds, None)
            if seed is not None:
                pending[actor.run.remote(seed)] = actor
        out["workers_2"] = {"env_steps_per_s": round(steps / (time.perf_counter() - t0), 1)}
    finally:
        for a in actors:
            ray.kill(a)
    w1, w2 = out["workers_1"]["env_steps_per_s"], out["workers_2"]["env_steps_per_s"]
    out["parallel_efficiency_2"] = round(w2 / (2 * w1), 3)
    print("collect steady state", json.dumps(out), flush=True)
    return out


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    versions = {}
    for pkg in ("mujoco", "robosuite", "metaworld", "gym-pusht", "ray"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "nproc": os.cpu_count(), "python": platform.python_version(), "packages": versions,
            "MUJOCO_GL": os.environ.get("MUJOCO_GL"), "load_avg_1m_before": round(os.getloadavg()[0], 2),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="timing window of each steps/s and fps number")
    ap.add_argument("--episodes", type=int, default=24, help="episodes per collection run")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 96, 128, 224], help="render sizes (square)")
    ap.add_argument("--collect-env", default="robolearn/mujoco-push")
    ap.add_argument("--out", default="benchmarks/results/envs.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    res: dict = {"machine": machine(), "budget": {"seconds": args.seconds, "episodes": args.episodes}}
    res["families"] = family_rows(args.seconds, args.families)
    res["render_fps"] = render_rows(args.seconds, args.families, args.sizes)
    res["collect"] = collect_rows(args.collect_env, args.episodes)
    res["machine"]["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    res["wall_seconds"] = round(time.perf_counter() - t0, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
