#!/usr/bin/env python
"""Store benchmarks: recording cost and sampler throughput, recorded in benchmarks/results/store.json.

(a) recording: 3 cameras 640x480 at 30 fps plus 500 Hz state (packed as the 17 samples per camera
    tick; the store has one row per tick) through `Recorder` for --record-s seconds, paced in real
    time. The Recorder streams frames into the store while the episode runs (JPEG encoding and chunk
    writes on its background thread). Reports process CPU (getrusage, all threads) in cores, add_tick
    latency, drops/late ticks, how far the background writer lagged (ticks queued), and how long after
    `save_episode` the episode is committed: `episode_committed_after_save_s` is the Recorder's own
    measure (save_episode call -> commit marker fsync'd, including any ticks still queued), and
    `close_after_save_s` adds the background thread's exit (save_episode -> close() returned).
(b) sampling: windows/s at batch 64 for 96x96 and 224x224 (2 cameras, To=2, T=16, 7-d state and
    action, frames from the LeRobot harness' SceneGen), for jpeg and zstd stores, in-memory cache on
    and off, DataLoader with 0 and 2 workers; plus the raw decode limit of the same frames (JPEG
    decodes/s with cv2 on the bytes already in memory, divided by the 4 frames a window needs).
(c) LeRobot side by side (--lerobot PY, the interpreter of a lerobot 0.4.4 venv): builds the harness
    dataset with the same frames and runs its dataloader_bench in the same session; otherwise the
    anchor's numbers (anchors/lerobot-baseline.md) are recorded and the ratio says so.

Usage: .venv/bin/python benchmarks/store.py [--record-s 20] [--seconds 10] [--episodes 50] [--lerobot PY]
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
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HARNESS = Path(os.environ.get("LEROBOT_BENCH", HERE.parents[1] / "shared" / "bench" / "lerobot"))
if not HARNESS.is_dir():
    HARNESS = Path("/work/shared/bench/lerobot")
sys.path.insert(0, str(HARNESS))
sys.path.insert(0, str(HERE.parent))

from _common import SceneGen, scene_action, scene_state  # noqa: E402

from robolearn.record import Recorder  # noqa: E402
from robolearn.store import EpisodeMeta, Feature, Store, StoreWriter  # noqa: E402

ANCHOR = {"source": "shared/anchors/lerobot-baseline.md section 2 (2 vCPU AMD EPYC VM, torchcodec)",
          "96": {"w0": 261, "w2": 428, "save_episode_s": 1.01}, "224": {"w0": 118, "w2": 198, "save_episode_s": 3.82}}


def machine() -> dict:
    info = {"nproc": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(terse=True),
            "loadavg_start": os.getloadavg()}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import cv2
    import zarr

    info |= {"zarr": zarr.__version__, "opencv": cv2.__version__}
    return info


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ----------------------------------------------------------------------------- (a) recording
def bench_record(seconds: float, root: Path) -> dict:
    fps, hz = 30.0, 500
    per_tick = int(np.ceil(hz / fps))  # 17 state samples per camera tick
    feats = {f"images/cam{c}": Feature((480, 640, 3), "uint8", "jpeg", 90) for c in range(3)}
    feats |= {"state": Feature((per_tick, 14), "float32"), "action": Feature((7,), "float32")}
    gens = [SceneGen(c, 480, 640) for c in range(3)]
    pool = [[g.frame(0, i) for i in range(30)] for g in gens]  # camera frames come from a driver, not us
    w = StoreWriter(root / "rec.zarr", feats, fps=fps)
    rec = Recorder(w, fps=fps, task="bench")
    n = int(seconds * fps)
    waits, backlog = [], []
    c0, t0 = cpu_s(), time.perf_counter()
    rec.start_episode(seed=0)
    start = time.monotonic()
    for i in range(n):
        deadline = start + i / fps
        while (now := time.monotonic()) < deadline:
            time.sleep(min(deadline - now, 0.002))
        obs = {f"images/cam{c}": pool[c][i % 30].copy() for c in range(3)}
        obs["state"] = np.full((per_tick, 14), i, np.float32)
        a = time.perf_counter()
        rec.add_tick(obs, np.zeros(7, np.float32), time.monotonic())
        waits.append(time.perf_counter() - a)
        backlog.append(rec.pending)
    c_rec, t_rec = cpu_s() - c0, time.perf_counter() - t0
    backlog_at_save = rec.pending
    a = time.perf_counter()
    rec.save_episode(success=True)
    save_call = time.perf_counter() - a
    rec.close()
    close_after = time.perf_counter() - a
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    w.close()
    s = Store.open(root / "rec.zarr")
    assert s.n_episodes == 1 and s.n_frames == n, (s.n_episodes, s.n_frames)
    ms = np.array(waits) * 1e3
    return {"seconds": seconds, "ticks": n, "cameras": "3 x 640x480 jpeg q90", "state": f"{hz} Hz x 14 (packed {per_tick}/tick)",
            "path": "streamed: frames written while recording, commit = last partial chunks + table row + marker",
            "cpu_cores_while_recording_and_committing": cpu / wall, "cpu_s": cpu, "wall_s": wall,
            "cpu_cores_while_recording": c_rec / t_rec,
            "add_tick_ms": {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
                            "max": float(ms.max())},
            "writer_backlog_ticks": {"max": int(max(backlog)), "mean": float(np.mean(backlog)),
                                     "at_save": int(backlog_at_save)},
            "dropped_frames": int(s.episodes["dropped_frames"][0]), "late_frames": int(s.episodes["late_frames"][0]),
            "achieved_fps": float(s.episodes["achieved_fps"][0]), "rate_flagged": bool(s.episodes["rate_flagged"][0]),
            "save_episode_call_s": save_call, "episode_committed_after_save_s": rec.commit_latency_s[0],
            "close_after_save_s": close_after, "store_bytes": s.nbytes()}


# ----------------------------------------------------------------------------- (b) sampling
def build_store(path: Path, size: int, codec: str, episodes: int, frames: int) -> float:
    feats = {"images/top": Feature((size, size, 3), "uint8", codec, 90),
             "images/wrist": Feature((size, size, 3), "uint8", codec, 90),
             "state": Feature((7,), "float32"), "action": Feature((7,), "float32")}
    gens = [SceneGen(0, size, size), SceneGen(1, size, size)]
    commit = []
    with StoreWriter(path, feats, fps=30) as w:
        for e in range(episodes):
            ep = {"images/top": np.stack([gens[0].frame(e, i) for i in range(frames)]),
                  "images/wrist": np.stack([gens[1].frame(e, i) for i in range(frames)]),
                  "state": np.stack([scene_state(e, i) for i in range(frames)]),
                  "action": np.stack([scene_action(e, i) for i in range(frames)])}
            t = time.perf_counter()
            w.add_episode(ep, None, EpisodeMeta(task="bench task", seed=e))
            commit.append(time.perf_counter() - t)
    return float(np.median(commit))


def windows_per_s(path: Path, cache: bool, workers: int, seconds: float) -> float:
    from robolearn.sampling import WindowSampler, make_loader

    s = WindowSampler(Store.open(path), ["images/top", "images/wrist", "state"], n_obs_steps=2, horizon=16,
                      cache_bytes=(8 << 30) if cache else 0)
    n, t0, warm, epoch = 0, None, time.perf_counter(), 0
    while True:
        for b in make_loader(s, 64, shuffle=True, seed=0, num_workers=workers, epoch=epoch):
            if t0 is None:
                if time.perf_counter() - warm > 2.0:
                    t0 = time.perf_counter()
                continue
            n += b["action"].shape[0]
            if time.perf_counter() - t0 >= seconds:
                return n / (time.perf_counter() - t0)
        epoch += 1


def decode_limit(path: Path, seconds: float) -> float:
    """JPEG decodes/s of the store's own chunk bytes (already in memory), one thread."""
    from robolearn.store.codecs import decode_jpeg

    chunks = sorted((path / "data" / "images" / "top" / "c").rglob("*"))
    blobs = [p.read_bytes() for p in chunks if p.is_file()][:2000]
    shape = Store.open(path).features["images/top"].shape
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for b in blobs[:200]:
            decode_jpeg(b, shape)
        n += 200
    return n / (time.perf_counter() - t0)


def bench_sampling(root: Path, sizes, episodes: int, frames: int, seconds: float) -> dict:
    out = {}
    for size in sizes:
        row = {}
        for codec in ("jpeg", "zstd"):
            path = root / f"scene{size}_{codec}.zarr"
            t = time.perf_counter()
            commit = build_store(path, size, codec, episodes, frames)
            row[codec] = {"build_s": time.perf_counter() - t, "episode_commit_s_median": commit,
                          "bytes": Store.open(path).nbytes()}
            for cache in (True, False):
                for workers in (0, 2):
                    wps = windows_per_s(path, cache, workers, seconds)
                    row[codec][f"cache_{'on' if cache else 'off'}_w{workers}"] = wps
                    print(f"{size} {codec} cache={cache} w={workers}: {wps:.0f} windows/s", flush=True)
        dps = decode_limit(root / f"scene{size}_jpeg.zarr", min(seconds, 5))
        row["jpeg_decode_frames_per_s_1thread"] = dps
        row["raw_decode_limit_windows_per_s_1thread"] = dps / 4  # 2 cameras x To=2 frames per window
        out[str(size)] = row
    return out


# ----------------------------------------------------------------------------- (c) LeRobot
def bench_lerobot(py: str, root: Path, size: int, episodes: int, frames: int, seconds: float) -> dict:
    ds = root / f"lerobot{size}"
    env = {**os.environ, "HF_DATASETS_CACHE": str(root / "hf_cache")}
    subprocess.run([py, str(HARNESS / "make_dataset.py"), "--root", str(ds), "--size", str(size), "--episodes",
                    str(episodes), "--frames", str(frames), "--out", str(root / f"make{size}.json")],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    # The harness' warm-up (>= 3 batches and >= 5 s) must fit in one epoch: it does not restart an
    # exhausted one. Keep it for datasets of 100+ batches (the default 50 x 200 frames has 157); a
    # smaller (smoke-test) dataset warms up on one batch only.
    batches = -(-episodes * frames // 64)
    warmup = ["--warmup-batches", "3", "--warmup-s", "5"] if batches >= 100 else \
        ["--warmup-batches", "1", "--warmup-s", "0"]
    subprocess.run([py, str(HARNESS / "dataloader_bench.py"), "--root", str(ds), "--repo-id", f"bench/scene{size}",
                    "--out", str(root / f"dl{size}.json"), "--seconds", str(seconds), "--repeats", "1", *warmup],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return {"make": json.loads((root / f"make{size}.json").read_text()),
            "dataloader": json.loads((root / f"dl{size}.json").read_text()), "warmup_args": warmup}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record-s", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per sampler configuration")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    ap.add_argument("--lerobot", default=None, help="python of a lerobot 0.4.4 venv for the side-by-side run")
    ap.add_argument("--skip-record", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "store.json")
    args = ap.parse_args()
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    root = Path(tempfile.mkdtemp(prefix="robolearn-bench-"))
    try:
        if not args.skip_record:
            result["record"] = bench_record(args.record_s, root)
            print(json.dumps(result["record"], indent=1), flush=True)
        result["sampling"] = bench_sampling(root, args.sizes, args.episodes, args.frames, args.seconds)
        if args.lerobot:
            result["lerobot"] = {str(s): bench_lerobot(args.lerobot, root, s, args.episodes, args.frames, args.seconds)
                                 for s in args.sizes}
        result["lerobot_anchor"] = ANCHOR
        ratio = {}
        for size in map(str, args.sizes):
            jpeg = result["sampling"][size]["jpeg"]
            best = max(v for k, v in jpeg.items() if k.startswith("cache_"))
            row = {"ours_best_jpeg_windows_per_s": best, "ours_jpeg_cache_off_w2": jpeg["cache_off_w2"],
                   "vs_anchor_w2": best / ANCHOR[size]["w2"] if size in ANCHOR else None}
            if args.lerobot:  # side by side: same frames, same machine, same session
                lr = result["lerobot"][size]
                lr_w2 = float(lr["dataloader"]["samples_per_s_median"]["2"])
                row |= {"lerobot_w2": lr_w2, "vs_lerobot_w2": best / lr_w2,
                        "cache_off_vs_lerobot_w2": jpeg["cache_off_w2"] / lr_w2,
                        "lerobot_save_episode_s_median": lr["make"].get("save_episode_s_median")}
            ratio[size] = row
        result["ratio"] = {"against": "side by side" if args.lerobot else "anchor (not side by side)", **ratio}
        result["machine"]["loadavg_end"] = os.getloadavg()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratio"], indent=1))


if __name__ == "__main__":
    main()
