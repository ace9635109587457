"""Reactive Diffusion Policy on CPU: batch-1 latency of its two rates, and RDP vs Diffusion Policy on the
contact task `robolearn/mujoco-wipe`.

Latency (batch 1, eval mode, raw units, normalization included, median of --calls):
  - slow step: `RDPPolicy.sample_latent` (obs encoding + DDIM-10 over the (T // r, Dz) latent);
  - fast step: `RDPPolicy.decode_step` (force embedding + one GRU step + head);
  - for scale, `DiffusionPolicy.predict_action_chunk` at the same obs size.

Comparison (--compare STORE), state-only so it runs on 2 cores (`state` for both slow parts, plus the
`force` stream for RDP's decoder; images dropped):
  1. store   STORE, or --demos state-only expert episodes collected into it if it does not exist.
  2. train   equal data and an equal CPU budget per policy, --budget-cpu-min CPU-minutes (CPU time of this
             process from `resource.getrusage`, all threads): RDP = its tokenizer (--tok-steps) + the latent
             policy on the rest of the budget; DP = the whole budget. Steps are planned from two short
             calibration runs (CPU-s per step; not counted in the budget); `--steps N` fixes N steps for both
             stage-2 policies instead. Batch 64, lr 3e-4 (tokenizer 1e-3), cosine schedule, EMA weights.
  3. eval    --episodes unseen seeds (100000 + i), state-only env, 24 Hz virtual clock: RDP with its dual-rate
             RDPSource (slow latent at 6 Hz, decoder every tick on the latest force), DP with PolicySource
             at its Ta = 8, at Ta = 4 (replanning at RDP's slow rate) and at Ta = 1 (a full DDIM-10 chunk every
             24 Hz tick: reactive through `state`'s tool z, at ~10x RDP's inference time per tick); the
             scripted expert and zero actions as references. Per policy: success (all 12 bins wiped) with a
             Wilson 95% interval; the fraction of bins wiped (mean, normal 95% interval); the contact measure
             over the ticks the tool is on the dirt line (|y - line y| < 1.5 cm, x over the bins): fraction
             with the normal force in the wiping band [3, 7] N, and mean |fz - 5 N|.

Usage: .venv/bin/python benchmarks/rdp.py [--calls 30] [--threads 1]
       [--compare /tmp/wipe.zarr --budget-cpu-min 6 --tok-steps 1500 --episodes 30] [--out benchmarks/results/rdp.json]
The recorded run (`--compare /tmp/rdp/wipe.zarr --threads 1`, 6 CPU-min per policy): 15 min wall on 2 cores
shared with another job (collection 10 s, calibration 0.4 min, evaluation 2.7 min, latency ~1 min). The plan
undershoots RDP's budget (5.2 CPU-min used: short runs put its per-step cost ~15% above a long run's); DP used
6.1. Both are recorded under comparison.train.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robolearn.policies import make_policy, save_policy

DO, DA, DF, TO, T = 4, 3, 6, 2, 16
ENV_ID = "robolearn/mujoco-wipe"
ENV_KWARGS = {"cameras": []}  # state only: nothing is rendered
EVAL_SEED = 100_000  # episode i of every evaluation: seed EVAL_SEED + i (collection uses seeds 0..)
CALIBRATION_STEPS = (20, 120)  # RDP's latent steps are cheap: shorter runs misjudge them by ~40%
BUDGET_MARGIN = 0.95  # plan this fraction of a budget (the per-step cost drifts a little over a run)


def _features(images: bool) -> dict:
    f = {"state": {"shape": [DO], "dtype": "float32"}, "force": {"shape": [DF], "dtype": "float32"},
         "action": {"shape": [DA], "dtype": "float32"}}
    if images:
        f["images/front"] = {"shape": [64, 64, 3], "dtype": "uint8"}
    return f


def _stats() -> dict:
    return {k: {"min": [-1.0] * d, "max": [1.0] * d, "mean": [0.0] * d, "std": [1.0] * d}
            for k, d in (("state", DO), ("action", DA), ("force", DF))}


def _median_ms(fn, calls: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def latency(calls: int, images: bool) -> dict:
    features, stats = _features(images), _stats()
    with tempfile.TemporaryDirectory() as tmp:
        tok = make_policy("rdp_tokenizer", features, stats, horizon=T)
        save_policy(tok, tmp)
        rdp = make_policy("rdp", features, stats, tokenizer=tmp, horizon=T, n_obs_steps=TO).eval()
    dp = make_policy("diffusion", features, stats, horizon=T, n_obs_steps=TO).eval()
    obs = {"state": torch.zeros(1, TO, DO), "force": torch.zeros(1, TO, DF)}
    if images:
        obs["images/front"] = torch.zeros(1, TO, 64, 64, 3, dtype=torch.uint8)
    z = rdp.sample_latent(obs)
    force = torch.zeros(1, DF)
    with torch.inference_mode():
        slow = _median_ms(lambda: rdp.sample_latent(obs), calls)
        h = None

        def fast():
            nonlocal h
            _, h = rdp.decode_step(z, 1, force, h)

        fast_ms = _median_ms(fast, calls * 10)
        dp_ms = _median_ms(lambda: dp.predict_action_chunk(obs), calls)
    return {"images": images, "rdp_slow_step_ms": slow, "rdp_fast_step_ms": fast_ms, "dp_chunk_ms": dp_ms,
            "rdp_parameters": sum(p.numel() for p in rdp.parameters()),
            "rdp_tokenizer_parameters": sum(p.numel() for p in rdp.tokenizer.parameters())}


# ---- comparison: data and training ---------------------------------------------------------------

def cpu_seconds() -> float:
    """CPU time of this process, all threads, user + system (what the budget counts)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def ensure_store(path: str, demos: int) -> dict:
    """Collect `demos` state-only expert episodes (seeds 0..) into `path` unless a store is already there."""
    if Path(path).exists():
        return {"collected": False}
    import robolearn_envs  # noqa: F401  (registers robolearn/mujoco-wipe)
    from robolearn.record.collect import collect

    r = collect(ENV_ID, path, demos, seed=0, env_kwargs=ENV_KWARGS, progress=False)
    return {"collected": True, "episodes": r["episodes"], "expert_success_rate": r["expert_success_rate"]}


def _train(name: str, store_path: str, out: Path, steps: int, **model) -> dict:
    """train_policy's steps with a state-only feature set (images dropped: CPU-sized); returns the trainer's
    summary plus the CPU seconds the call took."""
    from robolearn.store import Store, ensure_stats
    from robolearn.train.config import TrainConfig
    from robolearn.train.run import samplers_for, store_features
    from robolearn.train.trainer import Trainer

    c0 = cpu_seconds()
    store = Store.open(store_path)
    stats = ensure_stats(store_path)
    features = {k: v for k, v in store_features(store).items() if not k.startswith("images/")}
    torch.manual_seed(0)
    policy = make_policy(name, features, stats, **model)
    sampler, _, _, _ = samplers_for(policy, store, 0.0, 0)  # what the model asks for (RDP: future forces)
    cfg = TrainConfig(steps=steps, batch_size=64, lr=1e-3 if name == "rdp_tokenizer" else 3e-4, warmup_steps=100,
                      val_every=0, device="cpu", threads=torch.get_num_threads(), bf16=False)
    summary = Trainer(policy, sampler, cfg, out, extra={"env_id": store.info.get("env_id")}, progress=False).fit()
    return {"steps": steps, "final_loss": summary["final_loss"], "wall_s": summary["seconds"],
            "cpu_s": cpu_seconds() - c0}


def plan_steps(name: str, store: str, calib: Path, budget_cpu_s: float, **model) -> dict:
    """Steps of `name` that fit `budget_cpu_s` CPU seconds: per-step CPU from two short runs (after a
    warm-up run), setup = what the shorter run spent besides its steps."""
    k1, k2 = CALIBRATION_STEPS
    c_start = cpu_seconds()
    _train(name, store, calib, 2, **model)
    c1 = _train(name, store, calib, k1, **model)["cpu_s"]
    c2 = _train(name, store, calib, k2, **model)["cpu_s"]
    shutil.rmtree(calib, ignore_errors=True)
    per_step = max((c2 - c1) / (k2 - k1), 1e-6)
    setup = max(c1 - k1 * per_step, 0.0)
    steps = int((budget_cpu_s * BUDGET_MARGIN - setup) / per_step) // 10 * 10
    if steps < 10:
        raise SystemExit(f"{name}: a budget of {budget_cpu_s / 60:.2f} CPU-min leaves no room to train "
                         f"({per_step:.3f} CPU-s per step, {setup:.1f} CPU-s setup)")
    return {"cpu_s_per_step": per_step, "setup_cpu_s": setup, "planned_steps": steps,
            "calibration_cpu_s": cpu_seconds() - c_start}


# ---- comparison: evaluation -----------------------------------------------------------------------

class _ZeroSource:
    """Action 0 every tick (the workspace centre, above the pad): a policy that does nothing."""

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray:
        return np.zeros(DA, np.float32)


def _source(kind: str, env, checkpoint: Path | None = None, n_action_steps: int | None = None):
    from robolearn.policies import load
    from robolearn.runtime import ExpertSource, PolicySource

    if kind == "expert":
        return ExpertSource(env.unwrapped.get_expert())
    if kind == "zero":
        return _ZeroSource()
    policy = load(checkpoint).eval()
    if (source := policy.make_action_source(device="cpu")) is not None:  # RDP: its own dual-rate source
        return source
    if n_action_steps is not None:
        policy.config.n_action_steps = n_action_steps
    return PolicySource(policy, device="cpu", task=env.unwrapped.task_description)


def _fraction_ci(values: list[float]) -> dict:
    """Mean of per-episode fractions with a normal 95% interval, clipped to [0, 1]."""
    x = np.asarray(values, dtype=np.float64)
    half = 1.96 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return {"mean": float(x.mean()), "ci95": [max(0.0, float(x.mean()) - half), min(1.0, float(x.mean()) + half)]}


def rollouts(kind: str, episodes: int, checkpoint: Path | None = None, n_action_steps: int | None = None) -> dict:
    """`episodes` episodes (seed EVAL_SEED + i) of one source on the state-only wipe env, with the wipe metrics."""
    import robolearn_envs  # noqa: F401  (registers robolearn/mujoco-wipe)
    from robolearn.env.registry import make_env
    from robolearn.eval import wilson_interval
    from robolearn.runtime import ControlLoop, VirtualClock
    from robolearn_envs.mujoco.wipe import BIN_WIDTH, BIN_X0, FORCE_HIGH, FORCE_LOW, LINE_HALF_WIDTH, N_BINS

    env = make_env(ENV_ID, **ENV_KWARGS)
    task = env.unwrapped.task
    target = 0.5 * (FORCE_LOW + FORCE_HIGH)
    on_line: list[float] = []  # fz (N) after every tick that ends with the tool on the dirt line

    def on_step(_record) -> None:
        x, y, _ = task.tool_xyz
        if BIN_X0 <= x < BIN_X0 + N_BINS * BIN_WIDTH and abs(y - task.line_y) < LINE_HALF_WIDTH:
            on_line.append(float(task.wrench()[2]))

    t0 = time.perf_counter()
    try:
        loop = ControlLoop(env, _source(kind, env, checkpoint, n_action_steps), VirtualClock(env.unwrapped.control_hz),
                           on_step=on_step)
        success, length, wiped = [], [], []
        for i in range(episodes):
            result = loop.run_episode(EVAL_SEED + i)
            success.append(bool(result.success))
            length.append(result.steps)
            wiped.append(int(task.wiped.sum()))
    finally:
        env.close()
    fz = np.asarray(on_line)
    return {
        "success_rate": sum(success) / episodes, "ci95": list(wilson_interval(sum(success), episodes)),
        "fraction_wiped": _fraction_ci([w / N_BINS for w in wiped]),
        "mean_length": float(np.mean(length)),
        "on_line_ticks": int(fz.size),
        "force_in_band": float(np.mean((fz >= FORCE_LOW) & (fz <= FORCE_HIGH))) if fz.size else None,
        "force_abs_err_n": float(np.mean(np.abs(fz - target))) if fz.size else None,
        "eval_seconds": time.perf_counter() - t0,
        # per episode i (seed EVAL_SEED + i): bins wiped out of N_BINS, and steps
        "bins_wiped": wiped, "lengths": length,
    }


def compare(store: str, budget_cpu_min: float, steps: int | None, tok_steps: int, episodes: int, demos: int,
            workdir: Path) -> dict:
    budget = 60.0 * budget_cpu_min
    out: dict = {"store": store, "store_info": ensure_store(store, demos), "episodes": episodes,
                 "eval_seed": EVAL_SEED, "features": "state (+ force for RDP's decoder); no images",
                 "success": "all 12 bins wiped (the env's success); ci95: Wilson",
                 "budget": (f"{budget_cpu_min} CPU-min per policy (RDP: tokenizer + latent policy)" if steps is None
                            else f"fixed {steps} steps per stage-2 policy, tokenizer {tok_steps} steps")}
    tok = _train("rdp_tokenizer", store, workdir / "tok", tok_steps)
    rdp_model = {"tokenizer": str(workdir / "tok")}
    if steps is None:
        out["rdp_plan"] = plan_steps("rdp", store, workdir / "calib", budget - tok["cpu_s"], **rdp_model)
        out["dp_plan"] = plan_steps("diffusion", store, workdir / "calib", budget)
    rdp_steps = steps or out["rdp_plan"]["planned_steps"]
    dp_steps = steps or out["dp_plan"]["planned_steps"]
    rdp = _train("rdp", store, workdir / "rdp", rdp_steps, **rdp_model)
    dp = _train("diffusion", store, workdir / "dp", dp_steps)
    out["train"] = {"rdp_tokenizer": tok, "rdp": rdp, "dp": dp,
                    "rdp_total_cpu_min": (tok["cpu_s"] + rdp["cpu_s"]) / 60, "dp_total_cpu_min": dp["cpu_s"] / 60}
    out["eval"] = {
        "rdp": rollouts("policy", episodes, workdir / "rdp"),
        "dp_ta8": rollouts("policy", episodes, workdir / "dp", n_action_steps=8),
        "dp_ta4": rollouts("policy", episodes, workdir / "dp", n_action_steps=4),
        "dp_ta1": rollouts("policy", episodes, workdir / "dp", n_action_steps=1),
        "expert": rollouts("expert", episodes),
        "zero_action": rollouts("zero", episodes),
    }
    return out


def summary_lines(comparison: dict) -> list[str]:
    lines = []
    for name, r in comparison["eval"].items():
        fw = r["fraction_wiped"]
        band = "-" if r["force_in_band"] is None else f"{r['force_in_band']:.2f}"
        err = "-" if r["force_abs_err_n"] is None else f"{r['force_abs_err_n']:.2f} N"
        lines.append(f"{name:12s} success {r['success_rate']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]  "
                     f"wiped {fw['mean']:.3f} [{fw['ci95'][0]:.3f}, {fw['ci95'][1]:.3f}]  "
                     f"in-band {band}  |fz-5| {err}")
    train = comparison["train"]
    lines.append(f"training CPU-min: RDP {train['rdp_total_cpu_min']:.2f} (tokenizer {train['rdp_tokenizer']['steps']}"
                 f" + latent {train['rdp']['steps']} steps), DP {train['dp_total_cpu_min']:.2f} "
                 f"({train['dp']['steps']} steps)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compare", default=None,
                    help="a robolearn/mujoco-wipe store to train and evaluate on (collected there if missing)")
    ap.add_argument("--budget-cpu-min", type=float, default=6.0, help="training CPU-minutes per policy")
    ap.add_argument("--steps", type=int, default=None, help="fixed steps per stage-2 policy instead of a budget")
    ap.add_argument("--tok-steps", type=int, default=1500)
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--demos", type=int, default=100, help="expert episodes to collect if the store is missing")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": args.threads, "latency": [latency(args.calls, images) for images in (False, True)]}
    if args.compare:
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rdp-bench-"))
        result["comparison"] = compare(args.compare, args.budget_cpu_min, args.steps, args.tok_steps, args.episodes,
                                       args.demos, workdir)
        result["comparison"]["summary"] = summary_lines(result["comparison"])
    result["wall_min"] = (time.perf_counter() - t0) / 60
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
