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
(d) uncached (issue 15, --uncached): sharded JPEG stores of the same frames, windows/s with the frame
    cache off (state and action stay in memory, as LeRobot keeps its parquet data) and every file of
    the store dropped from the OS page cache (fdatasync + posix_fadvise(DONTNEED)) after the warm-up,
    right before each timed pass; 0 and 2 DataLoader workers; local and on moto's S3 server (loopback;
    moto keeps objects in memory, so there the page cache plays no part); the one-file-per-frame
    layout alongside; LeRobot the same way (benchmarks/lerobot_uncached.py: its files dropped after its
    warm-up); files per camera and bytes per frame against LeRobot's AV1 files; the raw decode
    throughput of the same JPEG bytes (1 and 2 threads), the limit; and the write amplification of
    building the sharded store (bytes written / bytes stored for the image arrays).

Usage: .venv/bin/python benchmarks/store.py [--record-s 20] [--seconds 10] [--episodes 50] [--lerobot PY]
       .venv/bin/python benchmarks/store.py --uncached [--lerobot PY] [--sizes 96 224] [--no-s3]
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
sys.path.insert(0, str(HERE))

from _common import SceneGen, scene_action, scene_state  # noqa: E402
from pagecache import drop_page_cache  # noqa: E402

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
def build_store(path: Path, size: int, codec: str, episodes: int, frames: int, layout: str = "sharded") -> float:
    feats = {"images/top": Feature((size, size, 3), "uint8", codec, 90),
             "images/wrist": Feature((size, size, 3), "uint8", codec, 90),
             "state": Feature((7,), "float32"), "action": Feature((7,), "float32")}
    gens = [SceneGen(0, size, size), SceneGen(1, size, size)]
    commit = []
    with StoreWriter(path, feats, fps=30, frame_layout=layout) as w:
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


def decode_limit(path: Path, seconds: float, threads: int = 1) -> float:
    """JPEG decodes/s of the store's own frame bytes (already in memory), in `threads` threads."""
    from concurrent.futures import ThreadPoolExecutor

    from robolearn.store.codecs import decode_jpeg

    s = Store.open(path)
    blobs = s.chunk_bytes("images/top", 0, min(2000, s.n_frames))
    shape = s.features["images/top"].shape

    def run(part):
        for b in part:
            decode_jpeg(b, shape)

    n, t0 = 0, time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        while time.perf_counter() - t0 < seconds:
            list(pool.map(run, [blobs[k:200:threads] for k in range(threads)]))
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


# ----------------------------------------------------------------------------- (d) uncached
def uncached_windows_per_s(url: str, workers: int, seconds: float, drop: list[Path], storage_options=None,
                           warmup_batches: int = 3) -> dict:
    """Windows/s with the frame cache off; `drop` folders leave the page cache after the warm-up."""
    from robolearn.sampling import WindowSampler, make_loader

    store = Store.open(url, storage_options)
    low_dim = sum(store.n_frames * int(np.prod(f.shape)) * np.dtype(f.dtype).itemsize
                  for f in store.features.values() if not f.is_image)
    s = WindowSampler(store, ["images/top", "images/wrist", "state"], n_obs_steps=2, horizon=16, cache_bytes=low_dim)
    assert s.reads_store and "state" in s._cache and "images/top" not in s._cache

    def batches():
        epoch = 0
        while True:
            yield from make_loader(s, 64, shuffle=True, seed=0, num_workers=workers, epoch=epoch)
            epoch += 1

    it = batches()
    for _ in range(warmup_batches):
        next(it)
    dropped = drop_page_cache(drop)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += next(it)["action"].shape[0]
    el = time.perf_counter() - t0
    return {"windows_per_s": n / el, "windows": n, "elapsed_s": el, "files_dropped": dropped}


def camera_files(path: Path, key: str) -> int:
    return sum(1 for d in (path / "data" / key, path / "stage" / key) if d.is_dir()
               for p in d.rglob("*") if p.is_file() and p.name != "zarr.json")


class _CountWrites:
    """Counts the bytes the store writes per top-level array group (stage/, data/images/...)."""

    def __enter__(self):
        from robolearn.store.backend import SyncingLocalStore

        self.bytes: dict[str, int] = {}
        self._orig = orig = SyncingLocalStore.set
        counts = self.bytes

        async def counting(store, key, value):
            group = "stage" if key.startswith("stage/") else "shards" if key.startswith("data/images/") else "other"
            if not key.endswith("zarr.json"):
                counts[group] = counts.get(group, 0) + len(value)
            await orig(store, key, value)

        SyncingLocalStore.set = counting
        return self

    def __exit__(self, *exc):
        from robolearn.store.backend import SyncingLocalStore

        SyncingLocalStore.set = self._orig


def start_moto():
    from moto.server import ThreadedMotoServer
    import boto3

    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_EC2_METADATA_DISABLED": "true"}
    os.environ.update(creds)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
    return server, {"endpoint_url": endpoint, "key": "bench", "secret": "bench", "anon": False}


def upload(path: Path, url: str, opts: dict) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**{k: v for k, v in opts.items() if k != "endpoint_url"},
                           client_kwargs={"endpoint_url": opts["endpoint_url"]})
    fs.put(str(path), url.removeprefix("s3://"), recursive=True)


def s3_request_rate(url: str, opts: dict, requests: int = 400) -> dict:
    """Ranged GETs/s the moto server answers (4 KiB from one shard, all issued at once): the ceiling of
    the S3 runs, which need about one request per window's frame pair and camera."""
    import asyncio

    from zarr.abc.store import RangeByteRequest
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync as zsync

    st = Store.open(url, opts)
    arr = st.root["data/images/top"]
    key = f"{arr.path}/{arr.metadata.encode_chunk_key((0, 0, 0, 0))}"
    store, proto = arr.store_path.store, default_buffer_prototype()

    async def many():
        await asyncio.gather(*(store.get(key, proto, byte_range=RangeByteRequest(4096 * i, 4096 * (i + 1)))
                               for i in range(requests)))

    zsync(many())
    t0 = time.perf_counter()
    zsync(many())
    rate = requests / (time.perf_counter() - t0)
    return {"ranged_gets_per_s": rate, "windows_per_s_ceiling": rate / 2,
            "note": "a window needs ~2 requests (one per camera: frames t-1, t are one range)"}


def lerobot_files(ds: Path) -> dict:
    videos = [p for p in (ds / "videos").rglob("*") if p.is_file()]
    return {"files": sum(1 for p in ds.rglob("*") if p.is_file()), "video_files": len(videos),
            "video_bytes": sum(p.stat().st_size for p in videos)}


def bench_uncached(root: Path, sizes, episodes: int, frames: int, seconds: float, lerobot: str | None,
                   s3: bool) -> dict:
    out = {}
    server, opts = start_moto() if s3 else (None, None)
    try:
        for size in sizes:
            row: dict = {}
            for layout in ("sharded", "files"):
                path = root / f"u{size}_{layout}.zarr"
                with _CountWrites() as wc:
                    t = time.perf_counter()
                    commit = build_store(path, size, "jpeg", episodes, frames, layout)
                    build_s = time.perf_counter() - t
                st = Store.open(path)
                n = st.n_frames
                image_bytes = sum(p.stat().st_size for key in ("images/top", "images/wrist")
                                  for d in (path / "data" / key, path / "stage" / key) if d.is_dir()
                                  for p in d.rglob("*") if p.is_file() and p.name != "zarr.json")
                r = {"build_s": build_s, "episode_commit_s_median": commit, "frames_per_camera": n,
                     "files_per_camera": camera_files(path, "images/top"),
                     "frames_per_file": n / max(1, camera_files(path, "images/top")),
                     "files_total": sum(1 for p in path.rglob("*") if p.is_file()),
                     "image_bytes_per_frame": image_bytes / (2 * n), "store_bytes": st.nbytes()}
                if layout == "sharded":
                    r["shard_frames"] = int(st.root["data/images/top"].shards[0])
                    written = wc.bytes.get("stage", 0) + wc.bytes.get("shards", 0)
                    r["write_amplification"] = {"image_bytes_written": written, "image_bytes_stored": image_bytes,
                                                "ratio": written / image_bytes, "staged_bytes": wc.bytes.get("stage", 0),
                                                "shard_bytes": wc.bytes.get("shards", 0)}
                for w in (0, 2):
                    r[f"local_w{w}"] = uncached_windows_per_s(str(path), w, seconds, [path])
                    print(f"{size} {layout} local w{w}: {r[f'local_w{w}']['windows_per_s']:.0f} windows/s", flush=True)
                if s3 and layout == "sharded":
                    url = f"s3://bench/u{size}.zarr"
                    upload(path, url, opts)
                    r["s3_requests"] = s3_request_rate(url, opts)
                    for w in (0, 2):
                        r[f"s3_w{w}"] = uncached_windows_per_s(url, w, seconds, [], storage_options=opts)
                        print(f"{size} {layout} s3 w{w}: {r[f's3_w{w}']['windows_per_s']:.0f} windows/s", flush=True)
                row[layout] = r
            src = root / f"u{size}_sharded.zarr"
            d1, d2 = decode_limit(src, min(seconds, 5), 1), decode_limit(src, min(seconds, 5), 2)
            row["decode"] = {"jpeg_frames_per_s_1thread": d1, "jpeg_frames_per_s_2threads": d2,
                             "limit_windows_per_s_1thread": d1 / 4, "limit_windows_per_s_2threads": d2 / 4,
                             "note": "4 frames per window (2 cameras x To=2)"}
            if lerobot:
                row["lerobot"] = lerobot_uncached(lerobot, root, size, episodes, frames, seconds)
            out[str(size)] = row
    finally:
        if server is not None:
            server.stop()
    return out


def lerobot_uncached(py: str, root: Path, size: int, episodes: int, frames: int, seconds: float) -> dict:
    ds = root / f"lerobot{size}"
    cache = root / "hf_cache"
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache)}
    if not ds.exists():
        subprocess.run([py, str(HARNESS / "make_dataset.py"), "--root", str(ds), "--size", str(size), "--episodes",
                        str(episodes), "--frames", str(frames), "--out", str(root / f"make{size}.json")],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    res = {"make": json.loads((root / f"make{size}.json").read_text()), **lerobot_files(ds)}
    n = episodes * frames
    res["frames_per_camera"] = n
    res["video_files_per_camera"] = res["video_files"] / 2
    res["video_bytes_per_frame"] = res["video_bytes"] / (2 * n)
    for w in (0, 2):
        p = subprocess.run([py, str(HERE / "lerobot_uncached.py"), "--root", str(ds), "--repo-id", f"bench/scene{size}",
                            "--workers", str(w), "--seconds", str(seconds), "--drop", str(ds), str(cache)],
                           check=True, env=env, capture_output=True, text=True)
        res[f"w{w}"] = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{size} lerobot w{w}: {res[f'w{w}']['samples_per_s']:.0f} samples/s", flush=True)
    return res


def uncached_summary(u: dict) -> dict:
    """Each size's figures beside the issue's targets."""
    out = {}
    for size, row in u.items():
        sh, lim = row["sharded"], row["decode"]["limit_windows_per_s_1thread"]
        r = {"files_per_100_frames_per_camera": 100 / sh["frames_per_file"], "target_files_per_100_frames": 1.0,
             "image_bytes_per_frame": sh["image_bytes_per_frame"],
             "write_amplification": sh["write_amplification"]["ratio"],
             "raw_decode_limit_windows_per_s_1thread": lim}
        for w in (0, 2):
            ours = sh[f"local_w{w}"]["windows_per_s"]
            r[f"ours_local_w{w}"] = ours
            r[f"ours_local_w{w}_vs_decode_limit"] = ours / lim
            r[f"files_layout_local_w{w}"] = row["files"][f"local_w{w}"]["windows_per_s"]
            if f"s3_w{w}" in sh:
                r[f"ours_s3_w{w}"] = sh[f"s3_w{w}"]["windows_per_s"]
            if "lerobot" in row:
                lr = row["lerobot"][f"w{w}"]["samples_per_s"]
                r[f"lerobot_w{w}"] = lr
                r[f"vs_lerobot_w{w}"] = ours / lr
        if "s3_requests" in sh:
            r["moto_s3_windows_per_s_ceiling"] = sh["s3_requests"]["windows_per_s_ceiling"]
        if "lerobot" in row:
            r["lerobot_video_bytes_per_frame"] = row["lerobot"]["video_bytes_per_frame"]
            r["lerobot_files_per_camera"] = row["lerobot"]["video_files_per_camera"]
        r["targets"] = {"vs_lerobot": ">= 10", "vs_decode_limit": ">= 0.5", "files_per_100_frames_per_camera": "<= 1"}
        out[size] = r
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record-s", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per sampler configuration")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    ap.add_argument("--lerobot", default=None, help="python of a lerobot 0.4.4 venv for the side-by-side run")
    ap.add_argument("--skip-record", action="store_true")
    ap.add_argument("--uncached", action="store_true", help="only (d): the uncached, sharded comparison")
    ap.add_argument("--no-s3", action="store_true", help="(d) without the moto S3 runs")
    ap.add_argument("--out", type=Path, default=None,
                    help="default: results/store.json, with --uncached results/store_uncached.json")
    args = ap.parse_args()
    args.out = args.out or HERE / "results" / ("store_uncached.json" if args.uncached else "store.json")
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    root = Path(tempfile.mkdtemp(prefix="robolearn-bench-"))
    try:
        if args.uncached:
            result["uncached"] = bench_uncached(root, args.sizes, args.episodes, args.frames, args.seconds,
                                                args.lerobot, not args.no_s3)
            result["ratio"] = uncached_summary(result["uncached"])
        else:
            run_default(args, result, root)
        result["machine"]["loadavg_end"] = os.getloadavg()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratio"], indent=1))


def run_default(args, result: dict, root: Path) -> None:
    """(a)-(c): recording, sampling with the cache on and off, LeRobot's dataloader_bench."""
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


if __name__ == "__main__":
    main()
