"""Chunk-level helpers the store's writer, reader and repair share (none of them imports another for these).

Arrays are time-major: axis 0 is the frame (or episode) index. Frame-chunked arrays (images) keep one
whole frame per chunk, so chunk i holds frame i and its store key can be computed without zarr's indexing.
`committed_extent` is the commit protocol's reading side: the strictly increasing prefix of
``meta/episode_ends`` that every array covers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync as zsync

from robolearn.store.codecs import JpegCodec
from robolearn.store.layout import ROOT_ATTR, Feature, episode_columns
from robolearn.store.shards import is_sharded

_ROWS_PER_CHUNK_BYTES = 1 << 20  # low-dim chunks of ~1 MiB along time


def time_chunk(feature: Feature) -> int:
    """Rows per chunk of data/<key>: one frame for images, ~1 MiB of rows for low-dim keys."""
    if feature.is_image:
        return 1  # one frame per chunk: a window loads only the frames it needs
    row = max(1, int(np.prod(feature.shape)) * np.dtype(feature.dtype).itemsize)
    return int(max(64, min(65536, _ROWS_PER_CHUNK_BYTES // row)))


def store_key(arr: zarr.Array, coords: tuple[int, ...]) -> str:
    """The store key of the chunk at chunk coordinates `coords` of `arr`."""
    ck = arr.metadata.encode_chunk_key(coords)
    return f"{arr.path}/{ck}" if arr.path else ck


def frame_chunked(arr: zarr.Array) -> bool:
    """Whether `arr` is stored one whole frame per chunk file (images of the older layout, and stage/):
    chunk i holds frame i. A sharded array is not (`shards`: many frames per file)."""
    return not is_sharded(arr) and arr.chunks[0] == 1 and tuple(arr.chunks[1:]) == tuple(arr.shape[1:])


def frame_inner(arr: zarr.Array) -> bool:
    """Whether every frame of `arr` is one chunk, in its own file or as an inner chunk of a shard."""
    return arr.chunks[0] == 1 and tuple(arr.chunks[1:]) == tuple(arr.shape[1:])


def frame_chunk_keys(arr: zarr.Array, start: int, stop: int) -> list[str] | None:
    """Store keys of the chunks holding frames [start, stop) of a frame-chunked array; None otherwise."""
    if not frame_chunked(arr):
        return None
    rest = (0,) * (arr.ndim - 1)
    return [store_key(arr, (i, *rest)) for i in range(start, stop)]


def jpeg_quality(arr: zarr.Array) -> int | None:
    """The quality when every chunk of `arr` is exactly one frame's JPEG (our codec and nothing else)."""
    codecs = arr.metadata.codecs
    if frame_chunked(arr) and len(codecs) == 1 and isinstance(codecs[0], JpegCodec):
        return codecs[0].quality
    return None


async def gather(jobs) -> None:
    """Run the coroutines together; when one fails, wait for all the others, then raise the first error
    (so nothing is still writing when the caller cleans up)."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r


async def set_rows_async(arr: zarr.Array, n: int, written: int | None = None) -> None:
    """`set_rows` as a coroutine, to run together with other writes."""
    old = int(arr.shape[0])
    if n == old:
        return
    end = old if written is None else min(old, written)
    if n < end:
        c0 = int(arr.chunks[0])
        others = [range(-(-int(s) // int(c))) for s, c in zip(arr.shape[1:], arr.chunks[1:])]
        keys = [store_key(arr, (i, *rest)) for i in range(-(-n // c0), -(-end // c0))
                for rest in itertools.product(*others)]
        store = arr.store_path.store
        root = getattr(store, "root", None)
        if isinstance(root, Path):  # local: only the chunk files that exist (a grown-ahead tail has none)
            keys = [k for k in keys if (root / k).exists()]
        await gather(store.delete(k) for k in keys)
        if isinstance(root, Path):  # drop the per-frame folders left empty (c/<frame>/0/0)
            stop_at = root / arr.path / "c"
            for k in keys:
                d = (root / k).parent
                while d != stop_at and d.is_relative_to(stop_at):
                    try:
                        os.rmdir(d)
                    except OSError:
                        break
                    d = d.parent
    await arr.async_array.resize((n, *arr.shape[1:]), delete_outside_chunks=False)


def set_rows(arr: zarr.Array, n: int, written: int | None = None) -> None:
    """Grow or shrink `arr` along time (axis 0) to n rows. Shrinking first deletes the chunks wholly past
    row n (only those before row `written` when the caller knows nothing was written past it), then
    writes the new shape. Unlike zarr's `resize` this never enumerates every chunk of the array: it costs
    the same at frame 100 and at frame 10^6."""
    zsync(set_rows_async(arr, n, written))


async def set_raw(store, keys: list[str], blobs: list) -> None:
    """Write encoded chunk bytes as they are (None: a chunk never written, i.e. all fill value)."""
    proto = default_buffer_prototype()

    async def _one(key, blob):
        if blob is None:
            await store.delete(key)
        else:
            await store.set(key, proto.buffer.from_bytes(blob))

    await gather(_one(k, b) for k, b in zip(keys, blobs))


def get_raw(arr: zarr.Array, keys: list[str]) -> list[bytes | None]:
    """The stored (encoded) bytes of chunks `keys` of `arr`; None for a chunk never written."""
    store, proto = arr.store_path.store, default_buffer_prototype()

    async def _get_all():
        return await asyncio.gather(*(store.get(k, proto) for k in keys))

    return [None if b is None else b.to_bytes() for b in zsync(_get_all())]


def committed_extent(root: zarr.Group) -> tuple[int, int]:
    """(episodes, frames) committed: the strictly increasing prefix of episode_ends that every array covers.

    A store whose creation was cut off before ``meta/episode_ends`` (created last) has none."""
    try:
        ends_arr = root["meta/episode_ends"]
    except KeyError:
        return 0, 0
    ends = np.asarray(ends_arr[:], dtype=np.int64)
    info = root.attrs[ROOT_ATTR]
    keys = list(info["features"])
    covered = min([root[f"data/{k}"].shape[0] for k in keys] + [root[f"timestamps/{k}"].shape[0] for k in keys])
    rows = min(root[f"meta/episodes/{c}"].shape[0] for c in episode_columns(info.get("version", 1)))
    n, prev = 0, 0
    for i, e in enumerate(ends[: max(0, rows)]):
        if e <= prev or e > covered:
            break
        n, prev = i + 1, int(e)
    return n, prev
