"""The single writer of a store: validates episodes, writes their arrays, then commits them.

An episode is written either whole (`StoreWriter.add_episode`) or streamed while it is being recorded
(`StoreWriter.begin_episode` -> `EpisodeStream.append` per block of frames -> `commit` or `abort`): frames
go into data/<key> as soon as they fill a chunk (every frame for images, one frame per chunk), so the
commit itself writes at most one partial chunk per array, the table row and the marker.

Commit order (what makes a kill -9 lose at most the episode in progress):
1. data/<key> and timestamps/<key> are grown and written (every file written to a temp name, then renamed);
   a stream fsyncs what it wrote every `sync_interval_s` on the way;
2. the per-episode table row is written, and new task/source strings go into the root attrs;
3. everything written is fsync'd;
4. meta/episode_ends grows by one entry: the commit marker. Readers only trust the strictly increasing
   prefix of episode_ends that the data arrays cover, so a torn commit, or frames streamed for an
   episode not committed yet, are invisible to them.

Aborting a stream (a discarded or re-recorded episode) cuts every array back to the committed frames
and deletes the chunks past them; a kill before that leaves a tail that `repair` (and the next writer,
which repairs on open) cuts back the same way.

Sharded image arrays (`store.shards`): the frames of the episode in progress are written one file each
into ``stage/<key>``; after the commit marker, every shard whose frames are all committed is packed
(written once, whole), and when the writer closes, the last, partly filled shard too. A kill while
packing loses nothing: the staged copies go only once their shard is on disk.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import zarr
from zarr.core.sync import sync as zsync

from robolearn.output import claim_output
from robolearn.store.backend import SyncingLocalStore, is_url, open_root
from robolearn.store.chunks import (
    committed_extent,
    frame_chunk_keys,
    frame_chunked,
    gather,
    jpeg_quality,
    set_raw,
    set_rows,
    set_rows_async,
    time_chunk,
)
from robolearn.store.codecs import check_codec, encode_jpeg
from robolearn.store.create import create_column, create_root, ensure_arrays
from robolearn.store.layout import (
    EPISODE_COLUMNS,
    EPISODE_EXTRA,
    ROOT_ATTR,
    SCHEMA_VERSION,
    STATUS,
    V1_COLUMNS,
    EpisodeMeta,
    Feature,
    StoreError,
    check_key,
    is_timing_key,
    status_code,
)
from robolearn.store.lock import StoreLock
from robolearn.store.shards import is_sharded, pack_shard, shard_rows, stage_path

def validate_episode(features: dict[str, Feature], frames: dict[str, np.ndarray],
                     allow_empty: bool = False, first_frame: int = 0) -> dict[str, np.ndarray]:
    """Check an episode (or, with `allow_empty`, a block of one starting at frame `first_frame`) against
    the schema; return arrays in the schema's dtypes. Nothing is written here."""
    unknown = sorted(set(frames) - set(features))
    if unknown:
        raise StoreError(f"unknown key {unknown[0]!r}: this store has {', '.join(sorted(features))}")
    missing = sorted(set(features) - set(frames))
    if missing:
        raise StoreError(f"episode lacks key {missing[0]!r} that this store's schema requires")
    lengths = {k: len(v) for k, v in frames.items()}
    if len(set(lengths.values())) != 1:
        raise StoreError(f"keys have different lengths in one episode: {lengths}")
    if not allow_empty and next(iter(lengths.values())) == 0:
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
            # timing/<stage> is NaN on ticks where the stage did not happen; inf is never a time.
            bad_rows = np.isinf(arr) if is_timing_key(key) else ~np.isfinite(arr)
            if bad_rows.any():
                bad = int(np.flatnonzero(bad_rows.reshape(len(arr), -1).any(1))[0])
                raise StoreError(f"key {key!r}: frame {first_frame + bad} holds "
                                 f"{'inf' if is_timing_key(key) else 'NaN or inf'}")
        out[key] = np.ascontiguousarray(arr)
    return out


def _check_features(features: dict[str, Feature]) -> None:
    for key, feat in features.items():
        check_key(key)
        check_codec(key, feat)
    if "action" not in features:
        raise StoreError("a store needs an 'action' feature")


_GROW_AHEAD = 256  # frame-chunked arrays grow 256 frames ahead: one metadata write per 256 frames


class _Pending:
    """One array of a stream: rows are written as soon as they complete a chunk (every frame for images),
    the rest at commit. Frame-chunked arrays are grown ahead of the frames and trimmed at commit."""

    def __init__(self, arr: zarr.Array, pos: int, mirror: zarr.Array | None = None):
        # `mirror`: a sharded data/<key> whose frames are staged in `arr`; its shape follows arr's.
        self.arr, self.pos, self.chunk, self.mirror = arr, pos, int(arr.chunks[0]), mirror
        self.ahead = _GROW_AHEAD if frame_chunked(arr) else 0
        self.jpeg = jpeg_quality(arr)
        self.parts: list[np.ndarray] = []
        self.rows = 0

    def add(self, block: np.ndarray) -> None:
        if len(block):  # rows that may wait for their chunk are copied: the caller may reuse its arrays
            self.parts.append(block if self.chunk == 1 else np.array(block, copy=True))
            self.rows += len(block)

    def take(self, final: bool) -> tuple[int, np.ndarray] | None:
        """(first row, rows) ready to write (whole chunks, or everything when final); None if none."""
        end = self.pos + self.rows
        upto = end if final else end // self.chunk * self.chunk
        n = upto - self.pos
        if n <= 0:
            return None
        data = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        rest = data[n:]
        self.parts = [rest] if len(rest) else []
        self.rows -= n
        start, self.pos = self.pos, upto
        return start, data[:n]

    async def grow(self, stop: int) -> None:
        if self.arr.shape[0] < stop:
            await set_rows_async(self.arr, stop + self.ahead)
            if self.mirror is not None:  # only its shape: its shards are packed after the commit
                await set_rows_async(self.mirror, stop + self.ahead, written=0)

    async def write(self, start: int, data, encoded: bool = False) -> None:
        """Write rows [start, start + len(data)): `data` holds the rows, or with `encoded` (frame-chunked
        arrays) each frame's chunk bytes as they go to the store."""
        await self.grow(start + len(data))
        if encoded:
            await set_raw(self.arr.store_path.store, frame_chunk_keys(self.arr, start, start + len(data)), data)
        else:
            await self.arr.async_array.setitem(slice(start, start + len(data)), data)

    async def trim(self) -> None:
        """Cut the grown-ahead rows: nothing was written past `pos`, so only the shape changes."""
        await self.cut(self.pos)

    async def cut(self, n: int) -> None:
        """Cut to n rows, deleting what this stream wrote past n (nothing exists past `pos`)."""
        if self.arr.shape[0] != n:
            await set_rows_async(self.arr, n, written=self.pos)
        if self.mirror is not None and self.mirror.shape[0] != n:
            await set_rows_async(self.mirror, n, written=min(n, self.mirror.shape[0]))


class EpisodeStream:
    """One episode written while it is recorded; see the module docstring. Only `StoreWriter.begin_episode`
    makes one. Blocks are validated like whole episodes (keys, shapes, dtypes, NaN), one at a time; a bad
    block raises StoreError and writes nothing of itself (abort the stream to drop the blocks before it).
    JPEG frames are encoded in the calling thread, one at a time (at most one core, whatever the cameras);
    the chunk files are then written concurrently.

    >>> with w.begin_episode() as st:  # doctest: +SKIP
    ...     st.append({"state": s[:10], "action": a[:10]}, {"state": t[:10], "action": t[:10]})
    ...     st.append({"state": s[10:], "action": a[10:]}, {"state": t[10:], "action": t[10:]})
    ...     st.commit(EpisodeMeta(task="push"))
    """

    def __init__(self, writer: "StoreWriter", sync_interval_s: float):
        self.writer = writer
        self.start = writer.n_frames
        self.length = 0
        self.sync_interval_s = sync_interval_s
        self._last_sync = time.monotonic()
        self._open = True
        self._broken = False
        self._data = {k: writer._pending_data(k, self.start) for k in writer.features}
        self._stamps = {k: _Pending(writer._array(f"timestamps/{k}"), self.start) for k in writer.features}

    @property
    def open(self) -> bool:
        return self._open

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("this episode stream is already committed or aborted; begin a new one")

    def _flush_jobs(self, final: bool, raw: dict[str, tuple[int, list]] | None = None) -> list:
        """Coroutines writing what is ready (everything when final); JPEG frames are encoded here, before
        any coroutine exists, so a failed encode leaves no coroutine behind un-awaited."""
        writes = []  # (pending array, first row, rows or encoded chunks, encoded)
        for key, pend in self._data.items():
            got = pend.take(final)
            if got is not None:
                start, rows = got
                if pend.jpeg is not None:  # encode here, one frame at a time
                    writes.append((pend, start, [encode_jpeg(frame, pend.jpeg) for frame in rows], True))
                else:
                    writes.append((pend, start, rows, False))
        for key, (start, blobs) in (raw or {}).items():
            writes.append((self._data[key], start, blobs, True))
        for pend in self._stamps.values():
            got = pend.take(final)
            if got is not None:
                writes.append((pend, *got, False))
        jobs = [pend.write(start, data, encoded=encoded) for pend, start, data, encoded in writes]
        if not final:
            return jobs
        pends = [*self._data.values(), *self._stamps.values()]

        async def _then_trim(writes):
            await gather(writes)
            await gather(p.trim() for p in pends)

        return [_then_trim(jobs)]

    def append(self, frames: dict[str, np.ndarray], timestamps: dict[str, np.ndarray],
               chunks: dict[str, list] | None = None) -> int:
        """Add a block of frames (same length for every key) with their timestamps; return the episode's
        length so far. `chunks` gives, for frame-chunked keys (images), the frames' encoded chunk bytes as
        they are, instead of `frames` (copied from a store whose array has the same codecs: no decode, no
        re-encode, bit-identical frames; None for a chunk never written)."""
        self._check_open()
        if self._broken:
            raise StoreError("a block of this episode failed to write: abort the stream")
        w = self.writer
        chunks = dict(chunks or {})
        for key in chunks:
            if key not in w.features:
                raise StoreError(f"unknown key {key!r}: this store has {', '.join(sorted(w.features))}")
            if key in frames:
                raise StoreError(f"key {key!r} given both as frames and as encoded chunks")
            if not frame_chunked(self._data[key].arr):
                raise StoreError(f"key {key!r} is not stored one frame per chunk: it cannot take encoded chunks")
        feats = {k: f for k, f in w.features.items() if k not in chunks}
        block = validate_episode(feats, frames, allow_empty=True, first_frame=self.length) if feats else {}
        sizes = {k: len(v) for k, v in {**block, **chunks}.items()}
        if len(set(sizes.values())) != 1:
            raise StoreError(f"keys have different lengths in one block: {sizes}")
        n = next(iter(sizes.values()))
        stamps = {}
        for key in w.features:
            ts = np.asarray(None if timestamps is None else timestamps.get(key), dtype=np.float64)
            if ts.shape != (n,):
                raise StoreError(f"timestamps/{key}: expected {n} timestamps, got shape {list(ts.shape)}")
            stamps[key] = ts
        if n == 0:
            return self.length
        raw = {}
        for key, blobs in chunks.items():
            pend = self._data[key]
            raw[key] = (pend.pos, list(blobs))
            pend.pos += n
        for key, arr in block.items():
            self._data[key].add(arr)
        for key, ts in stamps.items():
            self._stamps[key].add(ts)
        try:
            jobs = self._flush_jobs(final=False, raw=raw)
            if jobs:
                zsync(gather(jobs))
        except BaseException:
            self._broken = True
            raise
        self.length += n
        if time.monotonic() - self._last_sync >= self.sync_interval_s:
            w._sync()  # spread the fsyncs over the recording: the commit only syncs the last interval
            self._last_sync = time.monotonic()
        return self.length

    def commit(self, meta: EpisodeMeta | None = None) -> int:
        """Write the rest of the frames, the table row and the commit marker; return the episode index."""
        self._check_open()
        if self._broken:
            raise StoreError("a block of this episode failed to write: abort the stream")
        if self.length == 0:
            raise StoreError("an episode needs at least one frame")
        meta = meta or EpisodeMeta()
        status_code(meta.status)  # a bad status is refused before anything of the commit is under way
        try:  # the last rows go out together with the table row
            idx = self.writer._commit(meta, self.start, self.start + self.length,
                                      self._flush_jobs(final=True))
        except BaseException:
            self._broken = True
            raise
        self._open = False
        self.writer._stream = None
        self.writer._pack(final=False)  # after the marker: the episode is committed whatever happens here
        return idx

    def abort(self) -> None:
        """Drop everything streamed: every array is cut back to the committed frames. Idempotent."""
        if not self._open:
            return
        self._open = False
        w = self.writer
        w._stream = None
        pends = [*self._data.values(), *self._stamps.values()]
        for pend in pends:
            pend.parts, pend.rows = [], 0
        # Chunks exist only below each array's write position: nothing past it needs deleting.
        zsync(gather(p.cut(w.n_frames) for p in pends))

    def __enter__(self) -> "EpisodeStream":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()  # no-op after commit


def upgrade_columns(root: zarr.Group, n_episodes: int) -> bool:
    """Bring an older store's episode table to `SCHEMA_VERSION` (see `layout`): add the missing columns,
    sized to the `n_episodes` committed episodes and holding their defaults, then write the new version
    into the root attrs. A kill in between leaves a store that reads the same and is upgraded again on the
    next open. Returns whether anything was upgraded."""
    info = dict(root.attrs[ROOT_ATTR])
    if int(info.get("version", 1)) >= SCHEMA_VERSION:
        return False
    for col in EPISODE_COLUMNS:
        if col in V1_COLUMNS:
            continue
        try:
            arr = root[f"meta/episodes/{col}"]
        except KeyError:
            create_column(root, col, n_episodes)
        else:  # added by an upgrade that was killed before its version was written: nothing was written to it
            set_rows(arr, n_episodes)
    info.update(version=SCHEMA_VERSION, status_names=dict(STATUS))
    root.attrs[ROOT_ATTR] = info
    return True


class StoreWriter:
    """Appends episodes to a store, one committed episode at a time. One writer per store (a lock file).

    >>> with StoreWriter("demo.zarr", features, fps=10) as w:  # doctest: +SKIP
    ...     w.add_episode({"state": s, "action": a}, {"state": ts, "action": ts}, EpisodeMeta(task="push"))
    """

    def __init__(self, path: str | Path, features: dict[str, Feature] | None = None, fps: float | None = None,
                 attrs: dict | None = None, storage_options: dict | None = None, *, resume: bool | None = None,
                 overwrite: bool = False, frame_layout: str = "sharded", shard_frames: int | None = None):
        """Open the store at `path` for appending, or create it.

        What may be at `path` is the output guard's rule (`robolearn.output.claim_output`, kind "store"):
        nothing, an empty folder, or, with `resume`, a robolearn store to append to (`resume` defaults to
        true when no `features` are given: the store must exist then), or, with `overwrite`, a robolearn
        store to replace (only the store's own entries are deleted). Anything else is refused, and a store
        whose metadata cannot be read is an error, never taken for "no store".
        A new store's image arrays are sharded (`shard_frames` frames per shard, default from the frame
        size; `frame_layout` "files": one file per frame, the layout of schema 2); an existing store keeps
        the layout it has."""
        self.path = path
        self._staged_from: dict[str, int] = {}  # sharded key -> first frame not yet in a packed shard
        self._stream: EpisodeStream | None = None
        self._arrays: dict[str, zarr.Array] = {}
        self._lock = None if is_url(path) else StoreLock(Path(path))
        if features is not None:
            _check_features(features)  # before anything is created, or replaced, on disk
        claim = claim_output(path, "store", resume=features is None if resume is None else resume,
                             overwrite=overwrite, storage_options=storage_options)
        exists = claim.mode == "resume"
        if not exists and (features is None or fps is None):
            raise StoreError(f"no store at {path}; creating one needs its features and fps")
        made_dir = self._lock is not None and not Path(path).exists()
        if self._lock is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        try:
            if exists:
                try:
                    self.root = open_root(path, "r+", storage_options)
                except OSError as e:
                    raise StoreError(f"cannot read the store at {path} ({type(e).__name__}: {e}); "
                                     f"nothing was written") from e
                self._load_existing(features, fps)
            else:
                self.root = create_root(path, features, float(fps), attrs, storage_options, frame_layout,
                                        shard_frames)
                self.info = dict(self.root.attrs[ROOT_ATTR])
                self.features = dict(features)
                self.n_episodes, self.n_frames = 0, 0
            self._staged_from = {k: self.n_frames for k in self.features if self._sharded(k)}
        except BaseException:
            self.close()
            if made_dir:  # a creation that failed before writing anything leaves no folder behind
                try:
                    Path(path).rmdir()
                except OSError:
                    pass
            raise

    # -- reopening ------------------------------------------------------------------------------
    def _load_existing(self, features, fps) -> None:
        from robolearn.store.repair import repair_root

        self.info = dict(self.root.attrs[ROOT_ATTR])
        self.features = {k: Feature.from_json(v) for k, v in self.info["features"].items()}
        if features is not None and {k: f.to_json() for k, f in features.items()} != self.info["features"]:
            raise StoreError(f"store {self.path} exists with different features: {sorted(self.info['features'])}")
        ensure_arrays(self.root, self.features)  # a creation cut off by a kill: its attrs say what is missing
        # A writer starts from the last committed episode: cut an uncommitted tail back first.
        repair_root(self.root, self.path)
        self.n_episodes, self.n_frames = committed_extent(self.root)
        self._staged_from = {k: self.n_frames for k in self.features if self._sharded(k)}
        if upgrade_columns(self.root, self.n_episodes):
            self._sync()
            self.info = dict(self.root.attrs[ROOT_ATTR])

    # -- writing -------------------------------------------------------------------------------
    def begin_episode(self, sync_interval_s: float = 0.25) -> EpisodeStream:
        """Start streaming an episode (see `EpisodeStream`); one at a time per writer."""
        if self._stream is not None:
            raise StoreError("an episode stream is already open on this writer: commit or abort it first")
        self._stream = EpisodeStream(self, sync_interval_s)
        return self._stream

    def add_episode(self, frames: dict[str, np.ndarray], timestamps: dict[str, np.ndarray] | None = None,
                    meta: EpisodeMeta | None = None) -> int:
        """Validate, write and commit one episode; return its index. Nothing is written on bad input."""
        meta = meta or EpisodeMeta()
        status_code(meta.status)
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
        with self.begin_episode() as st:
            st.append(frames, stamps)
            return st.commit(meta)

    def _commit(self, meta: EpisodeMeta, start: int, stop: int, last_writes: list = ()) -> int:
        """Steps 2-4 of the commit: the frames [start, stop) are written already, but for `last_writes`
        (coroutines) that run together with the table row's writes."""
        if start != self.n_frames:
            raise StoreError(f"episode frames start at {start}, the store has {self.n_frames} committed frames")
        row = self._episode_row(meta, stop - start)
        i = self.n_episodes
        cols = {col: self._array(f"meta/episodes/{col}") for col in row}

        async def _row(arr, value):
            await set_rows_async(arr, i + 1)
            await arr.async_array.setitem(i, value)

        zsync(gather([*last_writes, *(_row(cols[col], value) for col, value in row.items())]))
        if meta.extra:  # before the commit marker: an entry past the committed episodes is never read
            self.info.setdefault(EPISODE_EXTRA, {})[str(i)] = dict(meta.extra)
            self.root.attrs[ROOT_ATTR] = self.info
        self._sync()
        ends = self._array("meta/episode_ends")
        set_rows(ends, i + 1)
        ends[i] = stop
        self.n_episodes, self.n_frames = i + 1, stop
        self._sync()
        return i

    def _sharded(self, key: str) -> bool:
        return self.features[key].is_image and is_sharded(self._array(f"data/{key}"))

    def _pending_data(self, key: str, start: int) -> _Pending:
        """Where a stream writes the frames of `key`: data/<key>, or for a sharded key stage/<key>."""
        data = self._array(f"data/{key}")
        if self._sharded(key):
            return _Pending(self._array(stage_path(key)), start, mirror=data)
        return _Pending(data, start)

    def _pack(self, final: bool) -> None:
        """Write every shard whose frames are all committed and still staged (`final`: the partly filled
        last shard too), then delete those staged frames (`shards.pack_shard`)."""
        jobs = []
        for key, first in self._staged_from.items():
            data, stage = self._array(f"data/{key}"), self._array(stage_path(key))
            S, n = shard_rows(data), self.n_frames
            stop = n if final else n // S * S
            if stop <= first:
                continue
            jobs.append(self._pack_key(data, stage, first, stop))
            self._staged_from[key] = stop
        if jobs:
            zsync(gather(jobs))

    async def _pack_key(self, data: zarr.Array, stage: zarr.Array, first: int, stop: int) -> None:
        S = shard_rows(data)
        for j in range(first // S, -(-stop // S)):
            await pack_shard(data, stage, j, stop, set(range(max(first, j * S), min(stop, (j + 1) * S))))

    def _array(self, name: str) -> zarr.Array:
        """The writer's own handle on an array (its metadata is only changed through these handles)."""
        arr = self._arrays.get(name)
        if arr is None:
            arr = self._arrays[name] = self.root[name]
        return arr

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
            "status": status_code(meta.status),
            "retries": meta.retries,
            "held_ticks": meta.held_ticks,
            "missed_ticks": meta.missed_ticks,
        }

    def _sync(self) -> None:
        store = self.root.store
        if isinstance(store, SyncingLocalStore):
            store.sync()

    def set_stats(self, stats: dict) -> None:
        self.root["meta/stats"].attrs["stats"] = stats

    def close(self) -> None:
        """Abort an open episode stream (what it streamed is cut back), pack the committed frames still
        staged into the last shard, then release the lock."""
        try:
            if getattr(self, "_stream", None) is not None:
                self._stream.abort()
            if getattr(self, "root", None) is not None and self._staged_from:
                self._pack(final=True)
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
