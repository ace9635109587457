"""A small store with every kind of key the view shows, a run folder, and a headless Chromium."""

import json
import os
import shutil

import numpy as np
import pytest

from robolearn.store import EpisodeMeta, Feature, StoreWriter

FEATURES = {
    "state": Feature((3,), "float32"),
    "images/front": Feature((16, 24, 3), "uint8"),
    "images/wrist": Feature((16, 16, 3), "uint8", codec="jpeg", quality=95),
    "depth/front": Feature((16, 24), "float32"),
    "tactile/finger": Feature((4, 6, 3), "float32"),  # a taxel grid of 3-axis forces: shown as |f| per taxel
    "force": Feature((6,), "float32"),
    "reward": Feature((), "float32"),
    "action": Feature((2,), "float32"),
    "action_commanded": Feature((2,), "float32"),
    "timing/inference_end": Feature((), "float64"),
}
LENGTHS = (12, 9, 15)
TASKS = ("push the block", "open the drawer", "push the block")
FPS = 10.0


def frame_colour(e: int, i: int) -> tuple[int, int, int]:
    """The flat colour of frame i of episode e in images/front: distinct for every (e, i) of the store."""
    return (40 + 60 * e, (7 * i) % 200 + 30, 200 - 10 * i % 150)


def episode(e: int, n: int) -> tuple[dict, dict]:
    i = np.arange(n, dtype=np.float32)
    front = np.zeros((n, 16, 24, 3), np.uint8)
    for j in range(n):
        front[j] = frame_colour(e, j)
    front[:, :4, :4] = 255  # a white corner: orientation is checked too
    wrist = np.zeros((n, 16, 16, 3), np.uint8)
    wrist[..., 2] = (i * 15).astype(np.uint8)[:, None, None]
    depth = np.broadcast_to(np.linspace(0.2, 1.5, 24, dtype=np.float32), (n, 16, 24)).copy() + i[:, None, None] * 0.01
    action = np.stack([np.sin(i / 3 + e), np.cos(i / 4)], 1).astype(np.float32)
    timing = np.full(n, np.nan)
    timing[::3] = 0.0
    t = 100.0 + e * 10 + np.arange(n) / FPS  # float64 seconds, like a monotonic clock
    frames = {"state": np.stack([e * 100 + i, i, np.full(n, e, np.float32)], 1), "images/front": front,
              "images/wrist": wrist, "depth/front": depth,
              "tactile/finger": np.broadcast_to((np.arange(24, dtype=np.float32) / 23).reshape(1, 4, 6, 1), (n, 4, 6, 3)).copy(), "force": np.tile(i[:, None], (1, 6)) * 0.5,
              "reward": (i == n - 1).astype(np.float32), "action": action,
              "action_commanded": (action * 1.2).astype(np.float32), "timing/inference_end": t + 0.004 + np.nan_to_num(timing)}
    frames["timing/inference_end"][np.isnan(timing)] = np.nan
    stamps = {k: t.copy() for k in frames}
    stamps["images/front"] = t - 0.012 + (np.arange(n) % 2) * 0.002  # a camera that lags 12 ms and jitters
    return frames, stamps


def make_view_store(path):
    """The store of these tests (three episodes of every kind of key) at `path`."""
    with StoreWriter(path, FEATURES, fps=FPS, attrs={"env_id": "robolearn/test-v0"}) as w:
        for e, n in enumerate(LENGTHS):
            frames, stamps = episode(e, n)
            w.add_episode(frames, stamps, EpisodeMeta(task=TASKS[e], success=e != 1, seed=e, source="expert" if e < 2 else "teleop",
                                                     status="ok" if e != 2 else "truncated", dropped_frames=3 * (e == 1),
                                                     late_frames=e, achieved_fps=9.5 + e * 0.2, start_time=100.0 + e * 10))
    return path


def make_view_run(run, view_store):
    """A run folder at `run` as `robolearn train` + `robolearn eval` leave it (two filmed episodes of three)."""
    from robolearn.eval.video import write_video

    (run / "eval" / "rollouts").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"policy": "diffusion", "env_id": "robolearn/test-v0",
                                                 "store": str(view_store), "experiment": {"train": {"steps": 50}}}))
    (run / "model.safetensors").write_bytes(b"")
    rows = [{"step": s, "loss": 1.0 / s, "lr": 1e-4, "samples_per_s": 100.0 + s} for s in range(5, 55, 5)]
    rows[4]["val_loss"], rows[9]["val_loss"] = 0.5, 0.1
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "train_summary.json").write_text(json.dumps({"steps": 50, "final_loss": 0.02, "samples_per_s": 150.0}))
    episodes = []
    for i in range(3):
        e = {"seed": i, "success": i != 1, "length": 6 + i, "reward": float(i != 1)}
        if i < 2:
            frames = [np.full((32, 32, 3), (200 * (i == 0), 200 * (i == 1), 60), np.uint8) for _ in range(e["length"] + 1)]
            write_video(run / "eval" / "rollouts" / f"episode_{i}.mp4", frames, fps=10)
            e["video"] = f"rollouts/episode_{i}.mp4"
        episodes.append(e)
    (run / "eval" / "eval.json").write_text(json.dumps({"env_id": "robolearn/test-v0", "n_episodes": 3, "success_rate": 2 / 3,
                                                        "ci95": [0.2, 0.94], "mean_length": 7.0, "mean_reward": 2 / 3,
                                                        "episodes": episodes}))
    return run


@pytest.fixture(scope="session")
def view_store(tmp_path_factory):
    return make_view_store(tmp_path_factory.mktemp("view") / "demo.zarr")


@pytest.fixture(scope="session")
def view_run(tmp_path_factory, view_store):
    return make_view_run(tmp_path_factory.mktemp("view") / "run", view_store)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by selenium. A missing browser fails the test, unless
    ROBOLEARN_SKIP_BROWSER=1 says to skip browser tests on this machine."""
    if os.environ.get("ROBOLEARN_SKIP_BROWSER") == "1":
        pytest.skip("ROBOLEARN_SKIP_BROWSER=1: browser tests skipped")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.fail(f"the browser tests need headless Chromium and its driver ({', '.join(missing)} missing): "
                    "apt-get install chromium chromium-driver (make install does it as root), or set "
                    "ROBOLEARN_SKIP_BROWSER=1 to skip them", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--force-device-scale-factor=1", "--disable-extensions", "--no-first-run", "--mute-audio"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def view_server(view_store, view_run):
    """The view of the run (with its store) on 127.0.0.1, a free port; stopped by its handle."""
    from robolearn.view import ViewServer, make_app

    server = ViewServer(make_app(store=str(view_store), run=view_run)).start()
    try:
        yield server
    finally:
        server.stop()
