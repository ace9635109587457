"""Whole-store operations: merge stores, split one into train/val, filter episodes into a new store.

Each reads committed episodes and writes a *new* store through the single writer, beside the destination,
moved in only once complete (`robolearn.store.staging.staged`): a failure leaves nothing there. A
destination holding anything is refused (robolearn.output), and a robolearn store there is replaced only
with `overwrite` (it stays whole until the new store is done). Frames stored one per chunk (images) are copied as their stored chunk bytes when the destination array encodes
them the same way (same codecs, chunking, dtype, fill value): JPEG frames are never decoded and
re-encoded, so they stay bit-identical and the copy costs file reads and writes only.

>>> merge(["a.zarr", "b.zarr"], "ab.zarr")  # doctest: +SKIP
>>> split("ab.zarr", "train.zarr", "val.zarr", val_ratio=0.1, seed=0)  # doctest: +SKIP
>>> filter_store("ab.zarr", "good.zarr", success=True, min_length=50)  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from robolearn.errors import InvalidValueError
from robolearn.output import check_output
from robolearn.store.chunks import frame_inner
from robolearn.store.frames import inner_codecs
from robolearn.store.layout import ACTION_KEY, EpisodeMeta, StoreError
from robolearn.store.reader import Store
from robolearn.store.staging import staged
from robolearn.store.writer import StoreWriter

# Root attrs that describe the schema or are rebuilt by the writer; everything else (env_id, ...) is carried over.
_SCHEMA_ATTRS = ("version", "fps", "features", "tasks", "sources", "created")


def split_episodes(n_episodes: int, val_ratio: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Episode-level train/val split, deterministic for a seed. Keeps at least one training episode.
    The one split: `data split` and the sampler's train/val episodes (robolearn.sampling re-exports it)."""
    if not 0.0 <= val_ratio < 1.0:
        raise InvalidValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
    order = np.random.default_rng(seed).permutation(n_episodes)
    n_val = min(int(round(n_episodes * val_ratio)), max(0, n_episodes - 1))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _meta(src: Store, e: int, action_free: bool = False) -> EpisodeMeta:
    row = {c: v[e] for c, v in src.episodes.items()}
    sources = list(src.info.get("sources", []))
    si = int(row["source_index"])
    return EpisodeMeta(
        task=src.task(e), success=None if int(row["success"]) < 0 else bool(row["success"]),
        declared_fps=float(row["declared_fps"]), achieved_fps=float(row["achieved_fps"]),
        dropped_frames=int(row["dropped_frames"]), late_frames=int(row["late_frames"]),
        rate_flagged=bool(row["rate_flagged"]), has_actions=bool(row["has_actions"]) and not action_free,
        start_time=float(row["start_time"]), seed=int(row["seed"]),
        source=sources[si] if 0 <= si < len(sources) else "",
        status=int(row["status"]), retries=int(row["retries"]), held_ticks=int(row["held_ticks"]),
        missed_ticks=int(row["missed_ticks"]))


_BLOCK = 256  # frames per block: a long episode is copied without holding it in memory


def frame_encoding(arr) -> tuple | None:
    """How `arr` encodes one frame (dtype, frame shape, fill value, the frame chunk's codecs), whether it
    is sharded or one file per frame; None if a frame is not one chunk."""
    if not frame_inner(arr):
        return None
    meta = arr.metadata.to_dict()
    return (str(meta["data_type"]), tuple(arr.shape[1:]), str(meta["fill_value"]),
            tuple(repr(c.to_dict()) for c in inner_codecs(arr)))


def raw_copy_keys(src: Store, w: StoreWriter) -> list[str]:
    """Keys of `src` whose frames `w` takes as their stored bytes: one frame per chunk in both (in a
    shard or a file of its own), encoded the same way."""
    keys = []
    for k in w.features:
        if k in src.features:
            a, b = frame_encoding(src.root[f"data/{k}"]), frame_encoding(w._array(f"data/{k}"))
            if a is not None and a == b and src.frame_reader(k) is not None:
                keys.append(k)
    return keys


def _whole(blob: bytes | None, jpeg: bool) -> bool:
    """A cheap check that a JPEG chunk is not truncated (start and end markers); other codecs pass."""
    return blob is None or not jpeg or (blob[:2] == b"\xff\xd8" and blob.rstrip(b"\x00")[-2:] == b"\xff\xd9")


def copy_episode(src: Store, e: int, w: StoreWriter, raw_keys: list[str] | None = None,
                 action_free: bool = False) -> int:
    """Copy committed episode `e` of `src` into the writer's store as a new episode; return its index.
    Keys in `raw_keys` (see `raw_copy_keys`) go over as their stored chunk bytes. `action_free`
    writes it as a video-only episode: ``has_actions`` false and its actions zeroed, so nothing of
    them reaches a model (UWM/PAD co-training on action-free data)."""
    raw_keys = raw_copy_keys(src, w) if raw_keys is None else raw_keys
    if action_free:
        if ACTION_KEY not in src.features:
            raise StoreError(f"{src.path} has no {ACTION_KEY!r} key: there are no actions to drop")
        raw_keys = [k for k in raw_keys if k != ACTION_KEY]
    s0, e0 = int(src.episode_starts[e]), int(src.episode_ends[e])
    jpeg = {k: src.features[k].codec == "jpeg" for k in raw_keys}
    stamps = {k: src.timestamps(k, e) for k in src.features}
    with w.begin_episode() as st:
        for a in range(s0, e0, _BLOCK):
            b = min(a + _BLOCK, e0)
            chunks = {k: src.chunk_bytes(k, a, b) for k in raw_keys}
            for k, blobs in list(chunks.items()):
                if not all(_whole(x, jpeg[k]) for x in blobs):
                    src.read(k, a, b, e)  # names the corrupt frame (StoreError); else re-encode these
                    del chunks[k]
            frames = {k: src.read(k, a, b, e) for k in src.features if k not in chunks}
            if action_free:
                frames[ACTION_KEY] = np.zeros_like(frames[ACTION_KEY])
            st.append(frames, {k: v[a - s0: b - s0] for k, v in stamps.items()}, chunks=chunks)
        return st.commit(_meta(src, e, action_free))


def copy_episodes(parts: list[tuple[Store, np.ndarray]] | list[tuple[Store, np.ndarray, bool]], out,
                  derived: dict, overwrite: bool = False) -> dict:
    """Write the given (store, episode indices[, action_free]) parts, in order, into a new store at `out`
    (`overwrite`: replace a robolearn store there; anything else at `out` is refused, see robolearn.output)."""
    if not any(len(part[1]) for part in parts):
        raise StoreError(f"no episodes selected: nothing to write to {out}")
    first = parts[0][0]
    attrs = {k: v for k, v in first.info.items() if k not in _SCHEMA_ATTRS}
    attrs["derived"] = derived
    # all or nothing: a failure leaves nothing at `out`, and an old store there stays whole until the new one is done
    with staged(out, "store", overwrite=overwrite) as tmp:
        with StoreWriter(tmp, first.features, fps=first.fps, attrs=attrs, overwrite=overwrite) as w:
            for src, eps, *flag in parts:
                raw_keys = raw_copy_keys(src, w)
                for e in eps:
                    copy_episode(src, int(e), w, raw_keys, action_free=bool(flag and flag[0]))
            n_eps, n_frames = w.n_episodes, w.n_frames
    return {"store": str(out), "episodes": n_eps, "frames": n_frames}


def merge(sources: list[str | os.PathLike], out: str | os.PathLike, overwrite: bool = False) -> dict:
    """Concatenate stores with identical features and fps; task and source strings are remapped."""
    if len(sources) < 1:
        raise StoreError("merge needs at least one source store")
    stores = [Store.open(p) for p in sources]
    ref = stores[0]
    for s in stores[1:]:
        if s.info["features"] != ref.info["features"]:
            diff = sorted(set(s.info["features"]) ^ set(ref.info["features"])) or [
                k for k in ref.info["features"] if s.info["features"].get(k) != ref.info["features"][k]]
            raise StoreError(f"cannot merge {s.path} into {ref.path}: features differ ({', '.join(diff)})")
        if s.fps != ref.fps:
            raise StoreError(f"cannot merge {s.path} ({s.fps} fps) with {ref.path} ({ref.fps} fps)")
    parts = [(s, np.arange(s.n_episodes)) for s in stores]
    out_info = copy_episodes(parts, out, {"op": "merge", "from": [str(p) for p in sources]}, overwrite)
    return {**out_info, "from": {str(s.path): s.n_episodes for s in stores}}


def split(store: str | os.PathLike, out_train, out_val, val_ratio: float = 0.1, seed: int = 0,
          overwrite: bool = False) -> dict:
    """Episode-level train/val split into two new stores (`split_episodes`, the sampler's split, same seed)."""
    src = Store.open(store)
    if src.n_episodes < 2:
        raise StoreError(f"{store} has {src.n_episodes} episode(s); a split needs at least 2")
    train, val = split_episodes(src.n_episodes, val_ratio, seed)
    if len(val) == 0:
        raise StoreError(f"val_ratio {val_ratio} of {src.n_episodes} episodes selects no validation episode")
    check_output(out_train, "store", overwrite=overwrite)  # both refused before either is written
    check_output(out_val, "store", overwrite=overwrite)
    derived = {"op": "split", "from": str(store), "val_ratio": val_ratio, "seed": seed}
    a = copy_episodes([(src, train)], out_train, {**derived, "part": "train", "episodes": train.tolist()}, overwrite)
    b = copy_episodes([(src, val)], out_val, {**derived, "part": "val", "episodes": val.tolist()}, overwrite)
    return {"train": {**a, "source_episodes": train.tolist()}, "val": {**b, "source_episodes": val.tolist()}}


def select_episodes(src: Store, success: bool | None = None, task: str | None = None,
                    min_length: int | None = None, max_length: int | None = None,
                    episodes: list[int] | None = None) -> np.ndarray:
    """Indices of the committed episodes that pass every given condition (`episodes`: only these)."""
    keep = np.ones(src.n_episodes, bool)
    if episodes is not None:
        bad = [e for e in episodes if not 0 <= e < src.n_episodes]
        if bad:
            raise StoreError(f"episodes {bad[:5]} are not in {src.path} (it has {src.n_episodes} episodes)")
        keep &= np.isin(np.arange(src.n_episodes), episodes)
    if success is not None:
        keep &= src.episodes["success"] == int(success)
    if task is not None:
        if task not in src.tasks:
            raise StoreError(f"task {task!r} is not in {src.path}; its tasks are {src.tasks}")
        keep &= src.episodes["task_index"] == src.tasks.index(task)
    if min_length is not None:
        keep &= src.lengths >= min_length
    if max_length is not None:
        keep &= src.lengths <= max_length
    return np.flatnonzero(keep)


def filter_store(store: str | os.PathLike, out, success: bool | None = None, task: str | None = None,
                 min_length: int | None = None, max_length: int | None = None,
                 episodes: list[int] | None = None, action_free: bool = False, overwrite: bool = False) -> dict:
    """Copy the episodes that pass the conditions (success, task, length bounds, an explicit episode
    list) into a new store; `action_free` writes them as video-only episodes (see `copy_episode`)."""
    src = Store.open(store)
    eps = select_episodes(src, success, task, min_length, max_length, episodes)
    cond = {"success": success, "task": task, "min_length": min_length, "max_length": max_length}
    if len(eps) == 0:
        given = " among the given episodes" if episodes is not None else ""
        raise StoreError(f"no episode of {store} matches "
                         f"{', '.join(f'{k}={v}' for k, v in cond.items() if v is not None)}{given}")
    out_info = copy_episodes([(src, eps, action_free)], out, {"op": "filter", "from": str(store), **cond,
                                                             "action_free": action_free, "episodes": eps.tolist()},
                             overwrite)
    return {**out_info, "source_episodes": eps.tolist()}
