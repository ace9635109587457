#!/usr/bin/env python
"""`robolearn view` benchmark: how fast the store page lists a 1000-episode store, in headless Chromium.

(a) table: a store of --episodes episodes (lengths 50..400, state/action/force, varied tasks, sources,
    statuses, dropped and late frames) served by the view; Chromium navigates to /store --loads times.
    Reported per load, from navigation start (the page's performance.now() origin): `table_ms` when the
    last row is in the DOM, `painted_ms` two animation frames later (it is on screen), `api_ms` the
    /api/store request (reading the meta/episodes columns and the JSON). The first load is reported
    apart (`cold`). Target: painted < 1000 ms.
(b) the same store on S3 (moto's server on loopback; the store is uploaded, then read by URL), unless
    --no-s3.
(c) frames: median latency of /api/episodes/<e>/frame/<key>/<i> over HTTP for a JPEG 224x224 camera (the
    stored bytes, no decoding) and a lossless one (decoded, PNG-encoded), sequential requests.

With --screenshots DIR it also saves the store, episode and run pages as PNGs (--store/--run pick what
they show; by default the synthetic test store and run of tests/view).

Usage: .venv/bin/python benchmarks/view.py [--episodes 1000] [--loads 5] [--no-s3] [--screenshots docs/view]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.machine import machine  # noqa: E402
from robolearn.store import EpisodeMeta, Feature, StoreWriter  # noqa: E402
from robolearn.view import ViewServer, make_app  # noqa: E402

TASKS = ["push the block to the goal", "open the drawer", "pick up the cube", "wipe the table", "stack the blocks"]
SOURCES = ["expert", "teleop", "policy:dp"]


def make_table_store(path: Path, episodes: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    feats = {"state": Feature((7,), "float32"), "force": Feature((6,), "float32"), "action": Feature((7,), "float32")}
    with StoreWriter(path, feats, fps=30.0, attrs={"env_id": "bench/view-v0"}) as w:
        for e in range(episodes):
            n = int(rng.integers(50, 401))
            frames = {k: rng.standard_normal((n, *f.shape)).astype(np.float32) for k, f in feats.items()}
            w.add_episode(frames, None, EpisodeMeta(
                task=TASKS[e % len(TASKS)], success=bool(rng.random() < 0.7), seed=e, source=SOURCES[e % 3],
                status=("ok", "ok", "ok", "ok", "truncated", "aborted")[e % 6], dropped_frames=int(rng.poisson(0.3)),
                late_frames=int(rng.poisson(1.0)), achieved_fps=float(30 - rng.random()), declared_fps=30.0))
    return path


def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def wait(driver, script: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = driver.execute_script(f"return ({script});")
        if v:
            return v
        time.sleep(0.01)
    raise TimeoutError(script)


def table_loads(driver, url: str, loads: int, episodes: int) -> dict:
    runs = []
    for _ in range(loads):
        driver.get(url + "/store")
        wait(driver, "window.RV_STORE && window.RV_STORE.paintedMs")
        r = driver.execute_script(
            "const e = performance.getEntriesByType('resource').find(x => x.name.endsWith('/api/store'));"
            "return {table_ms: RV_STORE.tableMs, painted_ms: RV_STORE.paintedMs, api_ms: e ? e.duration : null,"
            " script_ms: RV_STORE.marks.start, api_done_ms: RV_STORE.marks.api, rows_built_ms: RV_STORE.marks.built,"
            " rows: document.querySelectorAll('#episodes .body .row').length,"
            " last: document.querySelector('#episodes .body .row:last-child').dataset.ep};")
        assert r["rows"] == episodes and r["last"] == str(episodes - 1), r
        runs.append({k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()})
        wait(driver, "window.RV_STATS", 300)  # statistics follow the table: let them finish before the next load
    warm = runs[1:] or runs
    return {"cold": runs[0], "median_warm": {k: statistics.median(r[k] for r in warm) for k in ("table_ms", "painted_ms", "api_ms")},
            "loads": runs, "under_1s": all(r["painted_ms"] < 1000 for r in runs)}


def frame_latency(tmp: Path, n: int = 200) -> dict:
    rng = np.random.default_rng(1)
    out = {}
    for codec in ("jpeg", "zstd"):
        path = tmp / f"frames-{codec}.zarr"
        feats = {"images/front": Feature((224, 224, 3), "uint8", codec=codec), "action": Feature((2,), "float32")}
        with StoreWriter(path, feats, fps=30.0) as w:
            base = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
            imgs = np.stack([np.roll(base, i, axis=1) for i in range(n)])
            w.add_episode({"images/front": imgs, "action": np.zeros((n, 2), np.float32)}, None, EpisodeMeta())
        server = ViewServer(make_app(store=str(path))).start()
        try:
            times = []
            for i in range(n):
                t = time.perf_counter()
                with urllib.request.urlopen(f"{server.url}/api/episodes/0/frame/images/front/{i}", timeout=10) as r:
                    r.read()
                times.append((time.perf_counter() - t) * 1e3)
        finally:
            server.stop()
        out[codec] = {"frames": n, "median_ms": round(statistics.median(times), 2),
                      "p90_ms": round(float(np.percentile(times, 90)), 2)}
    return out


def s3_table(store: Path, driver, loads: int, episodes: int) -> dict:
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(creds)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
        opts = {"endpoint_url": endpoint, "key": "testing", "secret": "testing", "anon": False}
        s3fs.S3FileSystem(**opts).put(str(store), "bench/view.zarr", recursive=True)
        server = ViewServer(make_app(store="s3://bench/view.zarr", storage_options=opts)).start()
        try:
            return table_loads(driver, server.url, loads, episodes)
        finally:
            server.stop()
    finally:
        moto.stop()


def screenshots(driver, out: Path, store: str | None, run: str | None) -> list[str]:
    """store.png, episode.png, run.png of the given (or the synthetic test) store and run."""
    from tests.view import conftest as demo

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="view-shots-"))
    if store is None:
        store = str(demo.make_view_store(tmp / "demo.zarr"))
    if run is None:
        run = str(demo.make_view_run(tmp / "run", Path(store)))
    server = ViewServer(make_app(store=store, run=run)).start()
    written = []
    try:
        for name, page, ready in (("store", "/store", "window.RV_STATS"),
                                  ("episode", "/episode/0?frame=6", "window.RV && RV.ready && Object.keys(RV.images).every(k => RV.drawn[k] === 6)"),
                                  ("run", "/run", "window.RV_RUN && RV_RUN.ready")):
            driver.set_window_size(1400, 1400)
            driver.get(server.url + page)
            wait(driver, ready)
            time.sleep(0.5)
            path = out / f"{name}.png"
            driver.save_screenshot(str(path))
            written.append(str(path))
    finally:
        server.stop()
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--loads", type=int, default=5)
    p.add_argument("--no-s3", action="store_true")
    p.add_argument("--screenshots", type=Path, default=None)
    p.add_argument("--store", default=None, help="with --screenshots: the store to show (default: synthetic)")
    p.add_argument("--run", default=None, help="with --screenshots: the run to show (default: synthetic)")
    p.add_argument("--table-store", type=Path, default=None,
                   help="reuse a store an earlier run built (it keeps it in a temp folder it prints)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "view.json")
    args = p.parse_args()
    from importlib.metadata import version

    tmp = Path(tempfile.mkdtemp(prefix="view-bench-"))
    driver = chrome()
    try:
        if args.screenshots:
            print(json.dumps({"screenshots": screenshots(driver, args.screenshots, args.store, args.run)}))
            return
        t = time.perf_counter()
        store = args.table_store or make_table_store(tmp / "table.zarr", args.episodes)
        build_s = time.perf_counter() - t
        print(f"table store: {store}", flush=True)
        result = {"date": time.strftime("%Y-%m-%d"),
                  "machine": machine("starlette", "uvicorn", "selenium", "zarr",
                                     chromium=driver.capabilities.get("browserVersion")),
                  "args": {k: str(v) for k, v in vars(args).items()},
                  "store": {"episodes": args.episodes, "build_s": round(build_s, 1) if args.table_store is None else None,
                            "keys": ["state", "force", "action"]}}
        server = ViewServer(make_app(store=str(store))).start()
        try:
            result["table_local"] = table_loads(driver, server.url, args.loads, args.episodes)
        finally:
            server.stop()
        print(json.dumps({"table_local": result["table_local"]["median_warm"]}), flush=True)
        if not args.no_s3:
            result["table_s3_moto"] = s3_table(store, driver, args.loads, args.episodes)
            print(json.dumps({"table_s3_moto": result["table_s3_moto"]["median_warm"]}), flush=True)
        result["frames_http"] = frame_latency(tmp)
        result["chromium"] = driver.capabilities.get("browserVersion")
        result["versions"] = {p: version(p) for p in ("starlette", "uvicorn")}
    finally:
        driver.quit()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("table_local", "frames_http")}, indent=1))


if __name__ == "__main__":
    main()
