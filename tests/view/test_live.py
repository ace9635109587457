"""Live sessions: what a loop feeds a LiveSession, the routes serving it, the bind/key rule, and in headless
Chromium a sim loop in a thread whose live frame is shown and whose save button commits the episode."""

import json
import os
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from robolearn.errors import UserError
from robolearn.runtime.loop import StepRecord
from robolearn.view.live import LiveSession, LiveView, LiveViewConfig


def step(tick, t, obs=None, timing=None):
    return StepRecord(tick, t, obs or {}, np.zeros(2, np.float32), 0.0, {}, timing=timing or {})


class Counters:
    """A stand-in for SafetyFilter.stats(): counters the test bumps."""

    def __init__(self):
        self.values = {"calls": 0, "held": 0, "holds": 0, "clipped_velocity": 0}

    def stats(self):
        return dict(self.values)


def test_session_counts_lateness_missed_ticks_stages_and_events():
    live = LiveSession("test", fps=10)
    safety = Counters()
    live.watch("safety", safety.stats, lambda k: k.startswith("clipped_") or k == "held")
    live.start_episode(0, seed=7, task="reach")
    frame = np.full((8, 12, 3), (200, 40, 90), np.uint8)
    timing = {"obs_capture": 1.000, "request": 1.001, "inference_start": 1.003, "inference_end": 1.013,
              "delivery": 1.014, "applied": 1.020}
    for tick, late_ms in ((0, 0.02), (1, 0.3), (2, 3.0), (5, 0.07)):  # ticks 3 and 4 missed
        safety.values["calls"] += 1
        if tick == 2:
            safety.values["clipped_velocity"] += 2
            safety.values["holds"] += 1  # a hold is counted, not an event
        live.on_step(step(tick, tick / 10 + late_ms / 1e3, {"images/front": frame, "state": np.zeros(3)}, timing))
    snap = live.snapshot()
    assert snap["episode"] == 0 and snap["seed"] == 7 and snap["frames"] == 4 and snap["phase"] == "recording"
    assert snap["ticks"] == 4 and snap["missed_ticks"] == 2
    late = snap["timing"]["lateness_ms"]
    assert sum(late["counts"]) == 4 and late["n"] == 4 and late["max"] == pytest.approx(3.0, abs=1e-6)
    assert late["counts"][0] == 1 and late["counts"][1] == 1 and late["counts"][3] == 1 and late["counts"][6] == 1
    stages = snap["timing"]["stages_ms"]
    assert stages["inference_start→inference_end"]["p50"] == pytest.approx(10.0, abs=1e-6)
    assert stages["obs_capture→applied"]["last"] == pytest.approx(20.0, abs=1e-6) and stages["obs_capture→applied"]["n"] == 4
    assert [(e["source"], e["what"], e["count"], e["frame"], e["tick"]) for e in snap["events"]] == \
        [("safety", "clipped_velocity", 2, 2, 2)]
    assert snap["cameras"]["images/front"]["frame"] == 3 and "state" not in snap["cameras"]
    jpeg, meta = live.frame_jpeg("images/front")
    assert meta == {"seq": 4, "episode": 0, "frame": 3}
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(shown.astype(int) - frame).max() <= 4
    assert json.dumps(snap)  # JSON-ready
    # keys: queued in order, "stop" is quit, an unknown key is refused; stop_when keeps what ended the episode
    assert live.poll() is None
    live.press("save"), live.press("stop")
    assert live.stop_when() and live.ended_by() == "save" and live.ended_by() == "save"  # default once cleared
    assert live.poll() == "quit" and live.poll() is None
    with pytest.raises(UserError, match="unknown episode key 'jump'; this session accepts save, discard, re-record, stop"):
        live.press("jump")
    live.end_episode("save", saved=1, success=True)
    assert live.snapshot()["history"][0] == {"episode": 0, "seed": 7, "event": "save", "frames": 4, "success": True,
                                             "status": "", "missed_ticks": 2}
    with pytest.raises(UserError, match="unknown episode key 'takeover'"):
        live.press("takeover")  # a session without a device to take over with has no such button


def test_a_takeover_button_hands_control_without_ending_the_episode():
    live = LiveSession("deploy", fps=10, keys=("save", "quit", "takeover"))
    assert [k["label"] for k in live.snapshot()["keys"]] == ["save", "stop", "take over"]
    assert live.press("take over") == "takeover" and live.press("takeover") == "takeover"
    assert not live.stop_when() and live.poll() is None  # not an episode key
    assert live.poll_takeover() == 2 and live.poll_takeover() == 0
    live.press("save")
    assert live.poll_takeover() == 0 and live.stop_when() and live.ended_by() == "save"
    with pytest.raises(Exception, match="unknown episode keys \\['jump'\\]"):
        LiveSession("deploy", fps=10, keys=("save", "jump"))


def test_remote_binding_needs_allow_remote_and_a_private_key_file(tmp_path):
    with pytest.raises(UserError, match="not a loopback address.*--allow-remote"):
        LiveViewConfig(host="0.0.0.0").check()
    key = tmp_path / "view.key"
    key.write_text("ab" * 32 + "\n")
    os.chmod(key, 0o644)
    with pytest.raises(UserError, match="chmod 600"):
        LiveViewConfig(host="0.0.0.0", allow_remote=True, key_file=str(key)).check()
    os.chmod(key, 0o600)
    assert LiveViewConfig(host="0.0.0.0", allow_remote=True, key_file=str(key)).check() == ("0.0.0.0", "ab" * 32)
    made = tmp_path / "new" / "view.key"  # created 0600 when missing, then used
    bind, token = LiveViewConfig(host="0.0.0.0", allow_remote=True, key_file=str(made)).check()
    assert oct(made.stat().st_mode & 0o777) == "0o600" and token == made.read_text().strip()
    assert LiveViewConfig().check() == ("127.0.0.1", None)
    from robolearn.view.server import bind_and_token  # `robolearn view --allow-remote` follows the same rule

    assert bind_and_token("0.0.0.0", True, str(key)) == ("0.0.0.0", "ab" * 32)
    with pytest.raises(UserError, match="--allow-remote, --view-key-file configure the live view: add --view"):
        LiveViewConfig.from_flags(False, allow_remote=True, key_file="k")
    assert LiveViewConfig.from_flags(False) is None


def _request(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def test_routes_serve_the_snapshot_frames_and_take_keys_only_from_the_page():
    view = LiveView(LiveViewConfig(port=0), "routes", fps=10, announce=lambda line: None)
    live = view.session
    live.start_episode(3, seed=1)
    live.on_step(step(0, 0.0, {"images/front": np.full((6, 6, 3), 128, np.uint8)}))
    view.serve()
    try:
        base = live.url.rsplit("/live", 1)[0]
        status, body, _ = _request(f"{base}/api/live")
        assert status == 200 and json.loads(body)["episode"] == 3
        status, body, headers = _request(f"{base}/api/live/frame/images/front")
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and headers["X-Frame-Frame"] == "0"
        status, _, _ = _request(f"{base}/api/live/key/save", "POST")  # a form of another site cannot add the header
        assert status == 403 and live.poll() is None
        status, body, _ = _request(f"{base}/api/live/key/save", "POST", {"X-Robolearn-Live": "1"})
        assert status == 200 and json.loads(body) == {"queued": "save"} and live.poll() == "save"
        status, body, _ = _request(f"{base}/api/live/key/jump", "POST", {"X-Robolearn-Live": "1"})
        assert status == 404 and "unknown episode key" in json.loads(body)["error"]
        status, _, headers = _request(f"{base}/", "GET")
        assert status == 200  # redirected to the live page
    finally:
        view.close()
    assert live.snapshot()["phase"] == "stopped"


class Wave:
    """An action source: a slow sine on every joint, with a jump the safety filter clips every 15th tick."""

    def reset(self, seed=None):
        pass

    def act(self, obs, tick):
        a = np.full(3, 0.3 * np.sin(tick / 10), np.float32)
        return a + (2.0 if tick % 15 == 7 else 0.0)


def run_session(live, store, hz=20.0, max_steps=4000):
    """A recording session like `robolearn teleop --view`: a sim robot (FakeRobot + FakeCamera) on a real clock,
    every tick to the Recorder and the LiveSession; the live page's keys end episodes (save commits)."""
    from robolearn.devices import RobotEnv
    from robolearn.devices.fakes import FakeCamera, FakeRobot
    from robolearn.record.recorder import Recorder
    from robolearn.runtime import ControlLoop, RealClock, SafetyConfig, SafetyFilter
    from robolearn.store import StoreWriter, features_from_space

    env = RobotEnv(FakeRobot(), cameras=[FakeCamera("front", size=(48, 64))], control_hz=hz)
    env.connect()
    safety = SafetyFilter.for_env(env, SafetyConfig(max_relative_target=0.2))
    clock = RealClock(hz)
    writer = StoreWriter(store, features_from_space(env.observation_space, env.action_space, commanded=True), fps=hz)
    recorder = Recorder(writer, fps=hz, source="test:live")
    live.attach(clock=clock, safety=safety)

    def on_step(rec):
        recorder.add_step(rec)
        live.on_step(rec)

    loop = ControlLoop(env, Wave(), clock, on_step=on_step, max_steps=max_steps, safety=safety, stop_when=live.stop_when)
    events = []
    try:
        for n in range(3):
            recorder.start_episode(seed=n)
            live.start_episode(n, seed=n)
            loop.run_episode(seed=n)
            event = live.ended_by("save")
            events.append(event)
            if event == "save":
                recorder.save_episode(success=False)
                live.end_episode(event, saved=1)
                break
            recorder.discard_episode()
            live.end_episode(event, saved=0)
    finally:
        recorder.close()
        writer.close()
        env.close()
    return events


def test_browser_shows_a_live_frame_and_save_commits_the_episode(browser, tmp_path):
    from robolearn.store import Store
    from tests.view.test_pages import canvas_pixels, wait_for

    view = LiveView(LiveViewConfig(port=0), "test session", fps=20, announce=lambda line: None)
    live = view.session
    view.serve()
    store = tmp_path / "live.zarr"
    result = {}
    loop = threading.Thread(target=lambda: result.update(events=run_session(live, store)), daemon=True)
    loop.start()
    try:
        browser.get(live.url)
        drawn = wait_for(browser, "window.RV_LIVE && RV_LIVE.ready && RV_LIVE.drawn['images/front'] && "
                                  "RV_LIVE.drawn['images/front'].frame >= 3 && RV_LIVE.drawn['images/front']")
        pixels = canvas_pixels(browser, "images/front")
        frame = drawn["frame"]
        assert drawn["episode"] == 0 and pixels.shape == (48, 64, 3)
        assert browser.find_element("css selector", "[data-card='phase']").text == "recording"
        wait_for(browser, "RV_LIVE.snap.events.length > 0 && RV_LIVE.snap.timing.lateness_ms.n > 3")
        assert browser.find_element("css selector", "#events tbody td.warn").text.startswith("clipped_")
        assert browser.find_elements("css selector", "#stages tbody tr")  # the loop body's time per tick
        browser.find_element("id", "key-save").click()
        loop.join(20)
        assert not loop.is_alive() and result["events"] == ["save"]
        wait_for(browser, "RV_LIVE.snap.history.length === 1 && RV_LIVE.snap.saved === 1")
        assert browser.find_element("css selector", "#history tbody td:nth-child(3)").text == "save"
    finally:
        live.press("stop")  # a loop still running (a failed assert) ends at its next tick
        loop.join(20)
        view.close()
    s = Store.open(store)
    assert s.n_episodes == 1 and s.lengths[0] > frame
    frames = s.episode(0)["images/front"].astype(int)  # the frame the page showed is the one recorded at that index
    diff = [np.abs(pixels.astype(int) - frames[i]).mean() for i in (frame - 1, frame, frame + 1)]
    assert diff[1] < 6.0 and min(diff[0], diff[2]) > 20.0  # JPEG error only around the white digits
    assert np.abs(pixels[0, 0].astype(int) - frames[frame][0, 0]).max() <= 4
    assert s.episodes["status"].tolist() == [0]


def test_teleop_view_buttons_are_episode_keys(tmp_path, monkeypatch):
    """`robolearn teleop --view` (record_teleop): a scripted device idles on a real clock; the live page's POSTs
    discard the first episode and save the second, which is what the store keeps."""
    pytest.importorskip("gym_pusht")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from robolearn.record.teleop import record_teleop
    from robolearn.store import Store

    script = tmp_path / "idle.json"
    script.write_text(json.dumps({"device": "keyboard", "events": [], "idle_ticks": 3000}))
    live = LiveSession("teleop", fps=30)
    result = {}

    def run():
        result["summary"] = record_teleop("robolearn/pusht", tmp_path / "t.zarr", device=f"scripted:{script}",
                                          episodes=1, fps=30, clock="real", view=LiveViewConfig(port=0), live=live)

    loop = threading.Thread(target=run, daemon=True)
    loop.start()

    def press_after(frames, key, ended):
        """Press `key` once `ended` episodes have ended and the next one has `frames` frames."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            snap = live.snapshot()
            if len(snap["history"]) == ended and snap["frames"] >= frames and snap["phase"] == "recording":
                break
            time.sleep(0.02)
        status, body, _ = _request(live.url.replace("/live", f"/api/live/key/{key}"), "POST", {"X-Robolearn-Live": "1"})
        assert status == 200, body

    try:
        press_after(3, "discard", 0)
        press_after(4, "save", 1)
        loop.join(20)
    finally:
        live.press("stop")
        loop.join(20)
    summary = result["summary"]
    assert summary["episodes"] == 1 and summary["discarded"] == 1 and not summary["quit"]
    assert summary["live"].startswith("http://127.0.0.1:")
    store = Store.open(tmp_path / "t.zarr")
    assert store.n_episodes == 1 and store.episodes["seed"].tolist() == [1] and store.lengths[0] >= 4
    assert [h["event"] for h in live.snapshot()["history"]] == ["save", "discard"]
    assert live.snapshot()["phase"] == "stopped"


def test_record_and_teleop_take_the_view_flags():
    from typer.testing import CliRunner

    from robolearn.cli.main import app

    for command in ("record", "teleop"):
        res = CliRunner().invoke(app, [command, "--env", "robolearn/pusht", "--no-record", "--view-port", "9000"])
        assert res.exit_code == 2 and "--view-port configure the live view: add --view" in res.output
        res = CliRunner().invoke(app, [command, "--env", "robolearn/pusht", "--no-record", "--view",
                                       "--view-host", "0.0.0.0"])
        assert res.exit_code == 2 and "not a loopback address" in res.output and "--allow-remote" in res.output
