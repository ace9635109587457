"""CPU inference latency at batch 1 of the latent-space policies: UWM (each mode) and PAD; prints JSON.

Default (CPU-sized) configs: one 64x64 camera + 7-d state -> 7-d action, T=16, the default
`ConvAutoencoder` (widths 32, 64, 128: 8x8x4 latents), DiT width 128, depth 4, 4 heads, patch 2,
DDIM-10. UWM: To=2, 2 future frames (stride 8), 4 registers; PAD: To=1, 3 future frames (stride 4),
language token (a 384-d task embedding, given). Weights are random: latency does not depend on them.

A call includes encoding the current frame(s) with the autoencoder, normalization, the DDIM loop
and, for modes that make frames, decoding them to uint8 images (``decode=True``).
Reported: median and p90 of --calls calls after two warm-up calls.

Usage: .venv/bin/python benchmarks/latent_policies.py [--threads 1] [--calls 20] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from robolearn.policies import make_policy
from robolearn.policies.latent import ConvAutoencoder

SIZE, DO, DA = 64, 7, 7


def features_and_stats():
    features = {"state": {"shape": [DO], "dtype": "float32"},
                "images/front": {"shape": [SIZE, SIZE, 3], "dtype": "uint8"},
                "action": {"shape": [DA], "dtype": "float32"}}
    stats = {k: {"min": [-1.0] * d, "max": [1.0] * d, "mean": [0.0] * d, "std": [1.0] * d}
             for k, d in (("state", DO), ("action", DA))}
    return features, stats


def timed(fn, calls: int) -> dict:
    for _ in range(2):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"median_ms": round(statistics.median(times), 2), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    features, stats = features_and_stats()
    ae = ConvAutoencoder().spec()
    results: dict = {"device": "cpu", "threads": args.threads, "torch": torch.__version__,
                     "cpu": platform.processor() or platform.machine(), "batch": 1, "image": [SIZE, SIZE, 3],
                     "policies": {}}

    uwm = make_policy("uwm", features, stats, autoencoder=ae).eval()
    To, T, K = uwm.config.n_obs_steps, uwm.config.horizon, uwm.config.future_frames
    obs = {"state": torch.rand(1, To, DO) * 2 - 1,
           "images/front": torch.randint(0, 256, (1, To, SIZE, SIZE, 3), dtype=torch.uint8)}
    future = {"images/front": torch.randint(0, 256, (1, K, SIZE, SIZE, 3), dtype=torch.uint8)}
    actions = torch.rand(1, T, DA) * 2 - 1
    modes = {}
    with torch.inference_mode():
        modes["predict_action_chunk"] = timed(lambda: uwm.predict_action_chunk(obs), args.calls)
        for mode in ("policy", "forward_dynamics", "inverse_dynamics", "video", "joint"):
            modes[mode] = timed(lambda: uwm.sample(obs, mode, actions=actions, future=future, decode=True), args.calls)
    results["policies"]["uwm"] = {"parameters": sum(p.numel() for p in uwm.parameters()),
                                  "autoencoder_parameters": sum(p.numel() for p in uwm.autoencoder.parameters()),
                                  "config": {k: v for k, v in uwm.config.to_dict().items() if k != "autoencoder"},
                                  "latency": modes}

    pad = make_policy("pad", features, stats, autoencoder=ae, use_language=True).eval()
    obs = {"state": torch.rand(1, 1, DO) * 2 - 1,
           "images/front": torch.randint(0, 256, (1, 1, SIZE, SIZE, 3), dtype=torch.uint8),
           "task_embedding": torch.randn(1, 384)}
    with torch.inference_mode():
        latency = {"predict_action_chunk": timed(lambda: pad.predict_action_chunk(obs), args.calls),
                   "sample_decode": timed(lambda: pad.sample(obs, decode=True), args.calls)}
    results["policies"]["pad"] = {"parameters": sum(p.numel() for p in pad.parameters()),
                                  "config": {k: v for k, v in pad.config.to_dict().items() if k != "autoencoder"},
                                  "latency": latency}
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.inference_mode():
        results["autoencoder"] = {"encode_1_frame": timed(lambda: uwm.autoencoder.encode(x), args.calls),
                                  "decode_1_frame": timed(lambda: uwm.autoencoder.decode(uwm.autoencoder.encode(x)),
                                                          args.calls)}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
