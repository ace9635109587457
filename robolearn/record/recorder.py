"""Recorder: takes one tick at a time from a control loop and streams episodes into a store.

Ticks are handed to a background thread in the caller's thread (a queue put); the background thread
validates them, encodes them and writes them into the store's arrays while the episode is still being
recorded (`StoreWriter.begin_episode`), so `save_episode` only leaves the commit itself to do (the last
partial chunks, the episode's table row and the commit marker): the episode is committed a few tens of
milliseconds after `save_episode`, whatever its length. A control loop never waits for the encoder or the
disk (tests/record check that `add_tick` stays under 1 ms with three 640x480 cameras while frames are
written). `discard_episode` (and re-recording) drops what was streamed: the store's arrays are cut back to
the last committed episode. Arrays handed to `add_tick` are kept by reference until they are written (a
fraction of a second): hand over a fresh array each tick, never a buffer reused later.

What a tick records (the store's rules: `robolearn.store.layout`):
- each observation key with its own capture stamp (`stamps[key]`, from the env's ``info["timestamps"]``),
  the tick time `t` for a key the env does not stamp;
- `action`: the action actually applied, stamped at its application (`stamps["action"]`, else `t`);
- `action_commanded`, when the store has that key (created for filtered recording): what the source asked
  for, stamped like `action`; every tick of such a store must give it;
- `timing/<stage>` for each stage the store declares: the tick's `timing[stage]`, NaN when absent (a stage
  that did not run on that tick), stamped like `action`; stages the store does not declare are not kept;
- `intervention`, when the store has that key (`robolearn deploy --teleop`): whether a person drove that tick;
  each committed episode's extra then counts its `takeovers` and `intervention_steps`.

How an episode ends: `save_episode(success, status=...)` commits it; `discard_episode` drops it (the
operator threw it away: nothing of it was wanted); `abort_episode(reason)` commits what was recorded with
status "aborted" -- recording stopped on a fault (an unplugged device, a loop error), so nothing recorded is
lost, and samplers skip it unless asked. An episode without ticks is never committed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from robolearn.spaces import ACTION, ACTION_COMMANDED, INTERVENTION, TIMING
from robolearn.store import EpisodeMeta, StoreWriter
from robolearn.store.intervention import takeover_count
from robolearn.store.layout import status_code

_MAX_BLOCK_TICKS = 64  # ticks written in one block at most (bounds the memory of one np.stack)


@dataclass
class _Episode:
    """The background thread's view of the episode being recorded."""

    meta: EpisodeMeta
    stream: object = None  # EpisodeStream, opened at the first tick
    action_stamps: list[float] = field(default_factory=list)
    interventions: list[bool] = field(default_factory=list)
    failed: bool = False  # a block could not be written: the episode is dropped, the error surfaced


def achieved_rate(stamps: np.ndarray) -> float:
    return float((len(stamps) - 1) / (stamps[-1] - stamps[0])) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0


def tick_counters(stamps: np.ndarray, fps: float) -> tuple[int, int]:
    """(late, dropped) from tick times at a declared fps.

    late: ticks that come more than one period after their due time, i.e. more than 1.5 periods
    after the previous tick (half a period of slack absorbs ordinary jitter);
    dropped: ticks missing from the gaps, round(gap / period) - 1 for each gap.
    """
    if len(stamps) < 2 or fps <= 0:
        return 0, 0
    gaps = np.diff(np.asarray(stamps, dtype=np.float64)) * fps  # in periods
    late = int(np.count_nonzero(gaps > 1.5))
    dropped = int(np.maximum(np.rint(gaps) - 1, 0).sum())
    return late, dropped


def loop_status(result, max_steps: int | None) -> str:
    """An episode's status from a `ControlLoop` run (`EpisodeResult`): "truncated" when the loop's own step
    budget stopped it before the env ended it (terminated, or the env's time limit), else "ok"."""
    cut = max_steps is not None and result.steps >= max_steps and not (result.terminated or result.truncated)
    return "truncated" if cut else "ok"


class Settled(NamedTuple):
    """What an episode key did to the episode that just ended (`settle_episode`)."""

    saved: bool
    """Kept: saved to the recorder (when there is one) and counted in ``counts["episodes"]``."""
    next_seed: bool
    """The next episode takes the next seed (saved or discarded); False after a re-record (the same seed
    again) or a quit."""
    quit: bool
    """The operator ended the session: the caller stops after this episode."""


def settle_episode(event: str, kept: bool, recorder: Recorder | None, counts: dict[str, int],
                   tally: Mapping[str, int] | None = None, **save: Any) -> Settled:
    """The episode keys' one rule once an episode has ended (teleop and robot recording, `robolearn deploy`):

    - ``save`` with something to keep (``kept``; an env that ended the episode itself saves too):
      ``recorder.save_episode(**save)``; ``counts["episodes"]`` + 1 and each ``tally`` count (frames,
      successes) added; next seed.
    - ``rerecord``: dropped, ``counts["rerecorded"]`` + 1; the same seed again.
    - ``quit``: dropped; the session ends.
    - anything else (``discard``, a save with nothing recorded yet): dropped, ``counts["discarded"]`` + 1;
      next seed.

    Example::

        done = settle_episode("save", kept=frames > 0, recorder=rec, counts=counts, tally={"frames": frames},
                              success=True, status="ok")
        n += done.next_seed
    """
    if event == "save" and kept:
        if recorder is not None:
            recorder.save_episode(**save)
        counts["episodes"] += 1
        for key, value in (tally or {}).items():
            counts[key] += value
        return Settled(saved=True, next_seed=True, quit=False)
    if recorder is not None:
        recorder.discard_episode()
    if event == "rerecord":
        counts["rerecorded"] += 1
        return Settled(saved=False, next_seed=False, quit=False)
    if event == "quit":
        return Settled(saved=False, next_seed=False, quit=True)
    counts["discarded"] += 1
    return Settled(saved=False, next_seed=True, quit=False)


def tick_of(rec) -> dict:
    """`Recorder.add_tick`'s arguments for a `ControlLoop` tick (a `StepRecord`): its observation with the
    stamps it came with, the applied action stamped at its application (the env's ``info["timestamps"]
    ["action"]``, else the tick time), the commanded action and the loop timing. Plain values (no env
    info), so ticks recorded on a Ray actor travel to the driver's Recorder as they are."""
    stamps = dict(rec.obs_timestamps)
    applied_at = (rec.info.get("timestamps") or {}).get(ACTION)
    if applied_at is not None:
        stamps[ACTION] = float(applied_at)
    return {"obs": rec.obs, "action": rec.action, "t": rec.t, "stamps": stamps, "commanded": rec.commanded,
            "timing": dict(rec.timing), "intervention": bool(rec.intervention)}


class Recorder:
    """Episode events: `start_episode`, `add_tick` per control tick, then `save_episode` or
    `discard_episode` (re-record = discard, then start again). `close()` waits for pending commits.

    `commit_latency_s` lists, per committed episode, the seconds from `save_episode` to its commit.

    `aborted` lists (episode index, reason) of the episodes committed by `abort_episode`.

    >>> rec = Recorder(writer, fps=10, task="push the block")  # doctest: +SKIP
    >>> rec.start_episode(seed=3); rec.add_tick(obs, action_sent, t); rec.save_episode(success=True)  # doctest: +SKIP
    >>> loop = ControlLoop(env, source, clock, on_step=rec.add_step)  # doctest: +SKIP
    """

    def __init__(self, writer: StoreWriter, fps: float, task: str = "", source: str = ""):
        self.writer, self.fps, self.task, self.source = writer, float(fps), task, source
        self.commanded = ACTION_COMMANDED in writer.features
        self.timing_stages = {k[len(TIMING):]: k for k in writer.features if k.startswith(TIMING)}
        self.intervention = INTERVENTION in writer.features
        self.aborted: list[tuple[int, str]] = []
        self._recording = False
        self._ticks = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._errors: list[BaseException] = []
        self.committed: list[int] = []
        self.commit_latency_s: list[float] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="robolearn-recorder", daemon=True)
        self._thread.start()

    # -- caller's thread ---------------------------------------------------------------------------
    def start_episode(self, seed: int = -1, task: str | None = None) -> None:
        """Start an episode (an episode in progress that was neither saved nor discarded is discarded)."""
        self._raise_pending()
        meta = EpisodeMeta(task=self.task if task is None else task, seed=seed, declared_fps=self.fps,
                           source=self.source, start_time=time.time())
        self._recording, self._ticks = True, 0
        self._queue.put(("start", meta))

    def add_tick(self, obs: dict, action, t: float, stamps: dict[str, float] | None = None, *,
                 commanded=None, timing: dict[str, float] | None = None, intervention: bool = False) -> None:
        """One tick: the observation the action was computed from, the action actually applied, the tick
        time `t`; `stamps` the capture time per key (and "action": its application time), `commanded` the
        source's action, `timing` the loop's stage times, `intervention` whether a person drove it (see the
        module docstring)."""
        if not self._recording:
            raise RuntimeError("add_tick before start_episode")
        if self.commanded and commanded is None:
            raise ValueError(f"{self.writer.path} records {ACTION_COMMANDED!r} (a store recorded through a "
                             f"filter): every tick needs the commanded action (add_tick(..., commanded=...))")
        if intervention and not self.intervention:
            raise ValueError(f"{self.writer.path} has no {INTERVENTION!r} key to mark a taken-over tick: create the "
                             f"store with features_from_space(..., intervention=True)")
        self._ticks += 1
        self._queue.put(("tick", obs, action, t, stamps, commanded, timing, bool(intervention)))

    def add_step(self, rec) -> None:
        """One `ControlLoop` tick (a `StepRecord`): pass this method as the loop's `on_step`."""
        self.add_tick(**tick_of(rec))

    def save_episode(self, success: bool | None = None, dropped: int = 0, late: int = 0, *, status: str = "ok",
                     missed: int = 0, held: int = 0, retries: int = 0, extra: dict | None = None) -> None:
        """Commit the episode (in the background) with its `status` ("ok", or "truncated" when the caller
        stopped it early). `dropped`/`late` are the caller's own counts (a camera driver's dropped frames);
        the stored counters are the larger of those and what the action stamps show (`tick_counters`).
        `missed`: ticks the loop's clock skipped; `held`: ticks the loop held for want of a command;
        `retries`: transient errors retried; `extra`: JSON values kept with the episode (`EpisodeMeta.extra`,
        e.g. the cameras' pairing rule and counters). An episode without ticks is not saved."""
        self._end(success, status, {"dropped": dropped, "late": late, "missed": missed, "held": held,
                                    "retries": retries}, extra=extra)

    def abort_episode(self, reason: str, success: bool | None = None, *, dropped: int = 0, late: int = 0,
                      missed: int = 0, held: int = 0, retries: int = 0, extra: dict | None = None) -> None:
        """Recording stopped on a fault (`reason`, e.g. "camera front unplugged"): commit what was recorded
        with status "aborted" -- nothing recorded is lost; samplers skip it unless asked. Counters as for
        `save_episode`. An episode without ticks is dropped. (index, reason) goes to `aborted`; the store keeps
        the reason only when `extra` is given (as its "abort_reason")."""
        self._end(success, "aborted", {"dropped": dropped, "late": late, "missed": missed, "held": held,
                                       "retries": retries}, str(reason),
                  extra=None if extra is None else {**extra, "abort_reason": str(reason)})

    def _end(self, success, status: str, counters: dict, reason: str = "", extra: dict | None = None) -> None:
        status_code(status)  # refused here, in the caller's thread
        if not self._recording:
            return
        self._recording = False
        self._queue.put(("save", success, status, counters, reason, time.perf_counter(), dict(extra or {}))
                        if self._ticks else ("discard",))

    def discard_episode(self) -> None:
        """Drop the episode in progress, with whatever of it was already written."""
        if self._recording:
            self._recording = False
            self._queue.put(("discard",))

    @property
    def recording(self) -> bool:
        return self._recording

    @property
    def pending(self) -> int:
        """Events (ticks mostly) not yet taken by the background thread: how far the writer lags."""
        return self._queue.qsize()

    def wait_pending(self, at_most: int = 0, poll_s: float = 0.002) -> None:
        """Block until at most `at_most` events wait for the background thread (a producer faster than the
        writer, such as expert collection, keeps its memory bounded this way); raise a write's error."""
        while self._queue.qsize() > at_most and self._thread.is_alive():
            time.sleep(poll_s)
        self._raise_pending()

    def close(self) -> list[int]:
        """Wait for queued episodes (an episode still in progress is discarded); re-raise the first
        error a write or commit hit. Returns committed indices."""
        if not self._closed:
            self._closed, self._recording = True, False
            self._queue.put(None)
            self._thread.join()
        self._raise_pending()
        return self.committed

    def _raise_pending(self) -> None:
        if self._errors:
            raise self._errors.pop(0)

    # -- background thread --------------------------------------------------------------------------
    def _run(self) -> None:
        ep: _Episode | None = None
        while True:
            events = [self._queue.get()]
            while len(events) < _MAX_BLOCK_TICKS:  # take what else is waiting: written as one block
                try:
                    events.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ticks: list[tuple] = []
            for ev in events:
                if ev is not None and ev[0] == "tick":
                    ticks.append(ev)
                    continue
                if ticks:
                    self._write(ep, ticks)
                    ticks = []
                if ev is None:
                    self._drop(ep)
                    return
                if ev[0] == "start":
                    self._drop(ep)
                    ep = _Episode(meta=ev[1])
                elif ev[0] == "discard":
                    self._drop(ep)
                    ep = None
                elif ev[0] == "save":
                    self._commit(ep, *ev[1:])
                    ep = None
            if ticks:
                self._write(ep, ticks)

    def _fail(self, ep: _Episode, e: BaseException) -> None:
        """Surface the error to the caller on its next call; drop what the episode streamed."""
        self._errors.append(e)
        ep.failed = True
        self._drop(ep)

    def _drop(self, ep: _Episode | None) -> None:
        if ep is not None and ep.stream is not None:
            stream, ep.stream = ep.stream, None
            try:
                stream.abort()
            except BaseException as e:
                self._errors.append(e)

    def _write(self, ep: _Episode | None, ticks: list[tuple]) -> None:
        if ep is None or ep.failed:
            return
        try:
            frames: dict[str, list] = {}
            stamps: dict[str, list] = {}
            for _, obs, action, t, st, commanded, timing, intervention in ticks:
                st = st or {}
                for key, value in obs.items():
                    frames.setdefault(key, []).append(value)
                    stamps.setdefault(key, []).append(st.get(key, t))
                applied_at = st.get(ACTION, t)
                extra = {ACTION: action}
                if self.commanded:
                    extra[ACTION_COMMANDED] = commanded
                timing = timing or {}
                for stage, key in self.timing_stages.items():
                    extra[key] = np.float64(timing.get(stage, np.nan))
                if self.intervention:
                    extra[INTERVENTION] = np.bool_(intervention)
                    ep.interventions.append(bool(intervention))
                for key, value in extra.items():
                    frames.setdefault(key, []).append(value)
                    stamps.setdefault(key, []).append(applied_at)
            block = {k: np.stack(v) for k, v in frames.items()}
            if len({len(v) for v in block.values()}) > 1:
                counts = {k: len(v) for k, v in block.items()}
                raise ValueError(f"ticks of one episode carry different keys: frames per key {counts}")
            ep.action_stamps.extend(stamps[ACTION])
            if ep.stream is None:
                ep.stream = self.writer.begin_episode()
            ep.stream.append(block, stamps)
        except BaseException as e:
            self._fail(ep, e)

    def _commit(self, ep: _Episode | None, success, status: str, counters: dict, reason: str,
                saved_at: float, extra: dict) -> None:
        if ep is None or ep.failed or ep.stream is None:
            return
        try:
            meta = ep.meta
            if self.intervention:  # counted from the mask written, so the two always agree
                extra = {**extra, "takeovers": takeover_count(np.asarray(ep.interventions, dtype=bool)),
                         "intervention_steps": int(sum(ep.interventions))}
            meta.success, meta.status, meta.extra = success, status, extra
            stamps = np.asarray(ep.action_stamps, dtype=np.float64)
            meta.achieved_fps = rate = achieved_rate(stamps)
            tick_late, tick_dropped = tick_counters(stamps, self.fps)
            meta.late_frames = max(int(counters.get("late", 0)), tick_late)
            meta.dropped_frames = max(int(counters.get("dropped", 0)), tick_dropped)
            meta.missed_ticks = int(counters.get("missed", 0))
            meta.held_ticks = int(counters.get("held", 0))
            meta.retries = int(counters.get("retries", 0))
            duration = stamps[-1] - stamps[0]
            # Flag a rate off by more than one period per second of recording.
            meta.rate_flagged = bool(duration > 0 and abs(rate - self.fps) > 1.0)
            index = ep.stream.commit(meta)
            self.committed.append(index)
            if status == "aborted":
                self.aborted.append((index, reason))
            self.commit_latency_s.append(time.perf_counter() - saved_at)
            ep.stream = None
        except BaseException as e:  # surfaced to the caller on its next call
            self._fail(ep, e)
