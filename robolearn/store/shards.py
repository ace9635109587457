"""Sharded frame arrays: many frames per file, one frame per inner chunk (zarr v3 ``sharding_indexed``).

Image arrays (and cached latents) of a schema-3 store are sharded: ``data/<key>`` holds shards of `S`
frames (`shard_frames`, from the frame size: ~32 MB of stored frames, 64..4096 frames), each frame one
inner chunk, so random access stays exact (a frame is one ranged read). Shard files are named
``c.<j>.0.0.0`` (chunk key separator "."): no folder per shard, and no name shared with a one-frame-per-file
array's ``c/<i>/...`` (what an in-place migration relies on).

zarr rewrites a whole shard on any partial write, so frames are never appended into shards while an
episode is recorded:

1. **Staged.** The writer writes each frame of the episode in progress as its own file in
   ``stage/<key>`` (an unsharded array, one frame per chunk, the same inner codecs: JPEG or zstd), as
   unsharded stores always did. Committing the episode changes nothing of that.
2. **Packed.** After a commit, every shard whose frames are now all committed is written once, as one
   file: its frames' encoded bytes as they are (never re-encoded), concatenated in frame order, then
   the index (`encode_index`). The file is written to a temp name and renamed (a PUT on object
   storage), fsync'd, and only then are the staged files of its frames deleted. When a writer closes
   (and when `repair` or a writer opening the store finds committed frames still staged), the frames of
   the last, partly filled shard are packed too, as a partial shard: its index lists the frames it holds.

Where a committed frame is (the rule every reader follows, `frames.FrameReader`): in its shard when the
shard's index lists it, else in ``stage/<key>``; if neither, the shard again (a writer packed it between
the reader's two looks); if still neither, the frame was never written and reads as the fill value
(zarr writes no chunk for a frame that is all fill value). At every moment a committed frame exists in at least one complete copy: a
shard file appears whole (rename) before the staged copies of its frames are deleted.

A partial shard is rewritten when more frames of it are committed; its frames keep their byte offsets
(frames are packed in order, from offset 0), so a reader holding an older index of it still reads
the right bytes.

Write amplification: every frame is written twice (its staged file, then its shard), plus one rewrite
of the last shard's already packed frames each time a writer closes with a partly filled shard and a
later writer adds to it: at most 2 + (S / frames per writer session). `benchmarks/store.py` measures it.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype

from robolearn.store.layout import Feature

SHARD_TARGET_BYTES = 32 << 20
MIN_SHARD_FRAMES, MAX_SHARD_FRAMES = 64, 4096
STAGE = "stage"
KEY_ENCODING = {"name": "default", "separator": "."}
EMPTY = np.uint64(2**64 - 1)  # an index entry of an absent inner chunk
_STAGED_NAME = re.compile(r"^c\.(\d+)(?:\.0)*$")


def shard_frames(feature: Feature) -> int:
    """Frames per shard for a frame of this feature: a power of two near SHARD_TARGET_BYTES of stored
    frames (JPEG is guessed at 1/10 of the raw frame, zstd at 1/3), within 64..4096."""
    raw = int(np.prod(feature.shape)) * np.dtype(feature.dtype).itemsize
    stored = max(1, raw // (10 if feature.codec == "jpeg" else 3))
    n = 2 ** int(math.floor(math.log2(max(1, SHARD_TARGET_BYTES // stored))))
    return int(min(MAX_SHARD_FRAMES, max(MIN_SHARD_FRAMES, n)))


def is_sharded(arr: zarr.Array) -> bool:
    return getattr(arr, "shards", None) is not None


def shard_rows(arr: zarr.Array) -> int:
    """Frames per shard of a sharded frame array."""
    return int(arr.shards[0])


def stage_path(key: str) -> str:
    return f"{STAGE}/{key}"


def index_nbytes(rows: int) -> int:
    """Bytes of a shard index of `rows` inner chunks: (offset, nbytes) uint64 pairs + crc32c."""
    return 16 * rows + 4


def encode_index(offsets_and_lengths: np.ndarray) -> bytes:
    """The shard index as zarr writes it: little-endian uint64 (rows, 2), then its crc32c (4 bytes, LE)."""
    body = np.ascontiguousarray(offsets_and_lengths, dtype="<u8").tobytes()
    return body + google_crc32c.value(body).to_bytes(4, "little")


def parse_index(blob: bytes, rows: int) -> np.ndarray:
    """(rows, 2) uint64 offsets and lengths from a shard's last `index_nbytes(rows)` bytes; a bad crc32c
    is a ValueError."""
    body, crc = blob[:-4], blob[-4:]
    if len(blob) != index_nbytes(rows) or google_crc32c.value(body).to_bytes(4, "little") != crc:
        raise ValueError(f"corrupt shard index ({len(blob)} bytes, expected {index_nbytes(rows)} with a valid crc32c)")
    return np.frombuffer(body, "<u8").reshape(rows, 2)


def encode_shard(blobs: list[bytes | None], rows: int) -> bytes:
    """One shard file: the frames' encoded bytes in order (None: absent), then the index of `rows` entries."""
    index = np.full((rows, 2), EMPTY, dtype=np.uint64)
    parts, offset = [], 0
    for i, blob in enumerate(blobs):
        if blob is None:
            continue
        index[i] = (offset, len(blob))
        parts.append(blob)
        offset += len(blob)
    parts.append(encode_index(index))
    return b"".join(parts)


def split_shard(blob: bytes, rows: int) -> list[bytes | None]:
    """The inner chunks of a whole shard file (None: absent)."""
    index = parse_index(blob[-index_nbytes(rows):], rows)
    return [None if off == EMPTY else blob[int(off): int(off) + int(n)] for off, n in index]


def frame_array_kwargs(feature: Feature, codecs: dict, sharded: bool, rows: int | None = None) -> dict:
    """`create_array` keyword arguments of data/<key> for a frame (image) feature: sharded (`rows` frames
    per shard, default `shard_frames`), or (older layout) one file per frame; `codecs` are the frame
    codecs (`codecs.array_codecs`)."""
    frame = (1, *feature.shape)
    if not sharded:
        return {"chunks": frame, **codecs}
    rows = int(rows) if rows else shard_frames(feature)
    return {"chunks": frame, "shards": (rows, *feature.shape), "chunk_key_encoding": KEY_ENCODING, **codecs}


def stage_array_kwargs(data: zarr.Array) -> dict:
    """`create_array` keyword arguments of stage/<key> for a sharded data/<key>: one frame per file,
    the same inner codecs, so a staged file's bytes are an inner chunk of the shard as they are."""
    codec = data.metadata.codecs[0]  # the ShardingCodec
    inner = list(codec.codecs)
    return {"shape": data.shape, "chunks": (1, *data.shape[1:]), "dtype": data.dtype, "fill_value": data.fill_value,
            "serializer": inner[0], "compressors": inner[1:] or None, "chunk_key_encoding": KEY_ENCODING}


def shard_key(arr: zarr.Array, j: int) -> str:
    rest = (0,) * (arr.ndim - 1)
    ck = arr.metadata.encode_chunk_key((j, *rest))
    return f"{arr.path}/{ck}"


def staged_key(stage: zarr.Array, i: int) -> str:
    rest = (0,) * (stage.ndim - 1)
    return f"{stage.path}/{stage.metadata.encode_chunk_key((i, *rest))}"


async def staged_frames(stage: zarr.Array) -> list[int]:
    """Frame indices that have a staged file (a listing: used after a crash, when nothing else says)."""
    store, prefix = stage.store_path.store, f"{stage.path}/"
    out = []
    async for name in store.list_dir(prefix):
        m = _STAGED_NAME.match(name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


async def _get(store, key: str, byte_range=None) -> bytes | None:
    buf = await store.get(key, default_buffer_prototype(), byte_range=byte_range)
    return None if buf is None else buf.to_bytes()


async def shard_contents(data: zarr.Array, j: int) -> list[bytes | None] | None:
    """The inner chunks of shard j (None: no shard file)."""
    blob = await _get(data.store_path.store, shard_key(data, j))
    return None if blob is None else split_shard(blob, shard_rows(data))


async def pack_shard(data: zarr.Array, stage: zarr.Array, j: int, upto: int, staged: set[int] | None = None) -> int:
    """Write shard j of `data` holding its frames below `upto` (committed frames), each from the current
    shard when it holds it, else from stage; then delete those frames' staged files. Return the number
    of staged files packed (0 when the shard already held them all: stale staged copies are deleted).
    `staged` narrows the staged frames looked at (default: every frame of the shard below `upto`)."""
    from robolearn.store.chunks import gather

    S, store = shard_rows(data), data.store_path.store
    first, stop = j * S, min((j + 1) * S, upto)
    if stop <= first:
        return 0
    have = await shard_contents(data, j) or [None] * S
    want = range(first, stop)
    look = [i for i in want if staged is None or i in staged]
    fetched = dict(zip(look, await _gather_values(_get(store, staged_key(stage, i)) for i in look)))
    # A frame in neither place was never written (all fill value: zarr skips such chunks); it stays
    # absent in the index too, which reads as the fill value, as it did staged.
    new = [i for i in want if have[i - first] is None and fetched.get(i) is not None]
    if new:
        blobs = [have[i - first] if have[i - first] is not None else fetched.get(i) for i in want]
        body = encode_shard(blobs + [None] * (S - len(blobs)), S)
        await store.set(shard_key(data, j), default_buffer_prototype().buffer.from_bytes(body))
        sync = getattr(store, "sync", None)
        if sync is not None:  # the shard is on disk before any staged copy of its frames goes
            sync()
    stale = [i for i, b in fetched.items() if b is not None]
    await gather(store.delete(staged_key(stage, i)) for i in stale)
    return len(new)


async def _gather_values(jobs):
    import asyncio

    return await asyncio.gather(*jobs)


async def pack_staged(data: zarr.Array, stage: zarr.Array, committed: int, frames: list[int] | None = None) -> int:
    """Pack every committed frame still staged (`frames`, or a listing of stage/) into its shard; return
    how many staged frames were packed. Staged frames at or past `committed` are left alone."""
    if frames is None:
        frames = await staged_frames(stage)
    frames = [i for i in frames if i < committed]
    S, packed = shard_rows(data), 0
    for j in sorted({i // S for i in frames}):
        packed += await pack_shard(data, stage, j, committed, {i for i in frames if i // S == j})
    return packed


def local_root(arr: zarr.Array) -> Path | None:
    root = getattr(arr.store_path.store, "root", None)
    return root if isinstance(root, Path) else None


def file_count(path: str | os.PathLike) -> int:
    """Files under a local folder (what a file system, `cp` or a backup handles one by one)."""
    return sum(1 for p in Path(path).rglob("*") if p.is_file())
