"""Reading frames fast when they do not fit in memory: encoded bytes by (ranged) reads, decoded in threads.

A `FrameReader` serves one array stored one frame per chunk: an image array of the older layout (one
file per frame) or a sharded one (`store.shards`: a frame is one byte range of its shard, found in the
shard's index; committed frames not packed yet are read from ``stage/<key>``). It skips zarr's
per-chunk machinery: for a batch of frames it reads the shard indexes it needs (kept for shards that
are complete: those never change), then the frames' bytes, and decodes them in a thread pool with
decoders that release the GIL (OpenCV's JPEG decoder, zstd), so the threads run in parallel.

Local stores are read with ``os.pread`` in the decoding threads themselves (read and decode of one
frame in one task); object storage (``s3://...``) through the store's async ranged GETs, all of a
batch's at once, then decoded in the threads.

>>> r = Store.open("demo.zarr").frame_reader("images/front")  # doctest: +SKIP
>>> r.read(np.array([0, 17, 4096])).shape  # doctest: +SKIP
(3, 224, 224, 3)
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync as zsync

from robolearn.store.chunks import frame_inner, store_key
from robolearn.store.codecs import JpegCodec, decode_jpeg
from robolearn.store.shards import EMPTY, index_nbytes, is_sharded, local_root, parse_index, shard_key, shard_rows, staged_key

DEFAULT_THREADS = max(2, min(8, 2 * (os.cpu_count() or 1)))
REMOTE_GAP = 64 << 10
"""Byte ranges of one shard at most this far apart are fetched with one request (object storage): a
request costs far more than 64 KiB of transfer."""
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def decode_pool(threads: int = DEFAULT_THREADS) -> ThreadPoolExecutor:
    """This process' decoding threads (a DataLoader worker forked from a parent gets its own)."""
    key = os.getpid() * 1000 + threads
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="robolearn-decode")
        return pool


def inner_codecs(arr: zarr.Array) -> tuple:
    """The codecs of one frame's chunk (inside the shard for a sharded array)."""
    codecs = tuple(arr.metadata.codecs)
    return tuple(codecs[0].codecs) if is_sharded(arr) else codecs


def frame_decoder(arr: zarr.Array) -> Callable[[bytes], np.ndarray] | None:
    """bytes of one frame's chunk -> the frame, for the codecs robolearn writes (JPEG; bytes [+ zstd]);
    None for anything else (read those through zarr)."""
    shape, codecs = tuple(arr.shape[1:]), inner_codecs(arr)
    if len(codecs) == 1 and isinstance(codecs[0], JpegCodec):
        return lambda blob: decode_jpeg(blob, shape)
    if not codecs or not isinstance(codecs[0], BytesCodec) or len(codecs) > 2:
        return None
    if len(codecs) == 2 and not isinstance(codecs[1], ZstdCodec):
        return None
    dtype = np.dtype(arr.dtype.to_native_dtype() if hasattr(arr.dtype, "to_native_dtype") else arr.dtype)
    endian = getattr(codecs[0].endian, "value", codecs[0].endian)
    if dtype.itemsize > 1 and endian is not None:
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    if len(codecs) == 2:
        from numcodecs import zstd

        return lambda blob: np.frombuffer(zstd.decompress(blob), dtype).reshape(shape)
    return lambda blob: np.frombuffer(blob, dtype).reshape(shape)


class FrameReader:
    """Whole frames of one frame-per-chunk array by index; see the module docstring."""

    def __init__(self, arr: zarr.Array, stage: zarr.Array | None = None, threads: int = DEFAULT_THREADS):
        if not frame_inner(arr):
            raise ValueError(f"{arr.path} is not stored one frame per chunk")
        self.arr, self.stage, self.threads = arr, stage, threads
        self.sharded = is_sharded(arr)
        self.rows = shard_rows(arr) if self.sharded else 1
        self.decode = frame_decoder(arr)
        self.shape = tuple(arr.shape[1:])
        self.dtype = np.dtype(arr.dtype.to_native_dtype() if hasattr(arr.dtype, "to_native_dtype") else arr.dtype)
        self.store = arr.store_path.store
        self.root: Path | None = local_root(arr)
        # Shard indexes, kept: a shard is only ever rewritten with more frames, the ones it held at the same
        # offsets (`store.shards`), so an index kept says the truth about every frame it lists; a frame it
        # does not list is looked for in stage/, then in a fresh index.
        self._indexes: dict[int, np.ndarray] = {}

    # -- where a frame is -------------------------------------------------------------------------
    def _file(self, key: str) -> Path:
        return self.root / key

    def _open_shard(self, j: int) -> int | None:
        try:
            return os.open(self._file(shard_key(self.arr, j)), os.O_RDONLY)
        except FileNotFoundError:
            return None

    def _index_local(self, j: int, fd: int) -> np.ndarray:
        n = index_nbytes(self.rows)
        size = os.fstat(fd).st_size
        return parse_index(os.pread(fd, n, size - n), self.rows)

    async def _index_remote(self, j: int) -> np.ndarray | None:
        buf = await self.store.get(shard_key(self.arr, j), default_buffer_prototype(),
                                   byte_range=SuffixByteRequest(index_nbytes(self.rows)))
        return None if buf is None else parse_index(buf.to_bytes(), self.rows)

    def _remember(self, j: int, index: np.ndarray) -> None:
        self._indexes[j] = index

    # -- bytes --------------------------------------------------------------------------------------
    def raw(self, frames) -> list[bytes | None]:
        """The encoded bytes of each frame, as stored (None: a frame never written: all fill value)."""
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        if self.root is None:
            return zsync(self._raw_remote(frames))
        out: list[bytes | None] = [None] * len(frames)
        tasks = self._tasks(frames)
        for (pos, _), blobs in zip(tasks, decode_pool(self.threads).map(
                lambda t: self._local_bytes(frames[t[0]], t[1]), tasks)):
            for p, blob in zip(pos, blobs):
                out[p] = blob
        return out

    def _tasks(self, frames: np.ndarray) -> list[tuple[np.ndarray, int | None]]:
        """(positions into `frames`, shard) per task: a few tasks per thread, each within one shard
        (shard None: one file per frame)."""
        if not self.sharded:
            step = max(1, -(-len(frames) // (4 * self.threads)))
            return [(np.arange(a, min(a + step, len(frames))), None) for a in range(0, len(frames), step)]
        order = np.argsort(frames // self.rows, kind="stable")
        cuts = np.flatnonzero(np.diff(frames[order] // self.rows)) + 1
        tasks = []
        for pos in np.split(order, cuts):
            step = max(1, -(-len(pos) // (2 * self.threads)))
            j = int(frames[pos[0]] // self.rows)
            tasks += [(pos[a:a + step], j) for a in range(0, len(pos), step)]
        return tasks

    def _local_bytes(self, frames: np.ndarray, j: int | None) -> list[bytes | None]:
        if j is None:  # one file per frame
            out = []
            for i in frames:
                try:
                    out.append(self._file(store_key(self.arr, (int(i), *(0,) * (self.arr.ndim - 1)))).read_bytes())
                except FileNotFoundError:
                    out.append(None)
            return out
        index = self._indexes.get(j)
        for attempt in range(2):
            fd = self._open_shard(j)  # per task: the index and the frames from one file, never a newer one
            try:
                if fd is not None and index is None:
                    index = self._index_local(j, fd)
                    self._remember(j, index)
                out = []
                for i in frames:
                    off, n = (EMPTY, EMPTY) if index is None else index[int(i) - j * self.rows]
                    if off != EMPTY:
                        out.append(os.pread(fd, int(n), int(off)))
                        continue
                    try:  # not packed yet: staged
                        out.append(self._file(staged_key(self.stage, int(i))).read_bytes() if self.stage is not None
                                   else None)
                    except FileNotFoundError:
                        out.append(None)
            finally:
                if fd is not None:
                    os.close(fd)
            if all(b is not None for b in out) or attempt:
                return out
            index = None  # packed between our two looks: the shard has it now
        return out

    async def _raw_remote(self, frames: np.ndarray) -> list[bytes | None]:
        proto = default_buffer_prototype()

        async def get(key, rng=None):
            buf = await self.store.get(key, proto, byte_range=rng)
            return None if buf is None else buf.to_bytes()

        if not self.sharded:
            rest = (0,) * (self.arr.ndim - 1)
            return list(await asyncio.gather(*(get(store_key(self.arr, (int(i), *rest))) for i in frames)))
        out: list[bytes | None] = [None] * len(frames)
        for attempt in range(2):
            todo = [k for k in range(len(frames)) if out[k] is None]
            shards = sorted({int(frames[k]) // self.rows for k in todo})
            need = [j for j in shards if j not in self._indexes or attempt]
            got = await asyncio.gather(*(self._index_remote(j) for j in need))
            indexes = {j: self._indexes.get(j) for j in shards}
            for j, index in zip(need, got):
                indexes[j] = index
                if index is not None:
                    self._remember(j, index)
            ranges: dict[int, list[tuple[int, int, int]]] = {}  # shard -> (offset, nbytes, position)
            staged, jobs = [], []
            for k in todo:
                i = int(frames[k])
                j = i // self.rows
                index = indexes[j]
                off, n = (EMPTY, EMPTY) if index is None else index[i - j * self.rows]
                if off != EMPTY:
                    ranges.setdefault(j, []).append((int(off), int(n), k))
                elif self.stage is not None:
                    staged.append(k)
                    jobs.append(get(staged_key(self.stage, i)))
            runs = [(j, run) for j, rs in ranges.items() for run in _coalesce(rs, REMOTE_GAP)]
            jobs += [get(shard_key(self.arr, j), RangeByteRequest(run[0][0], run[-1][0] + run[-1][1]))
                     for j, run in runs]
            got = await asyncio.gather(*jobs)
            for k, blob in zip(staged, got):
                out[k] = blob
            for (j, run), blob in zip(runs, got[len(staged):]):
                if blob is None:
                    continue
                start = run[0][0]
                for off, n, k in run:
                    out[k] = blob[off - start: off - start + n]
            if all(b is not None for b in out):
                break
        return out

    # -- frames -------------------------------------------------------------------------------------
    def read(self, frames) -> np.ndarray:
        """Decoded frames (len(frames), *shape); a frame never written is the fill value, a corrupt one a
        ValueError."""
        if self.decode is None:
            raise ValueError(f"{self.arr.path}: no fast decoder for codecs {inner_codecs(self.arr)}")
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        out = np.empty((len(frames), *self.shape), dtype=self.dtype)
        pool = decode_pool(self.threads)
        if self.root is not None:
            def task(t):
                pos, j = t
                for p, blob in zip(pos, self._local_bytes(frames[pos], j)):
                    self._put(out, p, blob, frames)

            for f in [pool.submit(task, t) for t in self._tasks(frames)]:
                f.result()
            return out
        blobs = zsync(self._raw_remote(frames))
        step = max(1, -(-len(frames) // (2 * self.threads)))

        def decode_range(a):
            for p in range(a, min(a + step, len(frames))):
                self._put(out, p, blobs[p], frames)

        for f in [pool.submit(decode_range, a) for a in range(0, len(frames), step)]:
            f.result()
        return out

    def _put(self, out: np.ndarray, p: int, blob: bytes | None, frames: np.ndarray) -> None:
        if blob is None:  # never written: all fill value (zarr writes no such chunk)
            out[p] = self.arr.fill_value
        else:
            out[p] = self.decode(blob)


def _coalesce(ranges: list[tuple[int, int, int]], gap: int) -> list[list[tuple[int, int, int]]]:
    """(offset, nbytes, position) ranges of one file -> runs to fetch with one request each: ranges at
    most `gap` bytes apart join (a window's frames t-1, t are neighbours in their shard)."""
    runs: list[list[tuple[int, int, int]]] = []
    for r in sorted(ranges):
        if runs and r[0] - (runs[-1][-1][0] + runs[-1][-1][1]) <= gap:
            runs[-1].append(r)
        else:
            runs.append([r])
    return runs
