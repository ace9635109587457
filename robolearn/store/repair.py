"""Cut a store back to its last committed episode. Idempotent; safe to run on a healthy store."""

from __future__ import annotations

from pathlib import Path

import zarr

from robolearn.store.backend import is_url
from robolearn.store.layout import ROOT_ATTR, episode_columns


def repair_root(root: zarr.Group, path) -> dict:
    from robolearn.store.reader import committed_extent
    from robolearn.store.writer import set_rows

    n_eps, n_frames = committed_extent(root)
    cut_frames = 0
    for group in ("data", "timestamps"):
        for key in root.attrs[ROOT_ATTR]["features"]:
            arr = root[f"{group}/{key}"]
            if arr.shape[0] != n_frames:
                cut_frames = max(cut_frames, arr.shape[0] - n_frames)
                set_rows(arr, n_frames)  # deletes the chunks past the committed frames
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
            tmp.unlink(missing_ok=True)
            removed += 1
    return {"episodes": n_eps, "frames": n_frames, "cut_frames": int(cut_frames), "cut_episodes": int(cut_eps),
            "removed_partial_files": removed}


def repair(path) -> dict:
    """Take the writer lock (a dead writer's lock is taken over) and cut back the uncommitted tail."""
    from robolearn.store.backend import open_root
    from robolearn.store.lock import StoreLock
    from robolearn.store.reader import Store

    Store.open(path)  # clear error for a missing or foreign path
    lock = None if is_url(path) else StoreLock(Path(path))
    if lock:
        lock.acquire()
    try:
        return repair_root(open_root(path, "r+"), path)
    finally:
        if lock:
            lock.release()
