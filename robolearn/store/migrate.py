"""Rewrite a store's image arrays into the sharded layout (`store.shards`), losing no frame.

Two ways, both verified bit for bit before they count as done:

- ``migrate(src, out)``: a new store at `out` (claimed like any store output, `robolearn.output`; written
  beside it and moved in only once verified, `robolearn.store.staging`) through the single writer: every
  committed episode with its table row, tasks, sources, timestamps, the root
  attrs robolearn does not rebuild, the statistics and the cached latents. JPEG and zstd frames move as
  their stored bytes (never decoded and re-encoded). Then every episode of `out` is compared with `src`:
  the stored bytes of every frame of every image key, the bytes of every other array, the timestamps,
  the table and the task of each episode.
- ``migrate(src, in_place=True)``: under the writer lock, per image key still stored one file per frame:
  the shards are written beside the old files (``c.<j>.0.0.0`` next to ``c/<i>/...``: no name is
  shared), read back and compared with the old files byte for byte, then the array's metadata
  (``data/<key>/zarr.json``) is replaced in one atomic write (temp file + rename, a PUT on s3): before it
  the array reads the old files, after it the shards. Only then are the old files deleted. A kill at any
  moment leaves a store that reads every committed frame; running the migration again finishes it
  (shards rewritten, or leftover old files deleted).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync as zsync

from robolearn.store.chunks import frame_chunked, gather, get_raw, store_key
from robolearn.store.codecs import array_codecs
from robolearn.store.create import ensure_stage
from robolearn.store.latents import LATENT_ATTR, latent_info, read_latents, write_latents
from robolearn.store.layout import EPISODE_COLUMNS, ROOT_ATTR, StoreError
from robolearn.store.ops import _SCHEMA_ATTRS, copy_episode, raw_copy_keys
from robolearn.store.reader import Store
from robolearn.store.shards import encode_shard, frame_array_kwargs, is_sharded, shard_key, split_shard
from robolearn.store.staging import staged
from robolearn.store.writer import StoreWriter

_BLOCK = 256


def migrate(src: str | os.PathLike, out: str | os.PathLike | None = None, *, in_place: bool = False,
            overwrite: bool = False, shard_frames: int | None = None, storage_options: dict | None = None) -> dict:
    """Rewrite `src` into the sharded layout: into a new store `out`, or `in_place`; see the module doc.
    Returns a summary with the verification's counts."""
    if in_place == (out is not None):
        raise StoreError("migrate needs exactly one of an output store (--out DST) or --in-place")
    if in_place:
        return migrate_in_place(src, shard_frames, storage_options)
    return migrate_to(src, out, overwrite, shard_frames, storage_options)


# ----------------------------------------------------------------------------- into a new store
def migrate_to(src_path, out, overwrite: bool = False, shard_frames: int | None = None,
               storage_options: dict | None = None) -> dict:
    src = Store.open(src_path, storage_options)
    if str(out).rstrip("/") == str(src_path).rstrip("/"):
        raise StoreError(f"migrate --out {out} is the source store itself: use --in-place to migrate it there")
    attrs = {k: v for k, v in src.info.items() if k not in (*_SCHEMA_ATTRS, "frame_layout", "shard_frames",
                                                             "status_names")}
    # nothing of a failed (or unverified) migration is left at `out`; an old store there stays whole until then
    with staged(out, "store", overwrite=overwrite, storage_options=storage_options) as tmp:
        with StoreWriter(tmp, src.features, fps=src.fps, attrs=attrs, storage_options=storage_options,
                         overwrite=overwrite, shard_frames=shard_frames) as w:
            raw_keys = raw_copy_keys(src, w)
            for e in range(src.n_episodes):
                copy_episode(src, e, w, raw_keys)
            if src.stats is not None:
                w.set_stats(src.stats)
        latents = _copy_latents(src, tmp, storage_options)
        report = verify_same(src, Store.open(tmp, storage_options), f"the migrated copy of {out}")
    return {"store": str(out), "from": str(src_path), "layout": "sharded", **report, "latents": latents}


def _copy_latents(src: Store, out, storage_options) -> list[str]:
    done = []
    for key, meta in latent_info(src).items():
        if int(meta["frames"]) != src.n_frames:
            continue  # stale: not carried over (it could not be read anyway)
        rows = read_latents(src, key)
        extra = {k: v for k, v in meta.items() if k not in ("camera", "frames")}
        write_latents(out, key.split("/", 1)[1], [rows], rows.shape[1:], rows.dtype.name, extra)
        done.append(key)
    return done


def verify_same(a: Store, b: Store, b_name: str | None = None) -> dict:
    """Compare two stores episode by episode, bit for bit; raise StoreError at the first difference (naming
    `b` as `b_name`, default its path)."""
    def differ(what: str) -> StoreError:
        return StoreError(f"migration check failed: {b_name or b.path} differs from {a.path} in {what}")

    if (a.n_episodes, a.n_frames) != (b.n_episodes, b.n_frames):
        raise differ(f"size ({b.n_episodes} episodes, {b.n_frames} frames vs {a.n_episodes}, {a.n_frames})")
    if a.info["features"] != b.info["features"] or a.fps != b.fps:
        raise differ("features or fps")
    if not np.array_equal(a.episode_ends, b.episode_ends):
        raise differ("meta/episode_ends")
    for col in EPISODE_COLUMNS:
        if a.episodes[col].tobytes() != b.episodes[col].tobytes():
            raise differ(f"episode column {col!r}")
    if (a.stats is None) != (b.stats is None) or json.dumps(a.stats, sort_keys=True) != json.dumps(b.stats, sort_keys=True):
        raise differ("meta/stats")
    frames = 0
    for e in range(a.n_episodes):
        if a.task(e) != b.task(e):
            raise differ(f"the task of episode {e}")
        s, t = int(a.episode_starts[e]), int(a.episode_ends[e])
        for key in a.features:
            if a.timestamps(key, e).tobytes() != b.timestamps(key, e).tobytes():
                raise differ(f"timestamps/{key} of episode {e}")
            for lo in range(s, t, _BLOCK):
                hi = min(t, lo + _BLOCK)
                ra, rb = a.frame_reader(key), b.frame_reader(key)
                if ra is not None and rb is not None:
                    if ra.raw(np.arange(lo, hi)) != rb.raw(np.arange(lo, hi)):
                        raise differ(f"the stored bytes of {key} frames {lo}..{hi} (episode {e})")
                elif a.read(key, lo, hi, e).tobytes() != b.read(key, lo, hi, e).tobytes():
                    raise differ(f"{key} frames {lo}..{hi} (episode {e})")
        frames += t - s
    return {"episodes": a.n_episodes, "frames": frames, "verified": "bit for bit"}


# ----------------------------------------------------------------------------- in place
def migrate_in_place(path, shard_frames: int | None = None, storage_options: dict | None = None) -> dict:
    keys_done, keys_kept = [], []
    with StoreWriter(path, storage_options=storage_options) as w:  # the lock; an uncommitted tail cut back
        root, n = w.root, w.n_frames
        info = dict(root.attrs[ROOT_ATTR])
        if info.get("frame_layout") != "sharded" or (shard_frames and info.get("shard_frames") != shard_frames):
            # First: a robolearn that predates shards refuses the store from now on (version 3).
            info.update(frame_layout="sharded", **({"shard_frames": int(shard_frames)} if shard_frames else {}))
            root.attrs[ROOT_ATTR] = info
            w.info = info
            w._sync()
        for key, feat in w.features.items():
            if not feat.is_image:
                continue
            arr = root[f"data/{key}"]
            if is_sharded(arr):
                _drop_old_chunks(arr, n)  # a migration killed after its switch left them
                keys_kept.append(key)
                continue
            if not frame_chunked(arr):
                raise StoreError(f"data/{key} of {path} is neither sharded nor one frame per chunk: "
                                 f"migrate it into a new store (--out)")
            new = _sharded_twin(arr, feat, shard_frames or info.get("shard_frames"))
            _write_shards(arr, new, n, w)
            _switch(arr, new, w)
            ensure_stage(root, {key: feat})
            w._arrays.clear()
            _drop_old_chunks(root[f"data/{key}"], n)
            keys_done.append(key)
        w._arrays.clear()
        w._staged_from = {k: n for k in w.features if w._sharded(k)}
    return {"store": str(path), "layout": "sharded", "migrated_keys": keys_done, "already_sharded": keys_kept,
            "frames": n, "verified": "bit for bit (each shard read back against the old files)"}


def _sharded_twin(arr: zarr.Array, feat, rows: int | None) -> zarr.Array:
    """An array in memory with arr's shape, attrs and frame codecs, sharded: its metadata is what
    data/<key>/zarr.json becomes."""
    kw = frame_array_kwargs(feat, array_codecs(feat), True, rows)
    return zarr.create_array(zarr.storage.MemoryStore(), shape=arr.shape, dtype=arr.dtype,
                             fill_value=arr.fill_value, attributes=dict(arr.attrs), **kw)


def _write_shards(old: zarr.Array, new: zarr.Array, n: int, w: StoreWriter) -> None:
    rows = int(new.shards[0])
    store, rest = old.store_path.store, (0,) * (old.ndim - 1)
    proto = default_buffer_prototype()
    for j in range(-(-n // rows)):
        lo, hi = j * rows, min(n, (j + 1) * rows)
        blobs = get_raw(old, [store_key(old, (i, *rest)) for i in range(lo, hi)])
        body = encode_shard(blobs + [None] * (rows - len(blobs)), rows)
        key = f"{old.path}/{new.metadata.encode_chunk_key((j, *rest))}"
        zsync(store.set(key, proto.buffer.from_bytes(body)))
        back = zsync(store.get(key, proto))
        if back is None or split_shard(back.to_bytes(), rows)[: hi - lo] != blobs:
            raise StoreError(f"migration check failed: shard {j} of {old.path} does not read back as the "
                             f"frames {lo}..{hi} it was written from; the store still reads the old files")
    w._sync()


def _switch(old: zarr.Array, new: zarr.Array, w: StoreWriter) -> None:
    """Replace data/<key>/zarr.json with the sharded metadata: one atomic write."""
    meta = new.metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"]
    zsync(old.store_path.store.set(f"{old.path}/zarr.json", meta))
    w._sync()


def _drop_old_chunks(arr: zarr.Array, n: int) -> None:
    """Delete the one-file-per-frame chunks (``c/<i>/...``) a sharded array no longer reads."""
    store = arr.store_path.store
    root = getattr(store, "root", None)
    if isinstance(root, Path):
        shutil.rmtree(root / arr.path / "c", ignore_errors=True)
        return
    rest = "/".join("0" * (arr.ndim - 1))
    zsync(gather(store.delete(f"{arr.path}/c/{i}/{rest}") for i in range(n)))
