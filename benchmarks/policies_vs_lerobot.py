"""DiffusionPolicy speed side by side with LeRobot 0.4.4's, in one process, calls interleaved.

Both policies are built at LeRobot's "small" size (shared/bench/lerobot/policy_bench.py): one
96x96 camera (84x84 crop) + 7-d state -> 7-d action, To=2, T=16, ResNet-18 from scratch with
GroupNorm and spatial softmax, U-Net down_dims (64, 128, 256). Calls alternate LeRobot / ours
(float32 encoder) / ours (bfloat16 encoder) / ours compiled (float32, `compile_for_inference`,
latency only), so a busy machine slows all of them alike.

- Latency: predict_action_chunk, batch 1, DDIM-10, eval mode. LeRobot gets pre-normalized float
  images (as in its harness); ours gets raw uint8 images and normalizes inside.
- Training: batch 64, forward + backward + clip_grad_norm(10) + optimizer step. LeRobot uses its
  preset (Adam, lr 1e-4); ours uses AdamW with the same hyper-parameters, fused CPU kernel.
  LeRobot 0.4.4's config has no crop by default (crop_shape None: its ResNet sees 96x96, 1.3x the
  pixels of our 84x84 crop), so training also runs "lerobot_crop84", LeRobot with crop_shape (84, 84)
  (a random window per batch), the same input size as ours: `train_speedup_vs_lerobot_crop84`.
  Neither side sets `robolearn.train.memory.keep_freed_memory` (our Trainer does; it is process-wide).

Part "shipped" (`--part shipped`; `all` runs both): training steps as each project's trainer runs them,
each side alone in its own process so each keeps its own process settings, steps alternating one at a
time: lerobot / lerobot_crop84 do lerobot-train's update (its optimizer and scheduler presets, default
malloc); ours_trainer does what robolearn's Trainer does per step (+ LR scheduler and EMA update) with
the memory setting the Trainer makes (`train.keep_freed_memory`: glibc keeps freed blocks instead of
mapping ~100,000 fresh pages per step). `--ours-python .venv/bin/python` runs our side on our own torch.

Run with the interpreter of a venv that has lerobot 0.4.4 (shared/bench/lerobot/make-venv.sh), with
this repository on PYTHONPATH:

    PYTHONPATH=. /path/to/lerobot-venv/bin/python benchmarks/policies_vs_lerobot.py --threads 2 \
        --out benchmarks/results/policies_vs_lerobot.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import machine, report  # noqa: E402
from benchmarks.policies_quick import DA, DO, SIZE, T, TO, batch, small_policy  # noqa: E402
from robolearn.policies.compile import compile_for_inference  # noqa: E402

IMG = "observation.images.front"


def lerobot_policy(crop_shape: tuple[int, int] | None = None):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    cfg = DiffusionConfig(
        input_features={IMG: PolicyFeature(type=FeatureType.VISUAL, shape=(3, SIZE, SIZE)),
                        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(DO,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(DA,))},
        device="cpu", down_dims=(64, 128, 256), vision_backbone="resnet18", pretrained_backbone_weights=None,
        noise_scheduler_type="DDIM", num_inference_steps=10, n_obs_steps=TO, horizon=T, n_action_steps=8,
        crop_shape=crop_shape,
    )
    return cfg, DiffusionPolicy(cfg)


def interleaved(args: argparse.Namespace) -> dict:
    """Latency and training of both policies in this process, calls alternating."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    lr_cfg, lr_pol = lerobot_policy()
    lr84_cfg, lr84_pol = lerobot_policy(crop_shape=(84, 84))
    ours = {dt: small_policy(dt) for dt in ("float32", "bfloat16")}
    names = ["lerobot", "ours_float32", "ours_bfloat16"]
    compiled = small_policy().eval()
    compiled.load_state_dict(ours["float32"].state_dict())

    # --- latency ---
    lr_pol.eval()
    lr_pol.reset()
    lr_obs = {IMG: torch.rand(1, 3, SIZE, SIZE), "observation.state": torch.randn(1, DO)}
    lr_pol.select_action(lr_obs)  # fills LeRobot's observation queues, as its harness does
    lr_batch = {**lr_obs, "observation.images": torch.stack([lr_obs[IMG]], dim=-4)}
    our_obs = {k: v for k, v in batch(1).items() if not k.startswith("action")}
    for p in ours.values():
        p.eval()
    t0 = time.perf_counter()
    if not compile_for_inference(compiled, our_obs):
        raise SystemExit("compile_for_inference failed (see the warning)")
    compile_s = time.perf_counter() - t0
    calls = {
        "lerobot": lambda: lr_pol.predict_action_chunk(lr_batch),
        "ours_float32": lambda: ours["float32"].predict_action_chunk(our_obs),
        "ours_bfloat16": lambda: ours["bfloat16"].predict_action_chunk(our_obs),
        "ours_float32_compiled": lambda: compiled.predict_action_chunk(our_obs),
    }
    lat = {n: [] for n in calls}
    for i in range(args.calls + 2):
        for n in calls:
            t0 = time.perf_counter()
            calls[n]()
            if i >= 2:
                lat[n].append(time.perf_counter() - t0)

    # --- training ---
    lr_pol.train()
    preset = lr_cfg.get_optimizer_preset()
    lr_opt = preset.build(lr_pol.get_optim_params())
    lr84_pol.train()
    lr84_opt = lr84_cfg.get_optimizer_preset().build(lr84_pol.get_optim_params())
    lr_b = {IMG: torch.rand(args.batch, TO, 3, SIZE, SIZE), "observation.state": torch.randn(args.batch, TO, DO),
            "action": torch.randn(args.batch, T, DA), "action_is_pad": torch.zeros(args.batch, T, dtype=torch.bool)}
    our_b = batch(args.batch)
    our_opts = {dt: torch.optim.AdamW(p.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, fused=True)
                for dt, p in ours.items()}
    for p in ours.values():
        p.train()

    def lr_step(pol=lr_pol, opt=lr_opt):
        loss, _ = pol.forward(lr_b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pol.parameters(), preset.grad_clip_norm)
        opt.step()
        opt.zero_grad()

    def our_step(dt):
        loss = ours[dt].compute_loss(our_b)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours[dt].parameters(), 10.0)
        our_opts[dt].step()
        our_opts[dt].zero_grad(set_to_none=True)

    steps = {"lerobot": lr_step, "lerobot_crop84": lambda: lr_step(lr84_pol, lr84_opt), "ours_float32": lambda: our_step("float32"), "ours_bfloat16": lambda: our_step("bfloat16")}
    train = {n: [] for n in steps}
    for i in range(args.train_steps + 1):
        for n in steps:
            t0 = time.perf_counter()
            steps[n]()
            if i >= 1:
                train[n].append(time.perf_counter() - t0)

    out = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "torch": torch.__version__, "threads": torch.get_num_threads(), "load_avg_1min_end": os.getloadavg()[0]}
    for n in names:
        out[n] = {
            "chunk_ms_median": round(1e3 * statistics.median(lat[n]), 1),
            "chunk_ms_min": round(1e3 * min(lat[n]), 1),
            "train_samples_per_s": round(args.batch / statistics.median(train[n]), 1),
            "train_step_s_all": [round(t, 2) for t in train[n]],
        }
    out["ours_float32_compiled"] = {
        "chunk_ms_median": round(1e3 * statistics.median(lat["ours_float32_compiled"]), 1),
        "chunk_ms_min": round(1e3 * min(lat["ours_float32_compiled"]), 1),
        "compile_s": round(compile_s, 1),
        "latency_speedup_vs_lerobot": round(
            statistics.median(lat["lerobot"]) / statistics.median(lat["ours_float32_compiled"]), 2),
    }
    out["lerobot_crop84"] = {"crop_shape": [84, 84],
                             "train_samples_per_s": round(args.batch / statistics.median(train["lerobot_crop84"]), 1),
                             "train_step_s_all": [round(t, 2) for t in train["lerobot_crop84"]]}
    for n in names[1:]:
        out[n]["latency_speedup_vs_lerobot"] = round(out["lerobot"]["chunk_ms_median"] / out[n]["chunk_ms_median"], 2)
        out[n]["train_speedup_vs_lerobot"] = round(out[n]["train_samples_per_s"] / out["lerobot"]["train_samples_per_s"], 2)
        out[n]["train_speedup_vs_lerobot_crop84"] = round(
            out[n]["train_samples_per_s"] / out["lerobot_crop84"]["train_samples_per_s"], 2)
    return out


SHIPPED = ("lerobot", "lerobot_crop84", "ours_trainer")


def worker(kind: str, batch_size: int, threads: int) -> None:
    """One side of the as-shipped comparison, alone in its process: build it, answer "ready", then run one
    training step per "step" line on stdin and answer its seconds (a JSON line) until stdin closes.

    - lerobot / lerobot_crop84: what lerobot-train's update step does (forward, backward, clip at the
      preset's grad_clip_norm, optimizer step, zero_grad, the preset's LR scheduler step), default malloc.
    - ours_trainer: what robolearn's `Trainer` does per step (loss, zero_grad, backward, clip 10, fused
      AdamW, LR scheduler, EMA update) with its process settings (`train.keep_freed_memory`, on by default).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if kind == "ours_trainer":
        from robolearn.train import TrainConfig
        from robolearn.train.ema import EMA
        from robolearn.train.memory import keep_freed_memory
        from robolearn.train.trainer import cosine_with_warmup

        tc = TrainConfig()  # the Trainer's defaults
        settings = {"keep_freed_memory": tc.keep_freed_memory and keep_freed_memory()}
        pol = small_policy().train()
        opt = torch.optim.AdamW(pol.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay,
                                fused=True)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, tc.warmup_steps, tc.steps))
        ema = EMA(pol, tc.ema_power, tc.ema_max)
        b = batch(batch_size)

        def step() -> None:
            loss = pol.compute_loss(b)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(pol.parameters(), tc.grad_clip)
            opt.step()
            sched.step()
            ema.update(pol)
    elif kind in ("lerobot", "lerobot_crop84"):
        cfg, pol = lerobot_policy(crop_shape=(84, 84) if kind == "lerobot_crop84" else None)
        pol.train()
        preset = cfg.get_optimizer_preset()
        opt = preset.build(pol.get_optim_params())
        sched = cfg.get_scheduler_preset().build(opt, num_training_steps=100_000)
        settings = {"crop_shape": list(cfg.crop_shape) if cfg.crop_shape else None}
        b = {IMG: torch.rand(batch_size, TO, 3, SIZE, SIZE), "observation.state": torch.randn(batch_size, TO, DO),
             "action": torch.randn(batch_size, T, DA), "action_is_pad": torch.zeros(batch_size, T, dtype=torch.bool)}

        def step() -> None:
            loss, _ = pol.forward(b)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(pol.parameters(), preset.grad_clip_norm)
            opt.step()
            opt.zero_grad()
            sched.step()
    else:
        raise SystemExit(f"unknown worker {kind!r}; one of {SHIPPED}")
    print(json.dumps({"ready": kind, "torch": torch.__version__, "settings": settings}), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        t0 = time.perf_counter()
        step()
        print(json.dumps({"s": time.perf_counter() - t0}), flush=True)


def shipped(args: argparse.Namespace) -> dict:
    """Training steps as each project's trainer runs them, each side in its own process (its own allocator
    settings), steps alternating one at a time so a busy machine slows all alike."""
    here = Path(__file__).resolve()
    pythons = {"lerobot": sys.executable, "lerobot_crop84": sys.executable,
               "ours_trainer": str(args.ours_python or sys.executable)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent.parent), os.environ.get("PYTHONPATH", "")])}
    procs, hello = {}, {}
    try:
        for kind in SHIPPED:  # built one after another: building is not timed, and two at once would contend
            procs[kind] = subprocess.Popen(
                [pythons[kind], str(here), "--worker", kind, "--batch", str(args.batch), "--threads", str(args.threads)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            line = procs[kind].stdout.readline()
            if not line:
                raise SystemExit(f"worker {kind} exited before it was ready (rc {procs[kind].wait()})")
            hello[kind] = json.loads(line)
        times = {kind: [] for kind in SHIPPED}
        for i in range(args.train_steps + 2):
            for kind in SHIPPED:
                procs[kind].stdin.write("step\n")
                procs[kind].stdin.flush()
                line = procs[kind].stdout.readline()
                if not line:
                    raise SystemExit(f"worker {kind} exited during step {i} (rc {procs[kind].wait()})")
                s = json.loads(line)["s"]
                if i >= 2:  # two warm-up steps each
                    times[kind].append(s)
    finally:
        for p in procs.values():
            if p.stdin:
                p.stdin.close()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    out = {"steps": args.train_steps, "batch": args.batch, "threads": args.threads,
           "python": pythons, "load_avg_1min_end": os.getloadavg()[0]}
    for kind in SHIPPED:
        out[kind] = {"torch": hello[kind]["torch"], "settings": hello[kind]["settings"],
                     "train_samples_per_s": round(args.batch / statistics.median(times[kind]), 1),
                     "train_step_s_all": [round(t, 3) for t in times[kind]]}
    ours = statistics.median(times["ours_trainer"])
    out["ours_trainer"]["train_speedup_vs_lerobot"] = round(statistics.median(times["lerobot"]) / ours, 2)
    out["ours_trainer"]["train_speedup_vs_lerobot_crop84"] = round(statistics.median(times["lerobot_crop84"]) / ours, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=15)
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--part", choices=["interleaved", "shipped", "all"], default="all",
                    help="interleaved: both policies in this process; shipped: each trainer's step in its own process")
    ap.add_argument("--ours-python", type=Path, default=None,
                    help="interpreter for our side of --part shipped (default: this one, i.e. the same torch)")
    ap.add_argument("--worker", choices=SHIPPED, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.batch, args.threads)
        return
    out = {"benchmark": "benchmarks/policies_vs_lerobot.py " + " ".join(sys.argv[1:]),
           "interpreter": sys.executable, "machine": machine("torch", note="quiet machine: nothing else ran")}
    if args.part in ("interleaved", "all"):
        out.update(interleaved(args))
    if args.part in ("shipped", "all"):
        out["shipped"] = shipped(args)
    report(out, args.out)


if __name__ == "__main__":
    main()
