"""Where a store lives: a local directory (atomic writes, fsync at commit) or an fsspec URL (s3://...)."""

from __future__ import annotations

import os
from pathlib import Path

import zarr
from zarr.storage import LocalStore


class SyncingLocalStore(LocalStore):
    """LocalStore (each file written to a temp name, then renamed) that remembers what it wrote,
    so a commit can fsync those files and their folders before the commit marker is written."""

    def __init__(self, root, *, read_only: bool = False):
        super().__init__(root, read_only=read_only)
        self._written: set[str] = set()

    def with_read_only(self, read_only: bool = False):
        return SyncingLocalStore(self.root, read_only=read_only)

    async def set(self, key, value):
        await super().set(key, value)
        self._written.add(key)

    def sync(self) -> None:
        """fsync every file written since the last sync, then their directories."""
        dirs: set[Path] = set()
        for key in self._written:
            p = self.root / key
            try:
                fd = os.open(p, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            dirs.add(p.parent)
        for d in dirs:
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._written.clear()


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
