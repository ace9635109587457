"""Metaworld MT10 learning table (issue #5): state-based diffusion and flow, 50 expert demos per task,
success per task with Wilson 95% intervals, under a stated CPU budget per policy.

Pipeline, all through the library:

1. collect  `robolearn.record.collect_recipe` on a state-only copy of datasets/metaworld-mt10/recipe.yaml
            (`env_kwargs: {cameras: []}`: nothing is rendered), written beside the store as recipe.yaml;
            an existing store is reused when it holds exactly the asked tasks x demos.
2. train    one multi-task, language-conditioned policy per type (configs/policy/{diffusion,flow}-mt10.yaml)
            with `robolearn.train.run.train_policy`. The budget is CPU time: `--budget-cpu-min` (30) is
            wall seconds x torch threads on an otherwise idle machine. `train.steps` is planned from a short
            calibration (CPU seconds per step from `resource.getrusage`: this process's CPU time, all
            threads, which other jobs on the machine barely inflate), unless `--steps` fixes it; the CPU time and the
            wall time actually used are recorded.
3. eval     `robolearn.eval.evaluate` on every task: `--episodes` (20) rollouts per task, episode i reset
            with seed `--eval-seed` + i (100000 + i: never a collection seed), in process or on `--workers`
            Ray actors; success rate with a Wilson 95% interval.
4. report   benchmarks/results/mt10.json (per policy, per task: success, ci95, n; mean; training CPU-minutes;
            steps; machine), mt10.md (table) and mt10.png (bars with intervals).

Each stage leaves its output under --out (store.zarr, <policy>/ run directories with mt10_train.json and
mt10_eval.json), so `--stages eval report` or `--stages report` redo only the later stages.

Full run (the issue's protocol: 10 tasks x 50 demos, 30 CPU-min per policy, 20 episodes per task):
    MUJOCO_GL=egl .venv/bin/python benchmarks/mt10.py --jobs 2 --workers 2
about 40 min wall on an idle 2-core machine: collect ~2 min (~38k state-only expert steps), the two trainings
side by side ~31 min (30 CPU-min each + ~0.3 CPU-min of step calibration, 1 torch thread each), eval ~3-4 min
per policy (200 episodes on 2 Ray actors). Without --jobs 2 the trainings run one after the other (~70 min).

Smoke run (2 tasks, 5 demos, 50 steps, 2 episodes; a few minutes; results beside the runs, not in
benchmarks/results):
    MUJOCO_GL=egl .venv/bin/python benchmarks/mt10.py --tasks reach-v3 drawer-close-v3 --demos 5 --steps 50 \
        --episodes 2 --out runs/mt10-tiny --results runs/mt10-tiny/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "metaworld-mt10"
PRESETS = {"diffusion": "diffusion-mt10", "flow": "flow-mt10"}
ENV_KWARGS = {"cameras": []}  # state only: the env renders nothing
CALIBRATION_STEPS = (10, 40)  # two short runs: their CPU difference is the per-step cost, the rest is setup
BUDGET_MARGIN = 0.95  # plan this fraction of the budget (per-step cost drifts a little over a run)
ISSUE_PROTOCOL = {"tasks": 10, "demos": 50, "episodes": 20, "budget_cpu_min": 30.0}


# ---- helpers -----------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[mt10 {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_id(task: str) -> str:
    return task if task.startswith("robolearn/") else f"robolearn/metaworld-{task}"


def task_name(env: str) -> str:
    return env.removeprefix("robolearn/metaworld-")


def cpu_seconds() -> float:
    """CPU time of this process, all threads, user + system (what the budget counts)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def machine_info() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    try:
        import metaworld
        mw_version = getattr(metaworld, "__version__", None)
    except ImportError:
        mw_version = None
    if mw_version is None:
        try:
            from importlib.metadata import version
            mw_version = version("metaworld")
        except Exception:
            mw_version = None
    return {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "metaworld": mw_version, "git_commit": commit, "git_dirty": dirty,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


# ---- 1. collect --------------------------------------------------------------------------------------

def write_recipe(args) -> Path:
    """The state-only recipe for the asked tasks and demos, derived from datasets/metaworld-mt10/recipe.yaml."""
    import yaml

    from robolearn.record.collect import recipe_path

    spec = yaml.safe_load(recipe_path(RECIPE).read_text())
    spec.update(name=f"{spec['name']}-state", envs=[env_id(t) for t in args.tasks], episodes_per_env=args.demos,
                env_kwargs=dict(ENV_KWARGS))
    path = args.out / "recipe.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# State-only {RECIPE} for benchmarks/mt10.py (derived from datasets/{RECIPE}/recipe.yaml;\n"
                    f"# cameras: [] renders nothing). Regenerate: robolearn collect --recipe {path} --out STORE\n"
                    + yaml.safe_dump(spec, sort_keys=False))
    return path


def store_contents(store_path: Path) -> dict:
    """Per-task episode counts (by task string), feature keys and frame count of a store."""
    from robolearn.store import Store

    store = Store.open(str(store_path))
    counts: dict[str, int] = {}
    for e in range(store.n_episodes):
        t = store.task(e)
        counts[t] = counts.get(t, 0) + 1
    return {"episodes": int(store.n_episodes), "frames": int(store.n_frames), "features": sorted(store.features),
            "episodes_per_task": counts}


def collect_stage(args) -> dict:
    from robolearn.record.collect import collect_recipe
    from robolearn_envs.metaworld.tasks import TASKS

    store = args.out / "store.zarr"
    want = {TASKS[task_name(env_id(t))]: args.demos for t in args.tasks}
    if store.exists():
        have = store_contents(store)
        if have["episodes_per_task"] == want and have["features"] == ["action", "state"]:
            log(f"reusing {store} ({have['episodes']} episodes, {have['frames']} frames)")
            return {"store": str(store), "reused": True, **have}
        raise SystemExit(f"{store} exists but holds {have['episodes_per_task']} with features {have['features']}, "
                         f"not {args.demos} state-only demos of each asked task: remove it (rm -rf {store}) "
                         f"or pick another --out")
    recipe = write_recipe(args)
    log(f"collecting {args.demos} demos x {len(args.tasks)} tasks (state only, {args.workers} worker(s)) -> {store}")
    t0 = time.perf_counter()
    if args.workers > 1:
        from robolearn.cluster import ray_session

        with ray_session(args.workers, purpose="mt10 --workers"):  # one local Ray for every env of the recipe
            summary = collect_recipe(recipe, store, workers=args.workers, progress=args.progress)
    else:
        summary = collect_recipe(recipe, store, workers=args.workers, progress=args.progress)
    have = store_contents(store)
    return {"store": str(store), "reused": False, "recipe": str(recipe), "seconds": round(time.perf_counter() - t0, 1),
            "per_env": summary["per_env"], **have}


# ---- 2. train ----------------------------------------------------------------------------------------

def config_args(policy: str, args, steps: int) -> list[str]:
    return [f"policy={PRESETS[policy]}", f"train.steps={steps}", f"train.threads={args.threads}",
            f"train.seed={args.seed}", "train.device=cpu", *args.set]


def timed_train(policy: str, args, store: str, out: Path, steps: int, progress: bool) -> tuple[dict, float, float]:
    """`train_policy` for `steps`; returns (summary, CPU seconds, wall seconds) of that call."""
    from robolearn.experiment import build_config
    from robolearn.train.run import train_policy

    cfg = build_config(config_args(policy, args, steps))
    c0, w0 = cpu_seconds(), time.perf_counter()
    summary = train_policy(cfg, store, out, progress=progress)
    return summary, cpu_seconds() - c0, time.perf_counter() - w0


def plan_budget(run, calib: Path, budget_cpu_min: float, name: str) -> dict:
    """Steps that fit a CPU budget. `run(out, steps)` trains `steps` steps into `out` and returns the CPU
    seconds it took. Per-step CPU comes from two short runs (after a warm-up run that loads the language
    model and imports); setup = what the shorter run spent besides its steps."""
    (k1, k2) = CALIBRATION_STEPS
    c_start = cpu_seconds()
    run(calib, 2)  # warm-up: imports, MiniLM, allocator
    c1 = run(calib, k1)
    c2 = run(calib, k2)
    shutil.rmtree(calib, ignore_errors=True)
    per_step = max((c2 - c1) / (k2 - k1), 1e-6)
    setup = max(c1 - k1 * per_step, 0.0)
    steps = int((budget_cpu_min * 60.0 * BUDGET_MARGIN - setup) / per_step) // 10 * 10
    if steps < 10:
        raise SystemExit(f"{name}: a budget of {budget_cpu_min} CPU-min leaves no room to train "
                         f"({per_step:.3f} CPU-s per step, {setup:.1f} CPU-s setup)")
    return {"cpu_s_per_step": round(per_step, 4), "setup_cpu_s": round(setup, 2), "planned_steps": steps,
            "calibration_cpu_min": round((cpu_seconds() - c_start) / 60, 3)}


def plan_steps(policy: str, args, store: str) -> dict:
    """`plan_budget` for one MT10 policy."""
    def run(out: Path, steps: int) -> float:
        return timed_train(policy, args, store, out, steps, False)[1]

    return plan_budget(run, args.out / policy / "calibration", args.budget_cpu_min, policy)


def train_one(policy: str, args) -> dict:
    """Plan (unless --steps), train and record one policy; runs in this process or a spawned one."""
    import torch

    store = str(args.out / "store.zarr")
    run = args.out / policy
    plan = plan_steps(policy, args, store) if args.steps is None else None
    steps = args.steps if plan is None else plan["planned_steps"]
    log(f"{policy}: training {steps} steps"
        + (f" (planned: {plan['cpu_s_per_step']:.3f} CPU-s/step, budget {args.budget_cpu_min} CPU-min)" if plan else ""))
    summary, cpu_s, wall_s = timed_train(policy, args, store, run, steps, args.progress)
    threads = torch.get_num_threads()
    record = {
        "policy": policy, "preset": PRESETS[policy], "overrides": config_args(policy, args, steps)[1:],
        "experiment": json.loads((run / "config.json").read_text()).get("experiment"),
        "steps": summary["steps"], "parameters": summary["parameters"], "train_episodes": summary["train_episodes"],
        "final_loss": summary["final_loss"], "samples_per_s": round(summary["samples_per_s"], 1),
        "threads": threads, "cpu_minutes": round(cpu_s / 60, 2), "wall_minutes": round(wall_s / 60, 2),
        "wall_x_threads_minutes": round(wall_s * threads / 60, 2), "budget_cpu_min": args.budget_cpu_min,
        "within_budget": cpu_s / 60 <= args.budget_cpu_min, "plan": plan, "checkpoint": str(run.resolve()),
    }
    (run / "mt10_train.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"{policy}: {record['steps']} steps in {record['cpu_minutes']} CPU-min ({record['wall_minutes']} min wall, "
        f"{threads} thread(s)), final loss {record['final_loss']}")
    return record


def train_stage(args) -> None:
    from robolearn.store import ensure_stats

    ensure_stats(str(args.out / "store.zarr"))  # once, before any (possibly parallel) run writes them
    if args.jobs <= 1 or len(args.policies) == 1:
        for policy in args.policies:
            train_one(policy, args)
        return
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        for record in pool.map(train_one, args.policies, [args] * len(args.policies)):
            pass


# ---- 3. eval -----------------------------------------------------------------------------------------

def evaluate_run(run: Path, tasks: list[str], episodes: int, eval_seed: int, workers: int, env_kwargs: dict,
                 progress: bool, name: str, threads: int = 1) -> dict:
    """Every task of a trained multi-task run: success with a Wilson interval per task."""
    import torch

    from robolearn.eval import evaluate
    from robolearn.policies import load

    if not (run / "config.json").is_file():
        raise SystemExit(f"no trained {name} policy in {run}: run the train stage first")
    torch.set_num_threads(threads)
    target = str(run) if workers > 1 else load(run)  # Ray actors load their own copy
    out, t0 = {}, time.perf_counter()
    for t in tasks:
        r = evaluate(target, env_id(t), episodes, seed=eval_seed, env_kwargs=dict(env_kwargs), progress=progress,
                     workers=workers)
        out[task_name(env_id(t))] = {
            "success": r.success_rate, "ci95": [round(x, 4) for x in r.ci95], "n": r.n_episodes,
            "successes": int(sum(e["success"] for e in r.episodes)), "mean_length": round(r.mean_length, 1),
            "seconds": round(r.duration_s, 1)}
        log(f"{name} {t}: {out[task_name(env_id(t))]['successes']}/{episodes} "
            f"[{r.ci95[0]:.2f}, {r.ci95[1]:.2f}] ({r.duration_s:.0f} s)")
    return {"episodes_per_task": episodes, "eval_seed": eval_seed, "workers": workers,
            "wall_minutes": round((time.perf_counter() - t0) / 60, 2), "tasks": out}


def eval_one(policy: str, args) -> dict:
    run = args.out / policy
    record = evaluate_run(run, args.tasks, args.episodes, args.eval_seed, args.workers, ENV_KWARGS, args.progress,
                          policy, args.eval_threads)
    (run / "mt10_eval.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def eval_stage(args) -> None:
    if args.workers > 1:
        from robolearn.cluster import ray_session

        with ray_session(args.workers, purpose="mt10 --workers"):  # one local Ray for every evaluate() call
            for policy in args.policies:
                eval_one(policy, args)
    else:
        for policy in args.policies:
            eval_one(policy, args)


# ---- 4. report ---------------------------------------------------------------------------------------

def report_stage(args, collect_info: dict | None) -> dict:
    from robolearn.eval import wilson_interval

    policies = {}
    for policy in args.policies:
        run = args.out / policy
        train = json.loads((run / "mt10_train.json").read_text())
        ev = json.loads((run / "mt10_eval.json").read_text())
        tasks = ev["tasks"]
        successes, n = sum(t["successes"] for t in tasks.values()), sum(t["n"] for t in tasks.values())
        policies[policy] = {
            "mean_success": round(sum(t["success"] for t in tasks.values()) / len(tasks), 4),
            "pooled_ci95": [round(x, 4) for x in wilson_interval(successes, n)],
            "tasks": tasks,
            "train": {k: train[k] for k in ("preset", "overrides", "steps", "parameters", "train_episodes",
                                            "cpu_minutes", "wall_minutes", "threads", "wall_x_threads_minutes",
                                            "budget_cpu_min", "within_budget", "final_loss", "samples_per_s",
                                            "plan")},
            "model": (train.get("experiment") or {}).get("model"),
            "train_config": (train.get("experiment") or {}).get("train"),
            "eval": {k: ev[k] for k in ("episodes_per_task", "eval_seed", "workers", "wall_minutes")},
        }
    if collect_info is None and (args.out / "store.zarr").exists():
        collect_info = {"store": str(args.out / "store.zarr"), **store_contents(args.out / "store.zarr")}
    # What was actually run (read back from the stage outputs, so `--stages report` cannot misstate it).
    first = next(iter(policies.values()))
    tasks, episodes, seed = list(first["tasks"]), first["eval"]["episodes_per_task"], first["eval"]["eval_seed"]
    demos = min((collect_info or {}).get("episodes_per_task", {}).values(), default=args.demos)
    budget = max(p["train"]["budget_cpu_min"] for p in policies.values())
    protocol = {"tasks": tasks, "demos_per_task": demos, "episodes_per_task": episodes,
                "eval_seeds": f"{seed} + i, i < {episodes}", "budget_cpu_min_per_policy": budget,
                "observation": "state (39,) only, no cameras", "env_kwargs": ENV_KWARGS,
                "goal": "mean success >= 0.9 within 30 CPU-minutes per policy"}
    protocol["matches_issue_protocol"] = (len(tasks) == ISSUE_PROTOCOL["tasks"]
                                          and demos >= ISSUE_PROTOCOL["demos"]
                                          and episodes >= ISSUE_PROTOCOL["episodes"]
                                          and all(p["train"]["cpu_minutes"] <= ISSUE_PROTOCOL["budget_cpu_min"]
                                                  for p in policies.values()))
    result = {"benchmark": "Metaworld MT10 learning table (issue #5): one multi-task language-conditioned policy "
                           "per type, trained from state on scripted-expert demos",
              "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "protocol": protocol, "store": collect_info, "machine": machine_info(), "policies": policies}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "mt10.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / "mt10.md").write_text(markdown(result))
    plot(result, args.results / "mt10.png")
    log(f"wrote {args.results / 'mt10.json'}, mt10.md, mt10.png")
    return result


def fmt(s: dict) -> str:
    return f"{100 * s['success']:.0f}% [{100 * s['ci95'][0]:.0f}, {100 * s['ci95'][1]:.0f}]"


def markdown(result: dict) -> str:
    pol, proto, m = result["policies"], result["protocol"], result["machine"]
    names = list(pol)
    lines = [
        "# Metaworld MT10 from state: diffusion vs flow",
        "",
        f"One multi-task, language-conditioned policy per type, trained on {proto['demos_per_task']} successful "
        f"scripted-expert demos per task (state only), evaluated on {proto['episodes_per_task']} episodes per task "
        f"(seeds {proto['eval_seeds']}). Success with Wilson 95% intervals. Budget: "
        f"{proto['budget_cpu_min_per_policy']:g} CPU-minutes of training per policy "
        f"(issue #5 goal: mean >= 90%).{'' if proto['matches_issue_protocol'] else ' **Not the issue protocol (reduced run).**'}",
        "",
        "| task | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for task in proto["tasks"]:
        lines.append(f"| {task} | " + " | ".join(fmt(pol[p]["tasks"][task]) for p in names) + " |")
    lines.append("| **mean** | " + " | ".join(
        f"**{100 * pol[p]['mean_success']:.1f}%** [{100 * pol[p]['pooled_ci95'][0]:.0f}, "
        f"{100 * pol[p]['pooled_ci95'][1]:.0f}] pooled" for p in names) + " |")
    lines.append("| training CPU-min (process) | " + " | ".join(f"{pol[p]['train']['cpu_minutes']:.1f}" for p in names) + " |")
    lines.append("| training wall-min x threads | " + " | ".join(
        f"{pol[p]['train']['wall_minutes']:.1f} x {pol[p]['train']['threads']}" for p in names) + " |")
    lines.append("| steps (batch) | " + " | ".join(
        f"{pol[p]['train']['steps']} ({(pol[p]['train_config'] or {}).get('batch_size')})" for p in names) + " |")
    lines.append("| parameters | " + " | ".join(f"{pol[p]['train']['parameters'] / 1e6:.1f} M" for p in names) + " |")
    lines.append("| eval wall-min | " + " | ".join(f"{pol[p]['eval']['wall_minutes']:.1f}" for p in names) + " |")
    lines += ["", "Presets: " + ", ".join(f"`configs/policy/{pol[p]['train']['preset']}.yaml`" for p in names)
              + "; overrides: " + "; ".join(f"{p}: `{' '.join(pol[p]['train']['overrides'])}`" for p in names) + ".",
              f"Machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']}, metaworld {m['metaworld']}, "
              f"commit {m['git_commit']}{' (dirty)' if m['git_dirty'] else ''}; load average at the end "
              f"{m['load_average']}.",
              "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def bar_plot(series: dict[str, dict], tasks: list[str], title: str, path: Path, goal: float | None = None) -> None:
    """Success per task (+ mean) with Wilson intervals, one bar group per task. `series[label]` holds
    "tasks" ({task: {"success", "ci95"}}), "mean_success" and "pooled_ci95"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [*tasks, "mean"]
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) + 2), 3.8), dpi=120)
    for i, (name, r) in enumerate(series.items()):
        rows = [r["tasks"][t] for t in tasks]
        rate = np.array([row["success"] for row in rows] + [r["mean_success"]])
        lo = np.array([row["ci95"][0] for row in rows] + [r["pooled_ci95"][0]])
        hi = np.array([row["ci95"][1] for row in rows] + [r["pooled_ci95"][1]])
        ax.bar(x + (i - (len(series) - 1) / 2) * width, rate, width, label=name,
               yerr=np.stack([rate - lo, hi - rate]).clip(min=0), capsize=2, error_kw={"lw": 0.8})
    if goal is not None:
        ax.axhline(goal, color="gray", lw=0.8, ls="--")
    ax.set_xticks(x)
    ax.set_xticklabels([t.removesuffix("-v3") for t in labels], rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (Wilson 95%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot(result: dict, path: Path) -> None:
    pol, proto = result["policies"], result["protocol"]
    series = {f"{p} ({pol[p]['train']['cpu_minutes']:.1f} CPU-min)": pol[p] for p in pol}
    bar_plot(series, proto["tasks"], f"Metaworld MT10 from state, {proto['demos_per_task']} demos/task, "
             f"{proto['episodes_per_task']} episodes/task", path, goal=0.9)


# ---- main --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    from robolearn_envs.metaworld.tasks import MT10

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(MT10), help="metaworld tasks (default: MT10)")
    ap.add_argument("--demos", type=int, default=50, help="successful expert demos per task")
    ap.add_argument("--policies", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--budget-cpu-min", type=float, default=30.0, help="training CPU-minutes per policy")
    ap.add_argument("--steps", type=int, default=None, help="fix train.steps (skips the budget calibration)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training")
    ap.add_argument("--jobs", type=int, default=1, help="policies trained in parallel processes")
    ap.add_argument("--seed", type=int, default=0, help="train.seed")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra config overrides for both policies, e.g. train.batch_size=256")
    ap.add_argument("--episodes", type=int, default=20, help="eval episodes per task")
    ap.add_argument("--eval-seed", type=int, default=100_000, help="eval episode i is reset with this + i")
    ap.add_argument("--eval-threads", type=int, default=1, help="torch threads for in-process eval")
    ap.add_argument("--workers", type=int, default=1, help="Ray actors for collection and eval (1: in process)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "mt10", help="store and run directories")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results", help="mt10.json/.md/.png go here")
    ap.add_argument("--stages", nargs="+", default=["collect", "train", "eval", "report"],
                    choices=["collect", "train", "eval", "report"])
    ap.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = ap.parse_args(argv)
    args.out = args.out.resolve()
    args.results = args.results.resolve()
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    t0 = time.perf_counter()
    collect_info = collect_stage(args) if "collect" in args.stages else None
    if "train" in args.stages:
        train_stage(args)
    if "eval" in args.stages:
        eval_stage(args)
    if "report" in args.stages:
        result = report_stage(args, collect_info)
        print(json.dumps({p: {"mean_success": r["mean_success"], "cpu_minutes": r["train"]["cpu_minutes"],
                              "steps": r["train"]["steps"]} for p, r in result["policies"].items()}))
    log(f"done in {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
