"""Where a store lives: a local directory (atomic writes, fsync at commit) or an fsspec URL (s3://...)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import zarr
from zarr.storage import LocalStore


_FSYNC_THREADS = 8
_fsync_pool: ThreadPoolExecutor | None = None
_fsync_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _fsync_pool
    with _fsync_pool_lock:
        if _fsync_pool is None:
            _fsync_pool = ThreadPoolExecutor(_FSYNC_THREADS, thread_name_prefix="robolearn-fsync")
        return _fsync_pool


def _fsync_path(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
    except FileNotFoundError:  # deleted since it was written (a discarded episode's chunk)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_all(paths) -> None:
    """fsync every path (files or directories); many at once run in parallel, so the file system
    journals them in a few commits instead of one per file."""
    paths = list(paths)
    if len(paths) <= 2:
        for p in paths:
            _fsync_path(p)
        return
    for _ in _pool().map(_fsync_path, paths):
        pass


class SyncingLocalStore(LocalStore):
    """LocalStore (each file written to a temp name, then renamed) that remembers what it wrote,
    so a commit can fsync those files and their folders before the commit marker is written.

    The folders to fsync are the written file's own folder and, for a folder created by the write
    (one per frame for images: ``c/<frame>/0/0``), each new folder's parent, so the new names survive
    a power loss too."""

    def __init__(self, root, *, read_only: bool = False):
        super().__init__(root, read_only=read_only)
        self._written: set[str] = set()
        self._dirs: set[Path] = set()

    def with_read_only(self, read_only: bool = False):
        return SyncingLocalStore(self.root, read_only=read_only)

    async def set(self, key, value):
        parent = (self.root / key).parent
        dirs = {parent}
        d = parent
        while d != self.root and not d.exists():  # folders this write creates
            d = d.parent
            dirs.add(d)
        await super().set(key, value)
        self._written.add(key)
        self._dirs |= dirs

    def sync(self) -> None:
        """fsync every file written since the last sync, then their directories."""
        written, self._written = self._written, set()
        dirs, self._dirs = self._dirs, set()
        fsync_all(self.root / key for key in written)
        fsync_all(dirs)


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def open_backend(path: str | os.PathLike, read_only: bool, storage_options: dict | None = None):
    """A zarr store object for a local path or an fsspec URL."""
    if is_url(path):
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(str(path), read_only=read_only, storage_options=storage_options or {})
    return SyncingLocalStore(Path(path), read_only=read_only)


def open_root(path, mode: str, storage_options: dict | None = None) -> zarr.Group:
    store = open_backend(path, read_only=(mode == "r"), storage_options=storage_options)
    return zarr.open_group(store=store, mode=mode, zarr_format=3)
