"""Cut a store back to its last committed episode. Idempotent; safe to run on a healthy store.

A store whose creation was cut off (its root attrs written, some arrays not yet) gets the missing arrays
first (`create.ensure_arrays`), so every kill -9 leaves nothing, or a store that repair makes whole.
Committed frames of a sharded image array still staged (a writer killed before it packed them) are
packed into their shards (`shards.pack_staged`); staged frames past the committed ones are deleted.
"""

from __future__ import annotations

import re
from pathlib import Path

import zarr
from zarr.core.sync import sync as zsync

from robolearn.output import claim_output
from robolearn.store.backend import is_url
from robolearn.store.chunks import committed_extent, set_rows
from robolearn.store.create import ensure_arrays
from robolearn.store.layout import ROOT_ATTR, Feature, StoreError, episode_columns
from robolearn.store.shards import is_sharded, pack_staged, stage_path

_TEMP_FILE = re.compile(r"\.[0-9a-f]{32}\.partial$")  # zarr's LocalStore writes <name>.<uuid hex>.partial, then renames


def repair_root(root: zarr.Group, path) -> dict:
    n_eps, n_frames = committed_extent(root)
    cut_frames = 0
    packed = 0
    for group in ("data", "timestamps", "stage"):
        for key in root.attrs[ROOT_ATTR]["features"]:
            if group == "stage" and not _has_stage(root, key):
                continue
            arr = root[f"{group}/{key}"]
            if arr.shape[0] != n_frames:
                if group != "stage":
                    cut_frames = max(cut_frames, arr.shape[0] - n_frames)
                set_rows(arr, n_frames)  # deletes the chunks past the committed frames
            if group == "stage":
                packed += zsync(pack_staged(root[f"data/{key}"], arr, n_frames))
    cut_eps = 0
    version = root.attrs[ROOT_ATTR].get("version", 1)
    for name in [f"meta/episodes/{c}" for c in episode_columns(version)] + ["meta/episode_ends"]:
        arr = root[name]
        if arr.shape[0] != n_eps:
            cut_eps = max(cut_eps, arr.shape[0] - n_eps)
            set_rows(arr, n_eps)
    removed = 0
    if not is_url(path):
        for tmp in Path(path).rglob("*.partial"):  # a write killed between temp file and rename
            if _TEMP_FILE.search(tmp.name):
                tmp.unlink(missing_ok=True)
                removed += 1
    return {"episodes": n_eps, "frames": n_frames, "cut_frames": int(cut_frames), "cut_episodes": int(cut_eps),
            "removed_partial_files": removed, "packed_frames": int(packed)}


def _has_stage(root: zarr.Group, key: str) -> bool:
    try:
        return is_sharded(root[f"data/{key}"]) and isinstance(root[stage_path(key)], zarr.Array)
    except KeyError:
        return False


def repair(path, storage_options: dict | None = None) -> dict:
    """Take the writer lock (a dead writer's lock is taken over), create the arrays a cut-off creation left
    out, and cut back the uncommitted tail. Anything but a robolearn store at `path` is refused."""
    from robolearn.store.backend import open_root
    from robolearn.store.lock import StoreLock

    claim = claim_output(path, "store", resume=True, storage_options=storage_options)  # names what else is there
    if claim.mode != "resume":
        raise StoreError(f"no store at {path}: " + ("the path does not exist" if claim.found.what == "absent" else
                                                     "it holds no store yet (nothing to repair)"))
    lock = None if is_url(path) else StoreLock(Path(path))
    if lock:
        lock.acquire()
    try:
        root = open_root(path, "r+", storage_options)
        features = {k: Feature.from_json(v) for k, v in root.attrs[ROOT_ATTR]["features"].items()}
        created = ensure_arrays(root, features)
        return {**repair_root(root, path), "created_arrays": created}
    finally:
        if lock:
            lock.release()
