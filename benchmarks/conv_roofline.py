"""How close float32 DiffusionPolicy training already is to this CPU's float32 limit; prints and writes JSON.

Issue #12 asks for float32 training >= 1.5x LeRobot's at the same architecture. Both run the same
ResNet-18 + U-Net through the same oneDNN kernels, so the question is how much of our step is left to
win at all. This script answers it from measurements on one machine:

1. The CPU's float32 matrix-multiply rate (`torch.mm` of 2048x2048 float32 matrices, the threads given):
   a practical peak for dense float32 arithmetic here (oneDNN's convolutions use the same FMA units).
2. Our training step at LeRobot's "small" size (benchmarks/policies_quick.py: one 96x96 camera with an
   84x84 crop, To=2, T=16, ResNet-18 with GroupNorm, U-Net (64, 128, 256), batch 64; forward + backward +
   clip + fused AdamW), its median time, and the multiply-adds of every convolution and linear layer in
   it, counted from the shapes they ran on (forward; the input gradient unless the input needs none; the
   weight gradient).
3. The profiler's split of that step's time into convolutions (forward and backward) and the rest.

From these: the rate our convolutions reach against the matmul's, and the step time if every multiply-add
ran at the best of the two rates and nothing else took any time (`step_s_at_best_rate`), i.e. the most any
float32 implementation of this network could gain over ours on this CPU (`max_speedup_over_ours`), and
that times our measured ratios to LeRobot (`--ratio-vs-lerobot`, results/policies_vs_lerobot.json: its
as-shipped part where present). The step runs as the Trainer runs it (`train.keep_freed_memory`).

Run alone on the machine:

    .venv/bin/python benchmarks/conv_roofline.py --threads 2 --out benchmarks/results/conv_roofline.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import machine, report  # noqa: E402
from benchmarks.policies_quick import batch, small_policy, training_step  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution", "aten::convolution",
            "aten::conv2d", "aten::conv1d")


def matmul_gflops(n: int, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(3):
        torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


class MacCounter:
    """Multiply-adds of every Conv1d/Conv2d/Linear call in a training step (forward + both gradients)."""

    def __init__(self, model: nn.Module):
        self.fwd = {"conv": 0, "linear": 0}
        self.bwd = {"conv": 0, "linear": 0}
        self.handles = [m.register_forward_hook(self.hook) for m in model.modules()
                        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]

    def hook(self, module: nn.Module, inputs, output) -> None:
        x = inputs[0]
        if isinstance(module, nn.Linear):
            kind, macs = "linear", output.numel() * module.in_features
        else:
            k = 1
            for s in module.kernel_size:
                k *= s
            kind, macs = "conv", output.numel() * (module.in_channels // module.groups) * k
        self.fwd[kind] += macs
        if module.weight.requires_grad:
            self.bwd[kind] += macs  # weight gradient
        if x.requires_grad:
            self.bwd[kind] += macs  # input gradient

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8, help="timed training steps (after two warm-up steps)")
    ap.add_argument("--no-keep-freed-memory", action="store_true",
                    help="leave glibc's malloc as it is (the Trainer's default keeps freed memory)")
    ap.add_argument("--ratio-vs-lerobot", type=Path, default=RESULTS / "policies_vs_lerobot.json",
                    help="the side-by-side result whose float32 ratios are carried forward")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if not args.no_keep_freed_memory:
        from robolearn.train.memory import keep_freed_memory

        keep_freed_memory()  # as the Trainer does (train.keep_freed_memory, on by default)
    peak = max(matmul_gflops(n) for n in (1024, 2048, 3072) for _ in range(2))

    policy = small_policy().train()
    step = training_step(policy, batch(args.batch))

    counter = MacCounter(policy)
    step()
    counter.remove()
    step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    # Self time of the kernels: convolutions are dispatched as mkldnn_convolution (forward) and
    # convolution_backward; our small-map weight gradient is a forward convolution inside backward.
    self_us = {}
    for ev in prof.key_averages():
        self_us[ev.key] = self_us.get(ev.key, 0.0) + ev.self_cpu_time_total
    total_us = sum(self_us.values())
    conv_us = sum(v for k, v in self_us.items() if k in CONV_OPS)
    conv_share = conv_us / total_us
    top = sorted(self_us.items(), key=lambda kv: -kv[1])[:12]

    macs = {k: counter.fwd[k] + counter.bwd[k] for k in counter.fwd}
    flops = {k: 2 * v for k, v in macs.items()}
    conv_s = conv_share * step_s
    conv_rate = flops["conv"] / 1e9 / conv_s
    # The fastest float32 rate seen on this machine: the matmul's, or our convolutions' where they beat it.
    best = max(peak, conv_rate)
    step_at_peak = (flops["conv"] + flops["linear"]) / (best * 1e9)
    out = {
        "benchmark": "benchmarks/conv_roofline.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                             if k in ("threads", "batch", "steps")),
        "machine": machine("torch", note="quiet machine: nothing else ran"),
        "threads": torch.get_num_threads(),
        "keep_freed_memory": not args.no_keep_freed_memory,
        "load_avg_1min_end": os.getloadavg()[0],
        "matmul_peak_gflops": round(peak, 1),
        "train_step_s": round(step_s, 3),
        "train_step_s_all": [round(t, 3) for t in times],
        "gflop_per_step": {k: round(v / 1e9, 2) for k, v in flops.items()},
        "conv_share_of_step_profiled": round(conv_share, 3),
        "conv_gflops_achieved": round(conv_rate, 1),
        "conv_rate_over_matmul_peak": round(conv_rate / peak, 3),
        "best_rate_gflops": round(best, 1),
        "step_s_at_best_rate": round(step_at_peak, 3),
        "max_speedup_over_ours": round(step_s / step_at_peak, 2),
        "profile_top_self_ms": {k: round(v / 1e3, 1) for k, v in top},
    }
    if args.ratio_vs_lerobot.is_file():
        # Our measured float32 ratios (the as-shipped ones where the file has them) times the most any
        # float32 implementation of this network could still gain over ours here.
        ref = json.loads(args.ratio_vs_lerobot.read_text())
        ours = ref.get("shipped", {}).get("ours_trainer") or ref["ours_float32"]
        out["ratio_vs_lerobot_measured"] = {k: ours[k] for k in ("train_speedup_vs_lerobot",
                                                                  "train_speedup_vs_lerobot_crop84")}
        out["ratio_vs_lerobot_upper_bound"] = {k: round(v * out["max_speedup_over_ours"], 2)
                                               for k, v in out["ratio_vs_lerobot_measured"].items()}
    report(out, args.out)


if __name__ == "__main__":
    main()
