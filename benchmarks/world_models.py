"""Issue #6 comparisons on Metaworld MT10 with images: PAD and UWM against Diffusion Policy at the same
data and CPU budget, and UWM with and without extra action-free (video-only) episodes.

Pipeline, all through the library (each stage's output is kept under --out and reused when present):

1. collect   MT10 scripted experts (`robolearn.record.collect_recipe`), one 64x64 `corner` camera + the
             39-d state, --labeled + --action-free successful episodes per task (seed 0 + i).
2. data      labeled.zarr: the first --labeled episodes of every task. mixed.zarr: the same plus the next
             --action-free episodes of every task written video-only (`copy_episodes(..., action_free)`:
             has_actions false, actions zeroed; action statistics come from the labeled episodes only).
3. latents   `policy=autoencoder` trained on mixed.zarr's frames for --ae-steps, latents cached in both
             stores (`cache_latents`), so PAD and UWM never touch pixels while training.
4. train     one multi-task, language-conditioned policy per variant (VARIANTS; the same horizon, action
             steps, batch, optimizer and language embedding): `dp` (Diffusion Policy, ResNet "small" on
             the camera + state), `pad` and `uwm` on labeled.zarr, `uwm+video` on mixed.zarr. Each gets
             --budget-cpu-min of training CPU time (steps planned from a calibration, as benchmarks/mt10.py
             does; the autoencoder's CPU time is reported beside, shared by PAD and UWM).
5. eval      every task, --episodes rollouts with seeds 100000 + i, camera rendered as in training.
6. report    benchmarks/results/world_models.{json,md,png}.

CPU-sized run (~80 min wall on an idle 2-core machine):
    MUJOCO_GL=egl .venv/bin/python benchmarks/world_models.py --jobs 2 --workers 2
Smoke run (2 tasks, a few minutes, results beside the runs):
    MUJOCO_GL=egl .venv/bin/python benchmarks/world_models.py --tasks reach-v3 drawer-close-v3 --labeled 3 \\
        --action-free 2 --ae-steps 20 --steps 20 --episodes 1 --out runs/wm-tiny --results runs/wm-tiny/results
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.mt10 import (  # noqa: E402
    bar_plot, cpu_seconds, env_id, evaluate_run, fmt, machine_info, plan_budget, store_contents, task_name,
)

ROOT = Path(__file__).resolve().parent.parent
CAMERA = "corner"
ENV_KWARGS = {"image_size": [64, 64], "cameras": [CAMERA], "high_quality": False}
SHARED_MODEL = ["model.horizon=16", "model.n_action_steps=4", "model.use_language=true",
                "model.num_train_timesteps=100", "model.num_inference_steps=10"]
TRAIN = ["train.batch_size=64", "train.lr=0.0003", "train.warmup_steps=200", "train.val_ratio=0.0",
         "train.val_every=0", "train.log_every=100", "train.device=cpu"]
# The latent autoencoder (64x64x3 -> 8x8x4): half the default widths, a quarter of the compute, and both
# threads (nothing else trains while it does).
AUTOENCODER = ["model.channels=[16,32,64]", "train.batch_size=32", "train.warmup_steps=100", "train.threads=2"]
# variant: (store, overrides). PAD and UWM keep their papers' observation/future-frame settings
# (configs/policy/{pad,uwm}.yaml): PAD To=1, 3 frames at stride 4; UWM To=2, 2 frames at stride 8.
VARIANTS = {
    "dp": ("labeled", ["policy=diffusion", "model.n_obs_steps=2", "model.vision_backbone=small",
                       "model.crop_shape=[56,56]", "model.down_dims=[32,64,128]", "model.language_feature_dim=64"]),
    "pad": ("labeled", ["policy=pad", "model.autoencoder_path={ae}"]),
    "uwm": ("labeled", ["policy=uwm", "model.autoencoder_path={ae}"]),
    "uwm+video": ("mixed", ["policy=uwm", "model.autoencoder_path={ae}"]),
}


def log(msg: str) -> None:
    print(f"[world_models {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- 1-3. data ---------------------------------------------------------------------------------------

def collect_stage(args) -> dict:
    import yaml

    from robolearn.record.collect import collect_recipe, recipe_path

    store = args.out / "store.zarr"
    per_task = args.labeled + args.action_free
    if store.exists():
        have = store_contents(store)
        counts = have["episodes_per_task"]
        if len(counts) == len(args.tasks) and min(counts.values()) >= per_task:
            log(f"reusing {store} ({have['episodes']} episodes)")
            return {"store": str(store), **have}
        raise SystemExit(f"{store} holds {counts}, not {per_task} episodes of each asked task: remove it or pick "
                         f"another --out")
    spec = yaml.safe_load(recipe_path("metaworld-mt10").read_text())
    spec.update(name="metaworld-mt10-corner64", envs=[env_id(t) for t in args.tasks], episodes_per_env=per_task,
                env_kwargs=dict(ENV_KWARGS))
    recipe = args.out / "recipe.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(yaml.safe_dump(spec, sort_keys=False))
    log(f"collecting {per_task} demos x {len(args.tasks)} tasks with a 64x64 {CAMERA} camera -> {store}")
    t0 = time.perf_counter()
    collect_recipe(recipe, store, workers=1, progress=args.progress)
    return {"store": str(store), "seconds": round(time.perf_counter() - t0, 1), **store_contents(store)}


def data_stage(args) -> dict:
    """labeled.zarr and mixed.zarr from the collected store (first episodes of each task labeled)."""
    import numpy as np

    from robolearn.store import Store
    from robolearn.store.ops import copy_episodes

    src = Store.open(str(args.out / "store.zarr"))
    labeled, free = [], []
    for i in range(len(src.tasks)):
        eps = np.flatnonzero(src.episodes["task_index"] == i)
        labeled += eps[: args.labeled].tolist()
        free += eps[args.labeled: args.labeled + args.action_free].tolist()
    out = {}
    for name, parts in (("labeled", [(src, np.array(labeled))]),
                        ("mixed", [(src, np.array(labeled)), (src, np.array(free), True)])):
        path = args.out / f"{name}.zarr"
        if not path.exists():
            copy_episodes(parts, path, {"op": "world_models", "labeled_per_task": args.labeled,
                                        "action_free_per_task": args.action_free if name == "mixed" else 0})
        s = Store.open(str(path))
        out[name] = {"episodes": int(s.n_episodes), "frames": int(s.n_frames),
                     "action_free_episodes": int((~s.episodes["has_actions"].astype(bool)).sum())}
    log(f"stores: {out}")
    return out


def latents_stage(args) -> dict:
    from robolearn.experiment import build_config
    from robolearn.train.latents import cache_latents
    from robolearn.store import ensure_stats
    from robolearn.train.run import train_policy

    ae = args.out / "autoencoder"
    record_path = ae / "world_models_train.json"
    if not record_path.is_file():
        ensure_stats(str(args.out / "mixed.zarr"))
        cfg = build_config(["policy=autoencoder", *AUTOENCODER, *TRAIN, f"train.steps={args.ae_steps}"])
        c0, w0 = cpu_seconds(), time.perf_counter()
        summary = train_policy(cfg, str(args.out / "mixed.zarr"), ae, progress=args.progress)
        record = {"steps": summary["steps"], "final_loss": summary["final_loss"],
                  "cpu_minutes": round((cpu_seconds() - c0) / 60, 2),
                  "wall_minutes": round((time.perf_counter() - w0) / 60, 2)}
        for name in ("labeled", "mixed"):
            record[f"latents_{name}"] = cache_latents(str(args.out / f"{name}.zarr"), ae)
        record_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    record = json.loads(record_path.read_text())
    log(f"autoencoder: {record['steps']} steps, {record['cpu_minutes']} CPU-min, loss {record['final_loss']:.4f}")
    return record


# ---- 4. train ----------------------------------------------------------------------------------------

def overrides(variant: str, args, steps: int) -> list[str]:
    _, extra = VARIANTS[variant]
    ae = str(args.out / "autoencoder")
    return [*(o.format(ae=ae) for o in extra), *SHARED_MODEL, *TRAIN, f"train.steps={steps}", "train.threads=1",
            f"train.seed={args.seed}", *args.set]


def run_dir(variant: str, args) -> Path:
    return args.out / variant.replace("+", "_")


def timed_train(variant: str, args, out: Path, steps: int, progress: bool) -> tuple[dict, float, float]:
    from robolearn.experiment import build_config
    from robolearn.train.run import train_policy

    store = str(args.out / f"{VARIANTS[variant][0]}.zarr")
    cfg = build_config(overrides(variant, args, steps))
    c0, w0 = cpu_seconds(), time.perf_counter()
    summary = train_policy(cfg, store, out, progress=progress)
    return summary, cpu_seconds() - c0, time.perf_counter() - w0


def train_one(variant: str, args) -> dict:
    import torch

    run = run_dir(variant, args)
    record_path = run / "world_models_train.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    plan = None
    if args.steps is None:
        plan = plan_budget(lambda out, k: timed_train(variant, args, out, k, False)[1], run.parent / f"{run.name}-calib",
                           args.budget_cpu_min, variant)
    steps = args.steps or plan["planned_steps"]
    log(f"{variant}: training {steps} steps on {VARIANTS[variant][0]}.zarr")
    summary, cpu_s, wall_s = timed_train(variant, args, run, steps, args.progress)
    record = {"variant": variant, "store": VARIANTS[variant][0], "overrides": overrides(variant, args, steps),
              "steps": summary["steps"], "parameters": summary["parameters"], "final_loss": summary["final_loss"],
              "samples_per_s": round(summary["samples_per_s"], 1), "threads": torch.get_num_threads(),
              "cpu_minutes": round(cpu_s / 60, 2), "wall_minutes": round(wall_s / 60, 2),
              "budget_cpu_min": args.budget_cpu_min, "plan": plan}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    log(f"{variant}: {record['steps']} steps in {record['cpu_minutes']} CPU-min, final loss {record['final_loss']:.4f}")
    return record


def train_stage(args) -> None:
    from robolearn.store import ensure_stats

    for name in ("labeled", "mixed"):
        ensure_stats(str(args.out / f"{name}.zarr"))
    if args.jobs <= 1:
        for v in args.variants:
            train_one(v, args)
        return
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        list(pool.map(train_one, args.variants, [args] * len(args.variants)))


# ---- 5. eval -----------------------------------------------------------------------------------------

def eval_stage(args) -> None:
    from contextlib import nullcontext

    from robolearn.cluster import ray_session

    with ray_session(args.workers, purpose="world_models --workers") if args.workers > 1 else nullcontext():
        for v in args.variants:
            path = run_dir(v, args) / "world_models_eval.json"
            if path.is_file():
                continue
            record = evaluate_run(run_dir(v, args), args.tasks, args.episodes, args.eval_seed, args.workers,
                                  ENV_KWARGS, args.progress, v)
            path.write_text(json.dumps(record, indent=2) + "\n")


# ---- 6. report ---------------------------------------------------------------------------------------

def report_stage(args, data: dict, ae: dict) -> dict:
    from robolearn.eval import wilson_interval

    variants = {}
    for v in args.variants:
        train = json.loads((run_dir(v, args) / "world_models_train.json").read_text())
        ev = json.loads((run_dir(v, args) / "world_models_eval.json").read_text())
        tasks = ev["tasks"]
        k, n = sum(t["successes"] for t in tasks.values()), sum(t["n"] for t in tasks.values())
        variants[v] = {"mean_success": round(sum(t["success"] for t in tasks.values()) / len(tasks), 4),
                       "pooled_ci95": [round(x, 4) for x in wilson_interval(k, n)], "successes": k, "episodes": n,
                       "tasks": tasks, "train": train,
                       "eval": {x: ev[x] for x in ("episodes_per_task", "eval_seed", "workers", "wall_minutes")}}
    first = next(iter(variants.values()))
    protocol = {"tasks": list(first["tasks"]), "labeled_demos_per_task": args.labeled,
                "action_free_demos_per_task": args.action_free, "episodes_per_task": first["eval"]["episodes_per_task"],
                "eval_seeds": f"{args.eval_seed} + i", "observation": f"state (39,) + 64x64 {CAMERA} camera + task "
                "language embedding (MiniLM)", "budget_cpu_min_per_policy": args.budget_cpu_min,
                "autoencoder": {k: ae[k] for k in ("steps", "cpu_minutes", "final_loss")}}
    result = {"benchmark": "Metaworld MT10 with images (issue #6): PAD and UWM vs Diffusion Policy at equal data and "
                           "CPU budget; UWM with extra action-free episodes",
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "protocol": protocol, "stores": data,
              "machine": machine_info(), "variants": variants}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "world_models.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / "world_models.md").write_text(markdown(result))
    plot(result, args.results / "world_models.png")
    log(f"wrote {args.results / 'world_models.json'}, .md, .png")
    return result


def markdown(result: dict) -> str:
    var, proto, m = result["variants"], result["protocol"], result["machine"]
    names = list(var)
    lines = [
        "# Metaworld MT10 with images: DP vs PAD vs UWM (+ action-free video)", "",
        f"One multi-task, language-conditioned policy per variant; {proto['labeled_demos_per_task']} expert demos "
        f"per task with actions (`uwm+video`: plus {proto['action_free_demos_per_task']} action-free episodes per "
        f"task); {proto['observation']}; {proto['episodes_per_task']} evaluation episodes per task (seeds "
        f"{proto['eval_seeds']}); {proto['budget_cpu_min_per_policy']:g} CPU-minutes of training each (PAD/UWM also "
        f"share an autoencoder: {proto['autoencoder']['cpu_minutes']} CPU-min). Success with Wilson 95% intervals.",
        "", "| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for t in proto["tasks"]:
        lines.append(f"| {t} | " + " | ".join(fmt(var[v]["tasks"][t]) for v in names) + " |")
    lines.append("| **mean** | " + " | ".join(
        f"**{100 * var[v]['mean_success']:.1f}%** [{100 * var[v]['pooled_ci95'][0]:.0f}, "
        f"{100 * var[v]['pooled_ci95'][1]:.0f}]" for v in names) + " |")
    for label, key in (("training CPU-min", "cpu_minutes"), ("steps", "steps"), ("final loss", "final_loss")):
        lines.append(f"| {label} | " + " | ".join(
            f"{var[v]['train'][key]:.3g}" if isinstance(var[v]['train'][key], float) else str(var[v]['train'][key])
            for v in names) + " |")
    lines.append("| parameters | " + " | ".join(f"{var[v]['train']['parameters'] / 1e6:.2f} M" for v in names) + " |")
    lines += ["", "Overrides: " + "; ".join(f"{v}: `{' '.join(var[v]['train']['overrides'])}`" for v in names) + ".",
              f"Machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']}, metaworld {m['metaworld']}, commit "
              f"{m['git_commit']}{' (dirty)' if m['git_dirty'] else ''}.", "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    proto = result["protocol"]
    bar_plot(result["variants"], proto["tasks"],
             f"MT10 with a 64x64 camera, {proto['budget_cpu_min_per_policy']:g} CPU-min each", path)


# ---- main --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    from robolearn_envs.metaworld.tasks import MT10

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(MT10))
    ap.add_argument("--labeled", type=int, default=25, help="demos with actions per task")
    ap.add_argument("--action-free", type=int, default=25, help="extra video-only demos per task (uwm+video)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--ae-steps", type=int, default=1000, help="autoencoder training steps")
    ap.add_argument("--budget-cpu-min", type=float, default=20.0, help="training CPU-minutes per variant")
    ap.add_argument("--steps", type=int, default=None, help="fix train.steps (skips the budget calibration)")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained in parallel processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra overrides for every variant")
    ap.add_argument("--episodes", type=int, default=10, help="eval episodes per task")
    ap.add_argument("--eval-seed", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=1, help="Ray actors for eval (1: in process)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "wm")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--stages", nargs="+", default=["collect", "data", "latents", "train", "eval", "report"],
                    choices=["collect", "data", "latents", "train", "eval", "report"])
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    args.out, args.results = args.out.resolve(), args.results.resolve()
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    t0 = time.perf_counter()
    stages = set(args.stages)
    if "collect" in stages:
        collect_stage(args)
    data = data_stage(args) if stages & {"data", "latents", "train", "report"} else {}
    ae = latents_stage(args) if stages & {"latents", "train", "report"} else {}
    if "train" in stages:
        train_stage(args)
    if "eval" in stages:
        eval_stage(args)
    if "report" in stages:
        result = report_stage(args, data, ae)
        print(json.dumps({v: {"mean_success": r["mean_success"], "cpu_minutes": r["train"]["cpu_minutes"]}
                          for v, r in result["variants"].items()}))
    log(f"done in {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
