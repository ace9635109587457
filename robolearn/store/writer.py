"""The single writer of a store: validates an episode, writes its arrays, then commits it.

Commit order (what makes a kill -9 lose at most the episode in progress):
1. data/<key> and timestamps/<key> are grown and written (every file written to a temp name, then renamed);
2. the per-episode table row is written, and new task/source strings go into the root attrs;
3. everything written is fsync'd;
4. meta/episode_ends grows by one entry: the commit marker. Readers only trust the strictly increasing
   prefix of episode_ends that the data arrays cover, so a torn commit is invisible to them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from robolearn.store.codecs import array_codecs, check_codec

from robolearn.store.backend import SyncingLocalStore, is_url, open_root
from robolearn.store.layout import (
    EPISODE_COLUMNS,
    ROOT_ATTR,
    SCHEMA_VERSION,
    EpisodeMeta,
    Feature,
    StoreError,
    check_key,
)
from robolearn.store.lock import StoreLock

_ROWS_PER_CHUNK_BYTES = 1 << 20  # low-dim chunks of ~1 MiB along time


def _time_chunk(feature: Feature) -> int:
    if feature.is_image:
        return 1  # one frame per chunk: a window loads only the frames it needs
    row = max(1, int(np.prod(feature.shape)) * np.dtype(feature.dtype).itemsize)
    return int(max(64, min(65536, _ROWS_PER_CHUNK_BYTES // row)))


def validate_episode(features: dict[str, Feature], frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check an episode against the schema; return arrays in the schema's dtypes. Nothing is written here."""
    unknown = sorted(set(frames) - set(features))
    if unknown:
        raise StoreError(f"unknown key {unknown[0]!r}: this store has {', '.join(sorted(features))}")
    missing = sorted(set(features) - set(frames))
    if missing:
        raise StoreError(f"episode lacks key {missing[0]!r} that this store's schema requires")
    lengths = {k: len(v) for k, v in frames.items()}
    if len(set(lengths.values())) != 1:
        raise StoreError(f"keys have different lengths in one episode: {lengths}")
    if next(iter(lengths.values())) == 0:
        raise StoreError("an episode needs at least one frame")
    out = {}
    for key, feat in features.items():
        arr = np.asarray(frames[key])
        if tuple(arr.shape[1:]) != feat.shape:
            raise StoreError(f"key {key!r}: expected frames of shape {list(feat.shape)}, got {list(arr.shape[1:])}")
        want = np.dtype(feat.dtype)
        if arr.dtype != want:
            same_float = arr.dtype.kind == "f" and want.kind == "f"
            if not same_float:
                raise StoreError(f"key {key!r}: expected dtype {want.name}, got {arr.dtype.name}")
            arr = arr.astype(want)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = int(np.flatnonzero((~np.isfinite(arr.reshape(len(arr), -1))).any(1))[0])
            raise StoreError(f"key {key!r}: frame {bad} holds NaN or inf")
        out[key] = np.ascontiguousarray(arr)
    return out


def _check_features(features: dict[str, Feature]) -> None:
    for key, feat in features.items():
        check_key(key)
        check_codec(key, feat)
    if "action" not in features:
        raise StoreError("a store needs an 'action' feature")


class StoreWriter:
    """Appends episodes to a store, one committed episode at a time. One writer per store (a lock file).

    >>> with StoreWriter("demo.zarr", features, fps=10) as w:  # doctest: +SKIP
    ...     w.add_episode({"state": s, "action": a}, {"state": ts, "action": ts}, EpisodeMeta(task="push"))
    """

    def __init__(self, path: str | Path, features: dict[str, Feature] | None = None, fps: float | None = None,
                 attrs: dict | None = None, storage_options: dict | None = None):
        self.path = path
        self._lock = None if is_url(path) else StoreLock(Path(path))
        exists = self._exists(path, storage_options)
        if not exists and (features is None or fps is None):
            raise StoreError(f"no store at {path}; creating one needs its features and fps")
        if not exists:
            _check_features(features)  # before anything is created on disk
        if self._lock is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        try:
            if exists:
                self.root = open_root(path, "r+", storage_options)
                self._load_existing(features, fps)
            else:
                self.root = open_root(path, "w", storage_options)
                self._create(features, float(fps), attrs or {})
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _exists(path, storage_options) -> bool:
        try:
            root = open_root(path, "r", storage_options)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError if hasattr(zarr, "errors") else FileNotFoundError):
            return False
        except Exception:
            return False
        return ROOT_ATTR in root.attrs

    # -- creation / reopening -------------------------------------------------------------------
    def _create(self, features: dict[str, Feature], fps: float, attrs: dict) -> None:
        _check_features(features)
        info = {"version": SCHEMA_VERSION, "fps": fps, "features": {k: f.to_json() for k, f in features.items()},
                "tasks": [], "sources": [], "created": time.time(), **attrs}
        for key, feat in features.items():
            self.root.create_array(f"data/{key}", shape=(0, *feat.shape), chunks=(_time_chunk(feat), *feat.shape),
                                   dtype=feat.dtype, fill_value=0, **array_codecs(feat))
            self.root.create_array(f"timestamps/{key}", shape=(0,), chunks=(65536,), dtype="float64",
                                   compressors=ZstdCodec(level=3), fill_value=0.0)
        for col, (dtype, fill) in EPISODE_COLUMNS.items():
            self.root.create_array(f"meta/episodes/{col}", shape=(0,), chunks=(4096,), dtype=dtype, fill_value=fill)
        self.root.create_array("meta/episode_ends", shape=(0,), chunks=(4096,), dtype="int64", fill_value=0)
        self.root.require_group("meta/stats")
        self.root.attrs[ROOT_ATTR] = info
        self.info = info
        self.features = dict(features)
        self.n_episodes, self.n_frames = 0, 0

    def _load_existing(self, features, fps) -> None:
        from robolearn.store.reader import committed_extent
        from robolearn.store.repair import repair_root

        self.info = dict(self.root.attrs[ROOT_ATTR])
        self.features = {k: Feature.from_json(v) for k, v in self.info["features"].items()}
        if features is not None and {k: f.to_json() for k, f in features.items()} != self.info["features"]:
            raise StoreError(f"store {self.path} exists with different features: {sorted(self.info['features'])}")
        # A writer starts from the last committed episode: cut an uncommitted tail back first.
        repair_root(self.root, self.path)
        self.n_episodes, self.n_frames = committed_extent(self.root)

    # -- writing -------------------------------------------------------------------------------
    def add_episode(self, frames: dict[str, np.ndarray], timestamps: dict[str, np.ndarray] | None = None,
                    meta: EpisodeMeta | None = None) -> int:
        """Validate, write and commit one episode; return its index. Nothing is written on bad input."""
        meta = meta or EpisodeMeta()
        frames = validate_episode(self.features, frames)
        length = len(next(iter(frames.values())))
        stamps = {}
        for key in self.features:
            ts = None if timestamps is None else timestamps.get(key)
            if ts is None:
                ts = meta.start_time + np.arange(length, dtype=np.float64) / float(self.info["fps"])
            ts = np.asarray(ts, dtype=np.float64)
            if ts.shape != (length,):
                raise StoreError(f"timestamps/{key}: expected {length} timestamps, got shape {list(ts.shape)}")
            stamps[key] = ts
        start, stop = self.n_frames, self.n_frames + length
        for key, arr in frames.items():
            data = self.root[f"data/{key}"]
            data.resize((stop, *data.shape[1:]))
            data[start:stop] = arr
            tsa = self.root[f"timestamps/{key}"]
            tsa.resize((stop,))
            tsa[start:stop] = stamps[key]
        row = self._episode_row(meta, length)
        i = self.n_episodes
        for col, value in row.items():
            arr = self.root[f"meta/episodes/{col}"]
            arr.resize((i + 1,))
            arr[i] = value
        self._sync()
        ends = self.root["meta/episode_ends"]
        ends.resize((i + 1,))
        ends[i] = stop
        self._sync()
        self.n_episodes, self.n_frames = i + 1, stop
        return i

    def _index_of(self, table: str, value: str) -> int:
        values = list(self.info[table])
        if value not in values:
            values.append(value)
            self.info[table] = values
            self.root.attrs[ROOT_ATTR] = self.info
        return values.index(value)

    def _episode_row(self, meta: EpisodeMeta, length: int) -> dict:
        return {
            "length": length,
            "task_index": self._index_of("tasks", meta.task),
            "source_index": self._index_of("sources", meta.source),
            "success": -1 if meta.success is None else int(bool(meta.success)),
            "declared_fps": meta.declared_fps or float(self.info["fps"]),
            "achieved_fps": meta.achieved_fps,
            "dropped_frames": meta.dropped_frames,
            "late_frames": meta.late_frames,
            "rate_flagged": meta.rate_flagged,
            "has_actions": meta.has_actions,
            "start_time": meta.start_time,
            "seed": meta.seed,
        }

    def _sync(self) -> None:
        store = self.root.store
        if isinstance(store, SyncingLocalStore):
            store.sync()

    def set_stats(self, stats: dict) -> None:
        self.root["meta/stats"].attrs["stats"] = stats

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
