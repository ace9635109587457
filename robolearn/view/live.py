"""Live sessions: a running loop (`teleop`, `deploy`, `record`) shown in the view app, with its episode keys as buttons.

The loop feeds a `LiveSession` from its own thread -- ``on_step(rec)`` with every `StepRecord` (the latest
camera frames by reference, tick lateness, missed ticks, per-stage latency from ``rec.timing``, new safety-filter
and watchdog counts as events), ``start_episode``/``end_episode``/``set_phase`` around episodes -- and polls
``poll()`` for the keys pressed in the browser (save / discard / re-record / stop, a thread-safe queue). The
app serves the page (``/live``), a snapshot (``/api/live``), each camera's newest frame as a JPEG encoded when
asked (``/api/live/frame/<key>``) and the keys (``POST /api/live/key/<key>``). Nothing is encoded or
summarised in the loop's thread: ``on_step`` stores references and a few numbers under a lock held for
microseconds.

>>> live = LiveSession("teleop robolearn/pusht", fps=10)
>>> server = start_live_view(live, LiveViewConfig(port=0), store="demo.zarr")  # doctest: +SKIP
>>> live.start_episode(0, seed=0)
>>> live.poll() is None  # no key pressed yet
True

Binding follows the policy server's rule (`robolearn serve`): loopback unless ``allow_remote``, and then
every request needs the token held in a key file of mode 0600 (created if missing, never overwritten;
default ``~/.config/robolearn/view.key``), printed once in the URL for the phone next to the robot.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robolearn.devices.protocols import TAKEOVER
from robolearn.errors import InvalidValueError

__all__ = ["EPISODE_KEYS", "LATENESS_EDGES_MS", "LiveSession", "LiveView", "LiveViewConfig", "start_live_view"]

EPISODE_KEYS = ("save", "discard", "rerecord", "quit")
"""What the buttons send back to the loop (the teleop keys of `robolearn.record.teleop`)."""
BUTTONS = {"save": "save", "discard": "discard", "rerecord": "re-record", "quit": "stop", TAKEOVER: "take over"}
"""Button labels; `robolearn.devices.protocols.TAKEOVER` is a button of a deploy session with a device to take over
with: it hands control over and back and never ends the episode (`LiveSession.poll_takeover`)."""
LATENESS_EDGES_MS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, math.inf)
"""Bins of the lateness histogram: how long after its deadline each tick fired."""
_JPEG_QUALITY = 85


@dataclass(frozen=True)
class LiveViewConfig:
    """Where a live session is served (`--view`, `--view-host`, `--view-port`, `--allow-remote`, `--view-key-file`)."""

    host: str = "127.0.0.1"
    """Address to bind: loopback unless `allow_remote`."""
    port: int = 8765
    """TCP port (0: a free one, printed)."""
    allow_remote: bool = False
    """Permit a host that is not loopback; every request then needs the token of `key_file`."""
    key_file: str | None = None
    """The token's key file (mode 0600, created if missing); None: `robolearn.view.server.default_key_file()`."""

    @classmethod
    def from_flags(cls, view: bool, host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False,
                   key_file: str | os.PathLike | None = None) -> LiveViewConfig | None:
        """The config of a command's `--view` flags (None without `--view`; the others alone are refused)."""
        if not view:
            named = [f for f, on in (("--view-host", host != "127.0.0.1"), ("--view-port", port != 8765),
                                     ("--allow-remote", allow_remote), ("--view-key-file", key_file is not None)) if on]
            if named:
                raise InvalidValueError(f"{', '.join(named)} configure the live view: add --view")
            return None
        return cls(host, int(port), bool(allow_remote), None if key_file is None else str(key_file))

    def check(self) -> tuple[str, str | None]:
        """(address to bind, token or None) -- checked before the loop opens anything: a host that is not
        loopback without `allow_remote` is refused; a remote one reads (or creates) the key file."""
        from robolearn.view.server import bind_and_token

        return bind_and_token(self.host, self.allow_remote, self.key_file)


def start_live_view(live: LiveSession, cfg: LiveViewConfig, store: str | None = None,
                    storage_options: dict | None = None, announce: Callable[[str], None] = print):
    """Serve `live` (and the store being recorded, when given) with the view app; returns the started
    `ViewServer` (stop it with ``.stop()``). ``live.url`` is the page's address (with the token when remote)."""
    from robolearn.view.app import make_app
    from robolearn.view.server import ViewServer

    bind, token = cfg.check()
    server = ViewServer(make_app(store, None, storage_options, token=token, live=live), bind, cfg.port).start()
    live.url = f"{server.url}/live" + (f"?token={token}" if token else "")
    announce(f"robolearn live view: {live.url}")
    return server


def _summary(v: np.ndarray) -> dict[str, float | int]:
    """n, last, p50, p99, max of samples in arrival order."""
    if len(v) == 0:
        return {"n": 0}
    return {"n": int(len(v)), "last": float(v[-1]), "p50": float(np.percentile(v, 50)),
            "p99": float(np.percentile(v, 99)), "max": float(v.max())}


class LiveView:
    """A command's live view: its session and server. Made before the loop opens anything (the address and
    key file are checked then); `serve` starts the server once the store exists; `close` stops it.

    >>> view = LiveView(LiveViewConfig(port=0), "deploy runs/reach", fps=10)  # doctest: +SKIP
    >>> view.serve(store="out.zarr"); ...; view.close()  # doctest: +SKIP
    """

    def __init__(self, cfg: LiveViewConfig, title: str, fps: float, *, session: LiveSession | None = None,
                 announce: Callable[[str], None] = print, keys: tuple[str, ...] = EPISODE_KEYS) -> None:
        cfg.check()
        self.cfg, self.announce = cfg, announce
        self.session = session if session is not None else LiveSession(title, fps, keys=keys)
        self.server = None

    def serve(self, store: str | os.PathLike | None = None) -> LiveSession:
        self.server = start_live_view(self.session, self.cfg, None if store is None else str(store),
                                      announce=self.announce)
        return self.session

    def close(self) -> None:
        self.session.set_phase("stopped")
        if self.server is not None:
            self.server.stop()
            self.server = None


class LiveSession:
    """What a running loop shows live, and the episode keys the browser sends back (module docstring).

    Args:
        title: what runs ("teleop robolearn/pusht", "deploy runs/reach").
        fps: the loop's tick rate (tick k is due at k / fps s after the episode's clock start).
        keys: the episode keys offered as buttons (a subset of `EPISODE_KEYS`, plus `TAKEOVER` during a deploy
            a person can take over: that button hands control to the device and back, `poll_takeover`).
        window: ticks kept for the timing summaries.
        max_events: safety/watchdog events kept.
    """

    def __init__(self, title: str, fps: float, *, keys: tuple[str, ...] = EPISODE_KEYS, window: int = 1000,
                 max_events: int = 200) -> None:
        if not fps > 0:
            raise InvalidValueError(f"live session fps must be > 0, got {fps}")
        unknown = [k for k in keys if k not in (*EPISODE_KEYS, TAKEOVER)]
        if unknown:
            raise InvalidValueError(f"unknown episode keys {unknown}; accepted: {', '.join(EPISODE_KEYS)}, "
                                    f"{TAKEOVER}")
        self.title, self.fps, self.keys = title, float(fps), tuple(keys)
        self.url: str | None = None
        self._lock = threading.Lock()
        self._pressed: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._takeovers: queue.SimpleQueue[str] = queue.SimpleQueue()  # the takeover button's presses
        self._frames: dict[str, tuple[int, int, int, np.ndarray]] = {}  # key -> (seq, episode, frame, array)
        self._encoded: dict[str, tuple[int, bytes]] = {}
        self._encode_lock = threading.Lock()
        self._lateness: deque[float] = deque(maxlen=window)
        self._tick_t: deque[float] = deque(maxlen=window)  # tick times (s), for the achieved rate
        self._stages: dict[str, deque[float]] = {}
        self._window = window
        self._events: deque[dict] = deque(maxlen=max_events)
        self._watched: dict[str, tuple[Callable[[], dict], Callable[[str], bool]]] = {}
        self._counters: dict[str, dict[str, float]] = {}
        self._history: deque[dict] = deque(maxlen=20)
        self._state: dict[str, Any] = {"phase": "starting", "episode": None, "seed": None, "frames": 0,
                                       "recording": False, "task": "", "saved": 0, "ticks": 0, "missed_ticks": 0,
                                       "episode_missed": 0}
        self._prev_tick: int | None = None
        self._seq = 0
        self._n_events = 0
        self._clock_now: Callable[[], float] | None = None
        self._ended_by: str | None = None

    # -- the loop's side (its own thread) --------------------------------------------------------------
    def attach(self, *, clock: Any = None, safety: Any = None, watchdog: Any = None) -> None:
        """What else to watch: the loop's `clock` (a real one adds the loop body's time, tick to step done,
        as a stage), its `SafetyFilter` (clipped or rejected actions become events) and `Watchdog` (trips)."""
        from robolearn.runtime.clock import VirtualClock

        if clock is not None and not isinstance(clock, VirtualClock):
            self._clock_now = clock.now
        if safety is not None:
            self.watch("safety", safety.stats, lambda k: k.startswith("clipped_") or k == "held")
        if watchdog is not None:
            self.watch("watchdog", lambda: {"trips": watchdog.n_trips}, lambda k: k == "trips")

    def watch(self, name: str, stats: Callable[[], dict], is_event: Callable[[str], bool]) -> None:
        """Read `stats()` (counters) after every step: each increase of a counter `is_event` accepts is an event.
        Counters that go down were reset (a new episode): counted from there."""
        self._watched[name] = (stats, is_event)
        self._counters[name] = {}

    def start_episode(self, index: int, seed: int | None = None, *, task: str = "", recording: bool = True) -> None:
        with self._lock:
            self._state.update(phase="recording" if recording else "running", episode=int(index), seed=seed,
                               frames=0, recording=recording, task=task, episode_missed=0)
            self._prev_tick = None

    def set_phase(self, phase: str) -> None:
        """"reset" (between episodes), "stopped" (the loop ended), or any word the page shows as it is."""
        with self._lock:
            self._state["phase"] = phase
            self._prev_tick = None

    def end_episode(self, event: str, *, saved: int, success: bool | None = None, status: str = "") -> None:
        """The episode ended with `event` (save/discard/rerecord/quit/abort); `saved`: episodes kept so far."""
        with self._lock:
            s = self._state
            self._history.appendleft({"episode": s["episode"], "seed": s["seed"], "event": event,
                                      "frames": s["frames"], "success": success, "status": status,
                                      "missed_ticks": s["episode_missed"]})
            s.update(saved=int(saved), phase="between episodes")

    def on_step(self, rec: Any) -> None:
        """One executed tick (`robolearn.runtime.StepRecord`): frames of its observation, lateness, missed ticks,
        stage latencies, and the watched counters."""
        done = self._clock_now() if self._clock_now is not None else None
        lateness_ms = max(0.0, (rec.t - rec.tick / self.fps) * 1e3)
        stages = _stage_ms(rec.timing) if rec.timing else {}
        if done is not None:
            stages["tick→step done"] = (done - rec.t) * 1e3
        events = self._counter_events()
        with self._lock:
            s = self._state
            self._seq += 1
            for key, value in rec.obs.items():
                if getattr(value, "ndim", 0) >= 2:
                    self._frames[key] = (self._seq, s["episode"], s["frames"], value)
            missed = 0 if self._prev_tick is None else max(0, rec.tick - self._prev_tick - 1)
            self._prev_tick = rec.tick
            s["ticks"] += 1
            s["missed_ticks"] += missed
            s["episode_missed"] += missed
            s["frames"] += 1
            self._lateness.append(lateness_ms)
            self._tick_t.append(float(rec.t))
            for name, ms in stages.items():
                self._stages.setdefault(name, deque(maxlen=self._window)).append(ms)
            for source, what, n in events:
                self._n_events += 1
                self._events.appendleft({"n": self._n_events, "source": source, "what": what, "count": n,
                                         "episode": s["episode"], "frame": s["frames"] - 1, "tick": int(rec.tick)})

    def _counter_events(self) -> list[tuple[str, str, int]]:
        out = []
        for name, (stats, is_event) in self._watched.items():
            now = {k: v for k, v in stats().items() if isinstance(v, (int, float))}
            last = self._counters[name]
            for k, v in now.items():
                before = last.get(k, 0)
                grew = v - before if v >= before else v  # went down: reset since
                if grew > 0 and is_event(k):
                    out.append((name, k, int(grew)))
            self._counters[name] = now
        return out

    def poll(self) -> str | None:
        """The next episode key pressed in the browser, or None (never blocks)."""
        try:
            return self._pressed.get_nowait()
        except queue.Empty:
            return None

    def poll_takeover(self) -> int:
        """How often the takeover button was pressed since the last call (never blocks)."""
        n = 0
        while True:
            try:
                self._takeovers.get_nowait()
            except queue.Empty:
                return n
            n += 1

    def stop_when(self) -> bool:
        """For `ControlLoop(stop_when=...)`: True once a key was pressed (kept for `ended_by`)."""
        key = self.poll()
        if key is not None:
            self._ended_by = key
        return key is not None

    def ended_by(self, default: str = "save") -> str:
        """The key that ended the last episode through `stop_when` (cleared), else `default` (it ended itself)."""
        key, self._ended_by = self._ended_by, None
        return key or default

    # -- the server's side --------------------------------------------------------------------------------
    def press(self, key: str) -> str:
        """Queue an episode key for the loop (`poll`); an unknown key is a UserError naming the accepted ones."""
        name = {"stop": "quit", "re-record": "rerecord", "take over": TAKEOVER}.get(key, key)
        if name not in self.keys:
            raise InvalidValueError(f"unknown episode key {key!r}; this session accepts "
                                    f"{', '.join(BUTTONS[k] for k in self.keys)}")
        (self._takeovers if name == TAKEOVER else self._pressed).put(name)
        return name

    def snapshot(self) -> dict:
        """Everything the live page shows, JSON-ready."""
        with self._lock:
            state = dict(self._state)
            cams = {k: {"seq": seq, "episode": ep, "frame": fr, "shape": list(a.shape), "dtype": str(a.dtype)}
                    for k, (seq, ep, fr, a) in self._frames.items()}
            lateness = np.asarray(self._lateness, dtype=np.float64)
            ticks_t = np.asarray(self._tick_t, dtype=np.float64)
            stages = {k: np.asarray(r, dtype=np.float64) for k, r in self._stages.items()}
            events, history = list(self._events), list(self._history)
            counters = {k: dict(v) for k, v in self._counters.items()}
        counts = np.histogram(lateness, bins=np.asarray(LATENESS_EDGES_MS))[0] if len(lateness) else \
            np.zeros(len(LATENESS_EDGES_MS) - 1, int)
        dt = np.diff(ticks_t)
        dt = dt[dt > 0]
        return {
            "title": self.title, "fps": self.fps, "keys": [{"key": k, "label": BUTTONS[k]} for k in self.keys],
            **state, "cameras": cams, "history": history, "events": events, "counters": counters,
            "timing": {
                "lateness_ms": {"edges": [e if math.isfinite(e) else None for e in LATENESS_EDGES_MS],
                                "counts": counts.tolist(), **_summary(lateness)},
                "achieved_hz": float(1.0 / np.median(dt)) if len(dt) else None,
                "stages_ms": {k: _summary(v) for k, v in stages.items()},
            },
        }

    def frame_jpeg(self, key: str) -> tuple[bytes, dict[str, int]]:
        """The newest frame of `key` as a JPEG and its (seq, episode, frame); encoded once per new frame, in the
        caller's (server) thread. Depth and float maps are colour-mapped over the frame's own range."""
        with self._lock:
            got = self._frames.get(key)
        if got is None:
            raise InvalidValueError(f"no frame of {key!r} yet; this session shows {', '.join(sorted(self._frames)) or 'no camera yet'}")
        seq, ep, fr, array = got
        meta = {"seq": seq, "episode": ep, "frame": fr}
        with self._encode_lock:
            cached = self._encoded.get(key)
            if cached is not None and cached[0] == seq:
                return cached[1], meta
            blob = _jpeg(key, np.asarray(array))
            self._encoded[key] = (seq, blob)
        return blob, meta


def _stage_ms(timing: dict[str, float]) -> dict[str, float]:
    """Per-stage latency (ms) from one tick's stage stamps (s, in order): each finite stamp minus the previous
    finite one ("request→inference_start"), and the first to the last ("obs_capture→applied")."""
    stamps = [(k, float(v)) for k, v in timing.items() if v is not None and math.isfinite(float(v))]
    out = {f"{a}→{b}": (tb - ta) * 1e3 for (a, ta), (b, tb) in zip(stamps, stamps[1:])}
    if len(stamps) > 2:
        out[f"{stamps[0][0]}→{stamps[-1][0]}"] = (stamps[-1][1] - stamps[0][1]) * 1e3
    return out


def _jpeg(key: str, frame: np.ndarray) -> bytes:
    import cv2

    from robolearn.view.data import colour_map

    if not (frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[-1] == 3):
        finite = frame[np.isfinite(frame)] if frame.dtype.kind == "f" else frame.reshape(-1)
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        frame = colour_map(frame, lo, hi if hi > lo else lo + 1.0)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a frame of {key} of shape {frame.shape}")
    return buf.tobytes()
