"""Reading a store: only committed episodes are visible, also while a writer appends."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np
import zarr

from robolearn.store.backend import is_url, open_root
from robolearn.store.chunks import committed_extent, frame_inner
from robolearn.store.frames import FrameReader, frame_decoder
from robolearn.store.layout import (
    EPISODE_COLUMNS,
    EPISODE_EXTRA,
    ROOT_ATTR,
    SCHEMA_VERSION,
    Feature,
    StoreError,
    episode_columns,
)
from robolearn.store.shards import is_sharded, stage_path

__all__ = ["Store", "committed_extent", "open_store"]


class Store:
    """A read-only view of the committed part of a store (local path or fsspec URL such as s3://...).

    >>> store = Store.open("demo.zarr")  # doctest: +SKIP
    >>> store.n_episodes, store.features["state"].shape, store.episode(0)["action"].shape  # doctest: +SKIP
    """

    def __init__(self, root: zarr.Group, path: str):
        self.root = root
        self.path = path
        attrs = root.attrs.asdict() if hasattr(root.attrs, "asdict") else dict(root.attrs)
        if ROOT_ATTR not in attrs:
            raise StoreError(f"{path} is a zarr group but not a robolearn store (no {ROOT_ATTR!r} attrs)")
        self.info = dict(attrs[ROOT_ATTR])
        if int(self.info.get("version", 0)) > SCHEMA_VERSION:
            raise StoreError(f"{path} has store schema version {self.info['version']}; this robolearn reads "
                             f"up to {SCHEMA_VERSION}: upgrade robolearn")
        self.features = {k: Feature.from_json(v) for k, v in self.info["features"].items()}
        self.n_episodes, self.n_frames = committed_extent(root)
        self.episode_ends = (np.asarray(root["meta/episode_ends"][: self.n_episodes], dtype=np.int64)
                             if self.n_episodes else np.zeros(0, np.int64))  # a store cut off while created has none
        self.episode_starts = np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)
        self._frame_readers: dict[str, FrameReader | None] = {}
        self._storage_options: dict | None = None
        self._pid = os.getpid()

    @classmethod
    def open(cls, path: str | os.PathLike, storage_options: dict | None = None) -> "Store":
        if not is_url(path) and not Path(path).exists():
            raise StoreError(f"no store at {path}: the path does not exist")
        try:
            root = open_root(path, "r", storage_options)
        except Exception as e:  # zarr raises several types for "not a group"
            raise StoreError(f"cannot open {path} as a robolearn store: {e}") from e
        store = cls(root, str(path))
        store._storage_options = storage_options
        return store

    # -- metadata -------------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def tasks(self) -> list[str]:
        return list(self.info.get("tasks", []))

    @property
    def lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts

    @cached_property
    def episodes(self) -> dict[str, np.ndarray]:
        """The per-episode table, committed rows only; columns an older schema lacks hold their defaults.
        The columns are read concurrently (on object storage each is a few round trips)."""
        on_disk = [c for c in episode_columns(self.version) if self.n_episodes]
        with ThreadPoolExecutor(max(1, min(len(on_disk), 16))) as pool:
            read = dict(zip(on_disk, pool.map(lambda c: np.asarray(self.root[f"meta/episodes/{c}"][: self.n_episodes]),
                                              on_disk)))
        return {c: read[c] if c in read else np.full(self.n_episodes, fill, dtype=dtype)
                for c, (dtype, fill) in EPISODE_COLUMNS.items()}

    @property
    def version(self) -> int:
        """The store's schema version (`layout.SCHEMA_VERSION` for stores this robolearn creates)."""
        return int(self.info.get("version", 1))

    def task(self, episode: int) -> str:
        i = int(self.episodes["task_index"][episode])
        return self.tasks[i] if 0 <= i < len(self.tasks) else ""

    @property
    def stats(self) -> dict | None:
        return self.root["meta/stats"].attrs.get("stats") if "meta/stats" in self.root else None

    def nbytes(self) -> int:
        """Bytes on disk (local stores) or stored bytes reported by the arrays (URLs)."""
        if not is_url(self.path):
            return sum(f.stat().st_size for f in Path(self.path).rglob("*") if f.is_file())
        return sum(self.root[f"data/{k}"].nbytes_stored() for k in self.features)

    # -- data ------------------------------------------------------------------------------------
    def _check(self, episode: int) -> None:
        if not 0 <= episode < self.n_episodes:
            raise StoreError(f"episode {episode} does not exist: {self.path} has {self.n_episodes} episodes")

    def frame_reader(self, key: str) -> FrameReader | None:
        """The fast reader (`store.frames`) of a key stored one frame per chunk (images, cached latents
        ``latents/<camera>``), sharded or not; None for other keys (read those through zarr)."""
        if self._pid != os.getpid():  # a forked DataLoader worker: the parent's connections are not ours
            self._pid, self._frame_readers = os.getpid(), {}
            if is_url(self.path):
                self.root = open_root(self.path, "r", self._storage_options)
        if key not in self._frame_readers:
            arr = self.root[key if key.startswith("latents/") else f"data/{key}"]
            reader = None
            if arr.ndim >= 2 and frame_inner(arr) and (frame_decoder(arr) is not None or is_sharded(arr)):
                stage = self.root[stage_path(key)] if is_sharded(arr) and stage_path(key) in self.root else None
                reader = FrameReader(arr, stage)
            self._frame_readers[key] = reader
        return self._frame_readers[key]

    def _known(self, key: str) -> None:
        if key not in self.features:
            raise StoreError(f"unknown key {key!r}: {self.path} has {', '.join(sorted(self.features))}")

    def read(self, key: str, start: int, stop: int, episode: int | None = None) -> np.ndarray:
        """Frames [start, stop) of data/<key>; a corrupt chunk raises StoreError naming episode and key."""
        self._known(key)
        try:
            reader = self.frame_reader(key)
            if reader is not None:
                return reader.read(np.arange(start, stop))
            return np.asarray(self.root[f"data/{key}"][start:stop])
        except Exception as e:
            ep = episode if episode is not None else int(np.searchsorted(self.episode_ends, start, side="right"))
            raise StoreError(f"corrupt data in episode {ep}, key {key!r} (frames {start}..{stop}): {e}") from e

    def read_frames(self, key: str, frames: np.ndarray) -> np.ndarray:
        """Frames at the given indices of data/<key> (or ``latents/<camera>``), any order: the sampler's read."""
        frames = np.asarray(frames, dtype=np.int64)
        try:
            reader = self.frame_reader(key)
            if reader is not None:
                return reader.read(frames)
            return np.asarray(self.root[key if key.startswith("latents/") else f"data/{key}"]
                              .get_orthogonal_selection((frames,)))
        except Exception as e:
            ep = int(np.searchsorted(self.episode_ends, frames.min(), side="right")) if len(frames) else 0
            raise StoreError(f"corrupt data near episode {ep}, key {key!r}: {e}") from e

    def chunk_bytes(self, key: str, start: int, stop: int) -> list[bytes | None]:
        """The stored (encoded) chunks of frames [start, stop) of a key kept one frame per chunk (images),
        as they are on disk (a file, or a shard's byte range): no decoding. None for a chunk never written."""
        self._known(key)
        reader = self.frame_reader(key)
        if reader is None:
            raise StoreError(f"key {key!r} of {self.path} is not stored one frame per chunk")
        return reader.raw(np.arange(start, stop))

    def read_all(self, key: str) -> np.ndarray:
        return self.read(key, 0, self.n_frames)

    def episode(self, episode: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        self._check(episode)
        s, e = int(self.episode_starts[episode]), int(self.episode_ends[episode])
        return {k: self.read(k, s, e, episode) for k in (keys or list(self.features))}

    def episode_extra(self, episode: int) -> dict:
        """What the recorder kept with a committed episode besides its table row (`EpisodeMeta.extra`: e.g.
        the cameras' pairing rule and frame counters, an abort's reason); {} when nothing was kept."""
        self._check(episode)
        return dict(self.info.get(EPISODE_EXTRA, {}).get(str(episode), {}))

    def timestamps(self, key: str, episode: int) -> np.ndarray:
        self._check(episode)
        s, e = int(self.episode_starts[episode]), int(self.episode_ends[episode])
        return np.asarray(self.root[f"timestamps/{key}"][s:e])


def open_store(path: str | os.PathLike, storage_options: dict | None = None) -> Store:
    return Store.open(path, storage_options)
