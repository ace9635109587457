"""Reactive Diffusion Policy on CPU: batch-1 latency of its two rates, and RDP vs Diffusion Policy on the
contact task `robolearn/mujoco-wipe`.

Latency (batch 1, eval mode, raw units, normalization included, median of --calls):
  - slow step: `RDPPolicy.sample_latent` (obs encoding + DDIM-10 over the (T // r, Dz) latent);
  - fast step: `RDPPolicy.decode_step` (force embedding + one GRU step + head);
  - for scale, `DiffusionPolicy.predict_action_chunk` at the same obs size.
Comparison (--compare STORE): CPU-sized and state-only (`state` (+ `force` for RDP's decoder); images
dropped so it runs on 2 cores), equal data and optimizer steps: tokenizer --tok-steps, then RDP and DP
--steps each, batch 64; evaluation on --episodes unseen seeds (100000 + i) through `robolearn.eval.evaluate`
(RDP deploys with its dual-rate RDPSource: slow 6 Hz, decoder 24 Hz; DP with PolicySource, Ta = 8).

Usage: .venv/bin/python benchmarks/rdp.py [--calls 30] [--threads 1]
       [--compare /tmp/wipe.zarr --steps 1500 --tok-steps 1500 --episodes 30] [--out benchmarks/results/rdp.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from robolearn.policies import make_policy, save_policy

DO, DA, DF, TO, T = 4, 3, 6, 2, 16


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


def _train(name: str, store_path: str, out: Path, steps: int, **model) -> dict:
    """train_policy's steps with a state-only feature set (images dropped: CPU-sized)."""
    from robolearn.sampling import WindowSampler, split_episodes
    from robolearn.store import Store, ensure_stats
    from robolearn.train.config import TrainConfig
    from robolearn.train.run import store_features
    from robolearn.train.trainer import Trainer

    store = Store.open(store_path)
    stats = ensure_stats(store_path)
    features = {k: v for k, v in store_features(store).items() if not k.startswith("images/")}
    torch.manual_seed(0)
    policy = make_policy(name, features, stats, **model)
    kw = policy.sampler_kwargs(store) if hasattr(policy, "sampler_kwargs") else {}
    obs_keys = kw.pop("obs_keys", list(policy.input_keys))
    train_eps, _ = split_episodes(store.n_episodes, 0.0, 0)
    sampler = WindowSampler(store, obs_keys, policy.config.n_obs_steps, policy.config.horizon,
                            episodes=train_eps, **kw)
    cfg = TrainConfig(steps=steps, batch_size=64, lr=1e-3 if name == "rdp_tokenizer" else 3e-4, warmup_steps=100,
                      val_every=0, device="cpu", threads=torch.get_num_threads(), bf16=False)
    summary = Trainer(policy, sampler, cfg, out, extra={"env_id": store.info.get("env_id")}, progress=False).fit()
    return {"final_loss": summary["final_loss"], "seconds": summary["seconds"]}


def compare(store: str, steps: int, tok_steps: int, episodes: int, workdir: Path) -> dict:
    import robolearn_envs  # noqa: F401  (registers robolearn/mujoco-wipe)
    from robolearn.eval import evaluate

    env_kwargs = {"cameras": []}
    out: dict = {"store": store, "steps": steps, "tokenizer_steps": tok_steps, "episodes": episodes,
                 "eval_seed": 100_000, "features": "state (+ force for RDP's decoder); no images"}
    out["rdp_tokenizer"] = _train("rdp_tokenizer", store, workdir / "tok", tok_steps)
    out["rdp_train"] = _train("rdp", store, workdir / "rdp", steps, tokenizer=str(workdir / "tok"))
    out["diffusion_train"] = _train("diffusion", store, workdir / "dp", steps)
    for name in ("rdp", "dp"):
        r = evaluate(str(workdir / name), "robolearn/mujoco-wipe", episodes, seed=100_000, env_kwargs=env_kwargs,
                     progress=False)
        out[name] = {"success_rate": r.success_rate, "ci95": list(r.ci95), "mean_reward": r.mean_reward,
                     "mean_length": r.mean_length, "eval_seconds": r.duration_s}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compare", default=None, help="a robolearn/mujoco-wipe store to train and evaluate on")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--tok-steps", type=int, default=1500)
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": args.threads, "latency": [latency(args.calls, images) for images in (False, True)]}
    if args.compare:
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rdp-bench-"))
        result["comparison"] = compare(args.compare, args.steps, args.tok_steps, args.episodes, workdir)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
