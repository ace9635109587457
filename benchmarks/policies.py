"""CPU latency at batch 1 of every policy backbone: diffusion DP-C / DP-T (DDIM-10) and flow (1/4/10 Euler steps).

Size as in benchmarks/policies_quick.py (LeRobot's "small" Diffusion Policy): one 96x96 camera
(84x84 crop) + 7-d state -> 7-d action, To=2, T=16, ResNet-18 widths with GroupNorm and 32-keypoint
spatial softmax; U-Net down_dims (64, 128, 256); transformer at the CPU default (4 layers, 4 heads,
n_emb 128) and at Diffusion Policy's DP-T size (8 layers, 4 heads, n_emb 256). Random weights
(latency does not depend on them).

Each row: median and min of --calls predict_action_chunk calls (eval, uint8 image, raw units,
normalization included) after 3 warm-up calls, plus the observation-encoding part alone
(`encode_obs`), so the per-step denoiser cost reads as (total - encode) / steps.

Usage: .venv/bin/python benchmarks/policies.py [--threads 1] [--calls 20] [--out benchmarks/results/policies.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from robolearn.policies import make_policy

SIZE, DO, DA, TO, T = 96, 7, 7, 2, 16
COMMON = dict(vision_backbone="resnet18", crop_shape=(84, 84), n_obs_steps=TO, horizon=T, n_action_steps=8,
              down_dims=(64, 128, 256))
DP_T_PAPER = dict(n_layer=8, n_head=4, n_emb=256)

# name -> (policy, config overrides, predict kwargs, steps)
CASES = {
    "diffusion_unet_ddim10": ("diffusion", {}, {}, 10),
    "diffusion_transformer_ddim10": ("diffusion", {"denoiser": "transformer"}, {}, 10),
    "diffusion_transformer_paper_size_ddim10": ("diffusion", {"denoiser": "transformer", **DP_T_PAPER}, {}, 10),
    **{f"flow_unet_euler{n}": ("flow", {}, {"num_inference_steps": n}, n) for n in (1, 4, 10)},
    **{f"flow_transformer_euler{n}": ("flow", {"denoiser": "transformer"}, {"num_inference_steps": n}, n)
       for n in (1, 4, 10)},
}


def features_and_stats():
    features = {
        "state": {"shape": [DO], "dtype": "float32"},
        "images/front": {"shape": [SIZE, SIZE, 3], "dtype": "uint8"},
        "action": {"shape": [DA], "dtype": "float32"},
    }
    stats = {k: {"min": [-1.0] * d, "max": [1.0] * d, "mean": [0.0] * d, "std": [1.0] * d}
             for k, d in (("state", DO), ("action", DA))}
    return features, stats


def timed_ms(fn, calls: int) -> tuple[float, float]:
    """(median, min) milliseconds per call after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * statistics.median(times), 2), round(1e3 * min(times), 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--only", nargs="*", default=None, help=f"subset of {list(CASES)}")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    features, stats = features_and_stats()
    obs = {"state": torch.rand(1, TO, DO) * 2 - 1,
           "images/front": torch.randint(0, 256, (1, TO, SIZE, SIZE, 3), dtype=torch.uint8)}
    rows = {}
    for name, (policy_name, overrides, kwargs, steps) in CASES.items():
        if args.only and name not in args.only:
            continue
        torch.manual_seed(0)
        policy = make_policy(policy_name, features, stats, **COMMON, **overrides).eval()
        denoiser = policy.unet if policy.config.denoiser == "unet" else policy.transformer
        with torch.no_grad():
            encode_ms, encode_min = timed_ms(lambda: policy.encode_obs(obs), args.calls)
        total_ms, total_min = timed_ms(lambda: policy.predict_action_chunk(obs, **kwargs), args.calls)
        rows[name] = {
            "steps": steps, "predict_action_chunk_batch1_ms": total_ms, "predict_action_chunk_batch1_min_ms": total_min,
            "encode_obs_ms": encode_ms, "encode_obs_min_ms": encode_min,
            # From the minima: on a shared machine they are the least disturbed estimate.
            "per_step_ms_from_min": round((total_min - encode_min) / steps, 2),
            "denoiser_params": sum(p.numel() for p in denoiser.parameters()),
            "total_params": sum(p.numel() for p in policy.parameters()),
        }
        print(name, rows[name], flush=True)
    result = json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "size": {"image": [SIZE, SIZE], "crop": [84, 84], "state_dim": DO, "action_dim": DA, "To": TO, "T": T},
        "results": rows,
    }, indent=2)
    print(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(result + "\n")


if __name__ == "__main__":
    main()
