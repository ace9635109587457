"""Quick CPU speed check of DiffusionPolicy at LeRobot's "small" size; prints JSON.

Size matched to the LeRobot 0.4.4 baseline (shared/anchors/lerobot-baseline.md, section 3): one
96x96 camera (84x84 crop) + 7-d state -> 7-d action, To=2, T=16, ResNet-18 widths with GroupNorm
and 32-keypoint spatial softmax, U-Net down_dims (64, 128, 256). LeRobot measured there:
predict_action_chunk at DDIM-10, batch 1: 73 ms; training at batch 64: 37.9 samples/s.

Latency: median of --calls predict_action_chunk calls (batch 1, eval, uint8 images, raw units,
normalization included). Training: forward + backward + clip_grad_norm(10) + AdamW step (fused,
the CPU kernel; --no-fused-adamw for the for-loop one) on one random batch of 64, median step time
after two warm-up steps.

Usage: .venv/bin/python benchmarks/policies_quick.py [--threads 2] [--calls 20] [--train-steps 5]
       [--encoder-dtype float32|bfloat16] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import report  # noqa: E402
from robolearn.policies import make_policy  # noqa: E402

SIZE, DO, DA, TO, T = 96, 7, 7, 2, 16


def features_and_stats():
    features = {
        "state": {"shape": [DO], "dtype": "float32"},
        "images/front": {"shape": [SIZE, SIZE, 3], "dtype": "uint8"},
        "action": {"shape": [DA], "dtype": "float32"},
    }
    stats = {k: {"min": [-1.0] * d, "max": [1.0] * d, "mean": [0.0] * d, "std": [1.0] * d}
             for k, d in (("state", DO), ("action", DA))}
    return features, stats


def batch(B: int) -> dict[str, torch.Tensor]:
    return {
        "state": torch.rand(B, TO, DO) * 2 - 1,
        "images/front": torch.randint(0, 256, (B, TO, SIZE, SIZE, 3), dtype=torch.uint8),
        "action": torch.rand(B, T, DA) * 2 - 1,
        "action_is_pad": torch.zeros(B, T, dtype=torch.bool),
    }


def small_policy(encoder_dtype: str = "float32"):
    """Our DiffusionPolicy at LeRobot's small size (ResNet-18, U-Net (64, 128, 256), 84x84 crop, DDIM-10)."""
    features, stats = features_and_stats()
    return make_policy("diffusion", features, stats, vision_backbone="resnet18", down_dims=(64, 128, 256),
                       crop_shape=(84, 84), n_obs_steps=TO, horizon=T, n_action_steps=8,
                       inference_scheduler="ddim", num_inference_steps=10, encoder_dtype=encoder_dtype)


def training_step(policy, b: dict[str, torch.Tensor], fused: bool = True):
    """A function running one step on `b`: forward + backward + clip_grad_norm(10) + AdamW (fused CPU kernel)."""
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, fused=fused)

    def step() -> None:
        loss = policy.compute_loss(b)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--encoder-dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--no-fused-adamw", action="store_true", help="plain for-loop AdamW (slower on CPU)")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    policy = small_policy(args.encoder_dtype)
    n_params = {
        "total": sum(p.numel() for p in policy.parameters()),
        "encoder": sum(p.numel() for p in policy.encoders.parameters()),
        "unet": sum(p.numel() for p in policy.unet.parameters()),
    }

    policy.eval()
    obs = {k: v for k, v in batch(1).items() if not k.startswith("action")}
    for _ in range(3):
        policy.predict_action_chunk(obs)
    times = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        policy.predict_action_chunk(obs)
        times.append(time.perf_counter() - t0)

    policy.train()
    step = training_step(policy, batch(args.batch), fused=not args.no_fused_adamw)

    for _ in range(2):
        step()
    steps = []
    for _ in range(args.train_steps):
        t0 = time.perf_counter()
        step()
        steps.append(time.perf_counter() - t0)
    step_s = statistics.median(steps)
    report({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "encoder_dtype": args.encoder_dtype, "fused_adamw": not args.no_fused_adamw, "params": n_params,
        "predict_action_chunk_ddim10_batch1_ms": round(1e3 * statistics.median(times), 2),
        "predict_action_chunk_ms_all": [round(1e3 * t, 1) for t in times],
        "train_batch": args.batch, "train_step_s": round(step_s, 3),
        "train_samples_per_s": round(args.batch / step_s, 1),
        "lerobot_0.4.4_reference": {"predict_action_chunk_ddim10_ms": 73, "train_samples_per_s": 37.9},
    }, args.out)


if __name__ == "__main__":
    main()
