"""The view's data layer and server, without a browser: what the API returns, frames, guards, the command."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from robolearn.cli.main import app as cli
from robolearn.errors import UserError
from robolearn.store import Store, StoreError
from robolearn.view import ViewServer, check_view_host, make_app, resolve_target
from robolearn.view.data import episode_detail, frame_image, store_stats, store_summary
from robolearn.view.runs import read_metrics, run_file, run_summary
from tests.store.test_s3 import BUCKET, s3  # noqa: F401  (s3: moto's server on loopback, a fixture)
from tests.view.conftest import LENGTHS, TASKS, episode, frame_colour

REPO = Path(__file__).resolve().parents[2]


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_store_summary_is_the_episode_table(view_store):
    s = store_summary(Store.open(view_store))
    assert (s["n_episodes"], s["n_frames"], s["fps"]) == (3, sum(LENGTHS), 10.0)
    e = s["episodes"]
    assert e["length"] == list(LENGTHS) and e["success"] == [1, 0, 1] and e["dropped_frames"] == [0, 3, 0]
    assert [s["tasks"][i] for i in e["task_index"]] == list(TASKS)
    assert [s["sources"][i] for i in e["source_index"]] == ["expert", "expert", "teleop"]
    assert [s["status_names"][str(c)] for c in e["status"]] == ["ok", "ok", "truncated"]
    kinds = {k: f["kind"] for k, f in s["features"].items()}
    assert kinds == {"state": "series", "images/front": "image", "images/wrist": "image", "depth/front": "map",
                     "tactile/finger": "map",
                     "force": "series", "reward": "series", "action": "series", "action_commanded": "series",
                     "timing/inference_end": "timing"}
    json.dumps(s, allow_nan=False)


def test_episode_detail_streams_and_timestamps(view_store):
    d = episode_detail(Store.open(view_store), 1)
    frames, stamps = episode(1, LENGTHS[1])
    assert d["length"] == 9 and d["row"]["task"] == "open the drawer" and d["row"]["source"] == "expert"
    assert set(d["frames"]) == {"images/front", "images/wrist", "depth/front", "tactile/finger"}
    np.testing.assert_allclose(np.array(d["series"]["state"]["values"]).T, frames["state"])
    np.testing.assert_allclose(d["series"]["reward"]["values"][0], frames["reward"])
    timing = d["series"]["timing/inference_end"]["values"][0]  # ms after the tick's stamp; null where it did not run
    assert [v is None for v in timing] == [i % 3 != 0 for i in range(9)]
    assert all(abs(v - 4.0) < 1e-6 for v in timing if v is not None)
    cam = d["timestamps"]["images/front"]
    assert cam["offset_to"] == "action" and abs(cam["offset_mean_ms"] - (-12 + 2 * 4 / 9)) < 1e-6  # -12 ms, +2 on odd frames
    assert abs(cam["jitter_ms"] - 2.0) < 1e-6 and cam["gaps"] == 0 and cam["count"] == 9
    assert abs(d["timestamps"]["action"]["mean_dt_ms"] - 100.0) < 1e-6 and d["timestamps"]["action"]["jitter_ms"] < 1e-6
    json.dumps(d, allow_nan=False)
    with pytest.raises(StoreError, match="episode 3 does not exist: .* has 3 episodes"):
        episode_detail(Store.open(view_store), 3)


def test_frames_by_index(view_store):
    store = Store.open(view_store)
    blob, media = frame_image(store, "images/front", 1, 5)  # lossless: a PNG of exactly the stored frame
    assert media == "image/png"
    img = cv2.cvtColor(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(img, episode(1, LENGTHS[1])[0]["images/front"][5])
    assert tuple(img[8, 12]) == frame_colour(1, 5)
    blob, media = frame_image(store, "images/wrist", 2, 4)  # JPEG: the stored chunk, byte for byte
    first = int(store.episode_starts[2])
    assert media == "image/jpeg" and blob == store.chunk_bytes("images/wrist", first + 4, first + 5)[0]
    blob, media = frame_image(store, "depth/front", 0, 0)  # colour-mapped: left (near) dark, right (far) bright
    depth = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    assert media == "image/png" and depth.shape == (16, 24, 3) and depth[8, 23].sum() > depth[8, 0].sum() + 200
    blob, media = frame_image(store, "tactile/finger", 0, 0)  # |f| per taxel, one pixel per taxel
    taxels = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert media == "image/png" and taxels.shape == (4, 6, 3) and taxels[3, 5].sum() > taxels[0, 0].sum() + 200
    with pytest.raises(StoreError, match="key 'state' is not an image or map"):
        frame_image(store, "state", 0, 0)
    with pytest.raises(StoreError, match="frame 9 does not exist: episode 1 has 9 frames"):
        frame_image(store, "images/front", 1, 9)
    with pytest.raises(StoreError, match="unknown key 'images/side'"):
        frame_image(store, "images/side", 0, 0)


def test_store_stats_histograms(view_store):
    store = Store.open(view_store)
    s = store_stats(store)
    assert s["episodes"] == 3 and s["status"] == {"ok": 2, "aborted": 0, "truncated": 1} and s["sampled_rows"] is None
    assert s["tasks"] == {"push the block": 2, "open the drawer": 1}
    state = s["keys"]["state"]["dims"]
    assert len(state) == 3 and all(sum(h["counts"]) == sum(LENGTHS) for h in state)
    assert state[2]["min"] == 0 and state[2]["max"] == 2
    assert sum(s["keys"]["timing/inference_end"]["dims"][0]["counts"]) == sum((n + 2) // 3 for n in LENGTHS)  # NaN left out
    assert "images/front" not in s["keys"] or "dims" not in s["keys"]["images/front"]
    sampled = store_stats(store, max_rows=32)
    assert sampled["sampled_rows"] == 32 and sum(sampled["keys"]["force"]["dims"][0]["counts"]) == 32


def test_run_summary(view_run):
    r = run_summary(view_run)
    assert r["config"]["policy"] == "diffusion" and r["metrics"]["step"] == list(range(5, 55, 5))
    assert r["metrics"]["val_loss"] == [None] * 4 + [0.5] + [None] * 4 + [0.1]
    (ev,) = r["evaluations"]
    assert ev["folder"] == "eval" and ev["tiled_url"] is None
    assert [e["video_url"] for e in ev["episodes"]] == ["/api/run/file/eval/rollouts/episode_0.mp4",
                                                        "/api/run/file/eval/rollouts/episode_1.mp4", None]
    assert run_file(view_run, "eval/rollouts/episode_1.mp4").stat().st_size > 0
    (view_run.parent / "outside.json").write_text("{}")
    assert run_file(view_run, "eval/../config.json") == (view_run / "config.json").resolve()
    for bad in ("../outside.json", "model.safetensors", "eval/nothing.mp4", "/etc/passwd"):
        with pytest.raises(UserError, match="is served from the run"):
            run_file(view_run, bad)


def test_read_metrics_skips_a_torn_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": NaN}\n{"step": 3, "lo')
    assert read_metrics(tmp_path / "metrics.jsonl") == {"step": [1, 2], "loss": [2.0, None]}


def test_server_routes_and_loopback_guard(view_server, view_store):
    status, headers, body = get(view_server.url + "/api/store")
    assert status == 200 and json.loads(body)["n_episodes"] == 3 and json.loads(body)["run"] is True
    status, headers, body = get(view_server.url + "/api/episodes/0/frame/images/wrist/2")
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    status, _, body = get(view_server.url + "/api/episodes/0/frame/images/front/99")
    assert status == 404 and "frame 99 does not exist" in json.loads(body)["error"]
    status, headers, body = get(view_server.url + "/api/run/file/eval/rollouts/episode_0.mp4", {"Range": "bytes=0-9"})
    assert status == 206 and len(body) == 10  # <video> seeks with range requests
    assert get(view_server.url + "/api/run/file/model.safetensors")[0] == 404
    status, _, body = get(view_server.url + "/api/store", {"Host": "attacker.example"})
    assert status == 403 and b"not a loopback name" in body  # a page elsewhere cannot read it by DNS rebinding
    for page in ("/store", "/episode/1", "/run", "/static/vendor/uPlot.iife.min.js", "/static/vendor/uPlot.LICENSE"):
        assert get(view_server.url + page)[0] == 200


def test_the_table_shows_episodes_committed_since(tmp_path):
    from robolearn.store import EpisodeMeta, StoreWriter
    from tests.view.conftest import make_view_store

    path = make_view_store(tmp_path / "growing.zarr")
    server = ViewServer(make_app(store=str(path))).start()
    try:
        assert json.loads(get(server.url + "/api/store")[2])["n_episodes"] == 3
        with StoreWriter(path, resume=True) as w:
            frames, stamps = episode(3, 4)
            w.add_episode(frames, stamps, EpisodeMeta(task="new task"))
        table = json.loads(get(server.url + "/api/store")[2])
        assert table["n_episodes"] == 4 and table["episodes"]["length"][-1] == 4 and "new task" in table["tasks"]
        assert get(server.url + "/api/episodes/3/frame/images/front/3")[0] == 200
    finally:
        server.stop()


def test_remote_view_needs_its_token(view_store):
    server = ViewServer(make_app(store=str(view_store), token="s3cret-token")).start()
    try:
        assert get(server.url + "/api/store")[0] == 401
        assert get(server.url + "/api/store?token=wrong")[0] == 401
        status, headers, _ = get(server.url + "/store?token=s3cret-token", {"Host": "192.168.1.20:8765"})
        assert status == 200 and "robolearn_view_token=s3cret-token" in headers["set-cookie"]
        assert get(server.url + "/api/store", {"Cookie": "robolearn_view_token=s3cret-token"})[0] == 200
        assert get(server.url + "/api/store", {"Authorization": "Bearer s3cret-token"})[0] == 200
    finally:
        server.stop()


def test_host_and_target_checks(view_store, view_run, tmp_path):
    assert check_view_host("localhost", False) == "127.0.0.1" and check_view_host("::1", False) == "::1"
    with pytest.raises(UserError, match="--host 0.0.0.0 is not a loopback address; .* unless --allow-remote"):
        check_view_host("0.0.0.0", False)
    assert check_view_host("0.0.0.0", True) == "0.0.0.0"
    with pytest.raises(UserError, match="'myhost' is not an IP address"):
        check_view_host("myhost", True)
    assert resolve_target(str(view_store)) == (str(view_store), None)
    assert resolve_target(str(view_run)) == (str(view_store), view_run)  # the run's store comes along
    assert resolve_target(str(view_run / "eval")) == (None, view_run / "eval")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="is neither a robolearn store nor a run .*it holds 1 file"):
        resolve_target(str(tmp_path))
    with pytest.raises(UserError, match="no store or run at .*missing: the path does not exist"):
        resolve_target(str(tmp_path / "missing"))


def test_cli_refuses_a_remote_host_without_allow_remote(view_store):
    res = CliRunner().invoke(cli, ["view", str(view_store), "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "--host 0.0.0.0 is not a loopback address" in " ".join(res.output.split())


def test_cli_serves_until_sigterm(view_store):
    """`robolearn view STORE --port 0 --json` prints its URL, serves, and stops on SIGTERM with a summary."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "robolearn.cli.main", "view", str(view_store), "--port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "http://" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
        assert "robolearn view:" in line and "http://127.0.0.1:" in line, line
        url = line.split(" on ", 1)[1].split()[0].rstrip("/")
        status, _, body = get(url + "/api/store")
        assert status == 200 and json.loads(body)["n_episodes"] == 3
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        summary = json.loads(out.strip().splitlines()[-1])
        assert proc.returncode == 0 and summary["store"] == str(view_store) and summary["port"] == int(url.rsplit(":", 1)[1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)



def test_view_of_a_store_on_s3(tmp_path, s3):
    """The same pages from an s3:// store (moto's server on loopback): table, episode, a JPEG frame by index."""
    import s3fs

    from tests.view.conftest import make_view_store

    local = make_view_store(tmp_path / "local.zarr")
    s3fs.S3FileSystem(**s3).put(str(local), f"{BUCKET}/view.zarr", recursive=True)
    url = f"s3://{BUCKET}/view.zarr"
    server = ViewServer(make_app(store=url, storage_options=s3)).start()
    try:
        table = json.loads(get(server.url + "/api/store")[2])
        assert table["path"] == url and table["episodes"]["length"] == list(LENGTHS)
        detail = json.loads(get(server.url + "/api/episodes/2")[2])
        assert detail["row"]["status_name"] == "truncated" and len(detail["series"]["state"]["values"][0]) == LENGTHS[2]
        status, headers, blob = get(server.url + "/api/episodes/2/frame/images/wrist/4")
        first = int(Store.open(local).episode_starts[2])
        assert status == 200 and blob == Store.open(local).chunk_bytes("images/wrist", first + 4, first + 5)[0]
    finally:
        server.stop()
