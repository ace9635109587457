"""Creating a store, crash-safely: the root's attrs come first, its arrays after, ``meta/episode_ends`` last.

The very first metadata write of a new store is the root ``zarr.json`` holding robolearn's attrs (features,
fps, schema version), written in zarr's no-overwrite mode. Every array follows; a kill -9 in between
leaves a store whose attrs say what it should hold, and `ensure_arrays` (called by `repair` and by a
writer opening the store) creates what is missing. ``meta/episode_ends`` is created last, so when it
exists every array does. Before the root ``zarr.json`` exists the folder holds at most the writer's lock,
which the output guard treats as an empty folder.
"""

from __future__ import annotations

import time

import zarr
from zarr.codecs import ZstdCodec

from robolearn.store.backend import open_backend
from robolearn.store.chunks import time_chunk
from robolearn.store.codecs import array_codecs
from robolearn.store.layout import EPISODE_COLUMNS, FRAME_LAYOUTS, ROOT_ATTR, SCHEMA_VERSION, STATUS, Feature
from robolearn.store.shards import frame_array_kwargs, is_sharded, stage_array_kwargs, stage_path

EPISODE_ENDS = "meta/episode_ends"


def root_info(features: dict[str, Feature], fps: float, attrs: dict | None = None, frame_layout: str = "sharded",
              shard_frames: int | None = None) -> dict:
    """The root attrs of a new store (under ROOT_ATTR)."""
    info = {"version": SCHEMA_VERSION, "fps": float(fps), "features": {k: f.to_json() for k, f in features.items()},
            "tasks": [], "sources": [], "status_names": dict(STATUS), "frame_layout": frame_layout,
            "created": time.time(), **(attrs or {})}
    if shard_frames is not None:
        info["shard_frames"] = int(shard_frames)
    return info


def create_root(path, features: dict[str, Feature], fps: float, attrs: dict | None = None,
                storage_options: dict | None = None, frame_layout: str = "sharded",
                shard_frames: int | None = None) -> zarr.Group:
    """Create a new store at `path`: root attrs first (never over an existing root), then every array.
    `frame_layout` (`layout.FRAME_LAYOUTS`): image arrays sharded (the default) or one file per frame;
    `shard_frames` fixes the frames per shard (default: from the frame size, `shards.shard_frames`)."""
    if frame_layout not in FRAME_LAYOUTS:
        raise ValueError(f"frame_layout must be one of {', '.join(FRAME_LAYOUTS)}, got {frame_layout!r}")
    if shard_frames is not None and int(shard_frames) < 1:
        raise ValueError(f"shard_frames must be >= 1, got {shard_frames}")
    store = open_backend(path, read_only=False, storage_options=storage_options)
    root = zarr.create_group(store, zarr_format=3, overwrite=False,
                             attributes={ROOT_ATTR: root_info(features, fps, attrs, frame_layout, shard_frames)})
    ensure_arrays(root, features)
    return root


def ensure_arrays(root: zarr.Group, features: dict[str, Feature]) -> list[str]:
    """Create every array a store with `features` holds that is missing (a creation cut off by a kill);
    return their names. A store with ``meta/episode_ends`` is complete: nothing is created but the
    ``stage/<key>`` of a sharded image array (an in-place migration cut off before it made them).
    Image arrays are laid out as the root attrs' ``frame_layout`` says (older stores: one file per frame)."""
    info = root.attrs[ROOT_ATTR]
    sharded = info.get("frame_layout", "files") == "sharded"
    if _has(root, EPISODE_ENDS):
        return ensure_stage(root, features)
    made = []

    def make(name: str, **kw) -> None:
        try:
            root.create_array(name, **kw)  # zarr's default: refuse to replace an existing node
            made.append(name)
        except zarr.errors.ContainsArrayError:
            pass

    for key, feat in features.items():
        if feat.is_image:
            make(f"data/{key}", shape=(0, *feat.shape), dtype=feat.dtype, fill_value=0,
                 **frame_array_kwargs(feat, array_codecs(feat), sharded, info.get("shard_frames")))
            made += ensure_stage(root, {key: feat})
        else:
            make(f"data/{key}", shape=(0, *feat.shape), chunks=(time_chunk(feat), *feat.shape), dtype=feat.dtype,
                 fill_value=0, **array_codecs(feat))
        make(f"timestamps/{key}", shape=(0,), chunks=(65536,), dtype="float64", compressors=ZstdCodec(level=3),
             fill_value=0.0)
    for col in EPISODE_COLUMNS:
        try:
            create_column(root, col, 0)
            made.append(f"meta/episodes/{col}")
        except zarr.errors.ContainsArrayError:
            pass
    root.require_group("meta/stats")
    make(EPISODE_ENDS, shape=(0,), chunks=(4096,), dtype="int64", fill_value=0)
    return made


def ensure_stage(root: zarr.Group, features: dict[str, Feature]) -> list[str]:
    """Create ``stage/<key>`` (where frames wait for their shard, see `shards`) for every sharded
    ``data/<key>`` that lacks one; return their names."""
    made = []
    for key, feat in features.items():
        if not feat.is_image or not _has(root, f"data/{key}") or not is_sharded(root[f"data/{key}"]):
            continue
        try:
            root.create_array(stage_path(key), **stage_array_kwargs(root[f"data/{key}"]))
            made.append(stage_path(key))
        except zarr.errors.ContainsArrayError:
            pass
    return made


def create_column(root: zarr.Group, col: str, rows: int) -> None:
    """meta/episodes/<col> with `rows` rows, all at the column's default (its fill value: nothing written)."""
    dtype, fill = EPISODE_COLUMNS[col]
    root.create_array(f"meta/episodes/{col}", shape=(rows,), chunks=(4096,), dtype=dtype, fill_value=fill)


def _has(root: zarr.Group, name: str) -> bool:
    try:
        root[name]
    except KeyError:
        return False
    return True
