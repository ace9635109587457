"""Recorder: takes one tick at a time from a control loop and commits whole episodes to a store.

Ticks are appended in the caller's thread (a list append); validation, encoding and the atomic commit
run on a background thread, so a control loop never waits for the disk (tests/record check that
`add_tick` stays under 1 ms with three 640x480 cameras while commits run). Arrays handed to `add_tick`
are kept by reference until the commit: hand over a fresh array each tick, never a buffer reused later.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from robolearn.store import EpisodeMeta, StoreWriter


@dataclass
class _Episode:
    frames: dict[str, list] = field(default_factory=dict)
    stamps: dict[str, list] = field(default_factory=dict)
    meta: EpisodeMeta = field(default_factory=EpisodeMeta)


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


class Recorder:
    """Episode events: `start_episode`, `add_tick` per control tick, then `save_episode` or
    `discard_episode` (re-record = discard, then start again). `close()` waits for pending commits.

    >>> rec = Recorder(writer, fps=10, task="push the block")  # doctest: +SKIP
    >>> rec.start_episode(seed=3); rec.add_tick(obs, action_sent, t); rec.save_episode(success=True)  # doctest: +SKIP
    """

    def __init__(self, writer: StoreWriter, fps: float, task: str = "", source: str = ""):
        self.writer, self.fps, self.task, self.source = writer, float(fps), task, source
        self._current: _Episode | None = None
        self._queue: queue.Queue = queue.Queue()
        self._errors: list[BaseException] = []
        self.committed: list[int] = []
        self._thread = threading.Thread(target=self._run, name="robolearn-recorder", daemon=True)
        self._thread.start()

    # -- caller's thread ---------------------------------------------------------------------------
    def start_episode(self, seed: int = -1, task: str | None = None) -> None:
        self._raise_pending()
        self._current = _Episode(meta=EpisodeMeta(task=self.task if task is None else task, seed=seed,
                                                  declared_fps=self.fps, source=self.source, start_time=time.time()))

    def add_tick(self, obs: dict, action, t: float, stamps: dict[str, float] | None = None) -> None:
        """One tick: the observation the action was computed from, the action actually sent, its time."""
        ep = self._current
        if ep is None:
            raise RuntimeError("add_tick before start_episode")
        for key, value in obs.items():
            ep.frames.setdefault(key, []).append(value)
            ep.stamps.setdefault(key, []).append(t if stamps is None else stamps.get(key, t))
        ep.frames.setdefault("action", []).append(action)
        ep.stamps.setdefault("action", []).append(t if stamps is None else stamps.get("action", t))

    def save_episode(self, success: bool | None = None, dropped: int = 0, late: int = 0) -> None:
        """Queue the episode for commit. `dropped`/`late` are the caller's own counts (a camera driver's
        dropped frames, a control loop's missed ticks); the stored counters are the larger of those and
        what the tick times show (`tick_counters`)."""
        ep, self._current = self._current, None
        if ep is None or not ep.frames:
            return
        ep.meta.success, ep.meta.dropped_frames, ep.meta.late_frames = success, dropped, late
        self._queue.put(ep)

    def discard_episode(self) -> None:
        self._current = None

    @property
    def recording(self) -> bool:
        return self._current is not None

    def close(self) -> list[int]:
        """Wait for queued episodes; re-raise the first error a commit hit. Returns committed indices."""
        self._queue.put(None)
        self._thread.join()
        self._raise_pending()
        return self.committed

    def _raise_pending(self) -> None:
        if self._errors:
            raise self._errors.pop(0)

    # -- background thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            ep = self._queue.get()
            if ep is None:
                return
            try:
                frames = {k: np.stack(v) for k, v in ep.frames.items()}
                stamps = {k: np.asarray(v, dtype=np.float64) for k, v in ep.stamps.items()}
                rate = achieved_rate(stamps["action"])
                ep.meta.achieved_fps = rate
                late, dropped = tick_counters(stamps["action"], self.fps)
                ep.meta.late_frames = max(ep.meta.late_frames, late)
                ep.meta.dropped_frames = max(ep.meta.dropped_frames, dropped)
                duration = stamps["action"][-1] - stamps["action"][0]
                # Flag a rate off by more than one period per second of recording.
                ep.meta.rate_flagged = bool(duration > 0 and abs(rate - self.fps) > 1.0)
                self.committed.append(self.writer.add_episode(frames, stamps, ep.meta))
            except BaseException as e:  # surfaced to the caller on its next call
                self._errors.append(e)
