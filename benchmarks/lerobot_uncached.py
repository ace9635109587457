#!/usr/bin/env python
"""LeRobot's DataLoader with the dataset's files dropped from the OS page cache before the timed pass.

Run with the interpreter of a lerobot 0.4.4 venv (benchmarks/store.py calls it once per measurement, in
a fresh process, as the harness' dataloader_bench does). It builds the dataset with the harness'
`build_dataset` (diffusion-policy delta_timestamps: 2 cameras and state at t-1, t; 16 actions) and the
DataLoader as lerobot-train does (batch 64, shuffle, workers not persistent), pulls warm-up batches,
then drops every file under --drop from the page cache (fdatasync + posix_fadvise(DONTNEED)) and counts
samples for --seconds. Prints one JSON object.

Usage: PY benchmarks/lerobot_uncached.py --root DS --repo-id bench/scene96 --workers 2 --seconds 10 --drop DS CACHE
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

HARNESS = Path(os.environ.get("LEROBOT_BENCH", Path(__file__).resolve().parents[2] / "shared" / "bench" / "lerobot"))
if not HARNESS.is_dir():
    HARNESS = Path("/work/shared/bench/lerobot")
sys.path.insert(0, str(HARNESS))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataloader_bench import build_dataset  # noqa: E402  (sets the offline environment, imports torch/lerobot)

import torch  # noqa: E402
from pagecache import drop_page_cache  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--repo-id", required=True)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup-batches", type=int, default=3)
    ap.add_argument("--drop", nargs="*", default=[])
    args = ap.parse_args()
    ds, _, _, _ = build_dataset(args.root, args.repo_id, None)
    dl = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=args.workers, pin_memory=False,
                                     drop_last=False, prefetch_factor=2 if args.workers > 0 else None)
    it = iter(dl)
    for _ in range(args.warmup_batches):
        next(it)
    dropped = drop_page_cache(args.drop or [args.root])
    n, restarted, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        try:
            b = next(it)
        except StopIteration:
            it, restarted = iter(dl), restarted + 1
            continue
        n += b["action"].shape[0]
    el = time.perf_counter() - t0
    print(json.dumps({"samples": n, "elapsed_s": el, "samples_per_s": n / el, "workers": args.workers,
                      "files_dropped": dropped, "epochs_restarted": restarted, "video_backend": ds.video_backend}))


if __name__ == "__main__":
    main()
