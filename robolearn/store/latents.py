"""Cached image latents beside a store's frames: ``latents/<camera>``, one row per frame of data/.

```
<store>/latents/<camera>   float16|float32 (n_frames, C, h, w): the scaled latent of data/images/<camera>;
                           sharded (`store.shards`): one frame per inner chunk, many frames per file
                           attrs["robolearn_latents"] = {"frames", "camera", "autoencoder", "fingerprint", "scale"}
```

The array is written under the store's writer lock, rows first and its attrs last: the attrs are the
commit marker, so an interrupted cache is invisible. It is created carrying ``robolearn_latents_cache`` (so an
interrupted cache is still known for robolearn's); caching touches nothing else: a ``latents`` entry that is
not a zarr group, or a ``latents/<camera>`` that is not such an array (a user's folder, file or array), is
refused and left as it is. Latents cover the frames committed when they
were cached; a store that grew since is reported as stale (`stale_latents`) and not read.
Latents are not features: episodes appended later need not carry them, and merge/split/filter drop them.

Example::

    from robolearn.store.latents import latent_features
    latent_features(Store.open("demo.zarr"))   # {"latents/front": Feature((4, 8, 8), "float16"), ...}
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from robolearn.output import OutputError, inspect_output
from robolearn.store.layout import Feature, StoreError
from robolearn.store.reader import Store
from robolearn.store.shards import frame_array_kwargs, shard_rows

LATENT_PREFIX = "latents/"
_CHUNK_FILE = re.compile(r"^c(\.\d+)+$")  # a shard file (chunk keys with the "." separator)
LATENT_ATTR = "robolearn_latents"
OWN_ATTR = "robolearn_latents_cache"
"""Written when a latent array is created: the array is robolearn's to replace, committed or not."""


def is_latent_key(key: str) -> bool:
    return key.startswith(LATENT_PREFIX)


def _entries(store: Store) -> dict[str, tuple[dict, object]]:
    if "latents" not in store.root:
        return {}
    out = {}
    for name, arr in store.root["latents"].arrays():
        meta = arr.attrs.get(LATENT_ATTR)
        if meta is not None:
            out[f"{LATENT_PREFIX}{name}"] = (dict(meta), arr)
    return out


def latent_info(store: Store) -> dict[str, dict]:
    """Key -> the attrs of every committed latent array (stale ones included)."""
    return {k: meta for k, (meta, _) in _entries(store).items()}


def latent_features(store: Store) -> dict[str, Feature]:
    """``latents/<camera>`` keys whose rows cover every committed frame of the store."""
    return {k: Feature(tuple(arr.shape[1:]), arr.dtype.name) for k, (meta, arr) in _entries(store).items()
            if int(meta["frames"]) == store.n_frames and arr.shape[0] >= store.n_frames}


def stale_latents(store: Store) -> dict[str, str]:
    """Key -> why it cannot be read (the store grew or shrank since the latents were cached)."""
    return {k: f"{k} covers {meta['frames']} frames, but {store.path} has {store.n_frames} committed: "
               f"run `robolearn data latents {store.path} --autoencoder RUN` again"
            for k, (meta, arr) in _entries(store).items() if int(meta["frames"]) != store.n_frames}


def read_latents(store: Store, key: str, rows: np.ndarray | slice | None = None) -> np.ndarray:
    """Rows of a latent array (all committed frames by default)."""
    feats = latent_features(store)
    if key not in feats:
        why = stale_latents(store).get(key) or (
            f"{store.path} has no {key!r} (cached latents: {sorted(feats) or 'none'}); "
            f"run `robolearn data latents {store.path} --autoencoder RUN`")
        raise StoreError(why)
    arr = store.root[key]
    if rows is None:
        return np.asarray(arr[: store.n_frames])
    if isinstance(rows, slice):
        return np.asarray(arr[rows])
    return np.asarray(arr.get_orthogonal_selection((np.asarray(rows),)))


def write_latents(path, camera: str, batches: Iterable[np.ndarray], shape: tuple[int, ...], dtype: str,
                  meta: dict) -> dict:
    """Write ``latents/<camera>`` from `batches` (consecutive row blocks covering every committed
    frame, in order) under the writer lock; the attrs (with ``frames``) are written last."""
    from robolearn.store.writer import StoreWriter

    if dtype not in ("float16", "float32"):
        raise StoreError(f"latent dtype must be 'float16' or 'float32', got {dtype!r}")
    with StoreWriter(path) as w:
        n = w.n_frames
        if f"images/{camera}" not in w.features:
            raise StoreError(f"store {path} has no key 'images/{camera}' (it has {', '.join(sorted(w.features))})")
        shape = tuple(int(x) for x in shape)
        feat = Feature(shape, dtype)
        name = f"latents/{camera}"
        if _own_slot(w.root, str(path), camera):  # an earlier cache of this camera, robolearn's: replaced
            del w.root[name]
        arr = w.root.create_array(name, shape=(n, *shape), dtype=dtype, fill_value=0, attributes={OWN_ATTR: True},
                                  **frame_array_kwargs(feat, {"compressors": ZstdCodec(level=3)}, True))
        rows = shard_rows(arr)
        row, pending = 0, []  # whole shards at a time: zarr rewrites a shard on any partial write
        for block in [*batches, None]:
            if block is not None:
                block = np.asarray(block, dtype=dtype)
                if tuple(block.shape[1:]) != shape or row + sum(map(len, pending)) + len(block) > n:
                    raise StoreError(f"latents/{camera}: block of shape {list(block.shape)} does not fit "
                                     f"({n} frames of {list(shape)}, {row + sum(map(len, pending))} written)")
                pending.append(block)
            held = sum(map(len, pending))
            if held and (held >= rows or block is None):
                data = np.concatenate(pending)
                upto = len(data) if block is None else len(data) // rows * rows
                arr[row: row + upto] = data[:upto]
                row, pending = row + upto, [data[upto:]] if upto < len(data) else []
        if row != n:
            raise StoreError(f"latents/{camera}: {row} rows written, the store has {n} committed frames")
        w._sync()
        info = {**meta, "camera": camera, "frames": int(n)}
        arr.attrs[LATENT_ATTR] = info
        w._sync()
    return info


def _own_slot(root, path: str, camera: str) -> bool:
    """Whether ``latents/<camera>`` holds an earlier cache to replace (False: nothing there); raise
    OutputError if ``latents`` or ``latents/<camera>`` holds anything robolearn did not write."""
    group, name = f"{path.rstrip('/')}/latents", f"latents/{camera}"
    refuse = f"refusing to write {name} into the store at {path}"
    found = inspect_output(group)
    if found.what in ("absent", "empty"):
        return False
    if found.what != "zarr" or not isinstance(root.get("latents"), zarr.Group):
        raise OutputError(f"{refuse}: its latents entry is not robolearn's latent cache group "
                          f"({found.describe()}); move it away")
    found = inspect_output(f"{group}/{camera}")
    if found.what in ("absent", "empty"):
        return False
    node = root.get(name) if found.what == "zarr" else None
    if isinstance(node, zarr.Array) and {LATENT_ATTR, OWN_ATTR} & set(node.attrs):
        extra = [e for e in found.entries if e not in ("zarr.json", "c/") and not _CHUNK_FILE.match(e)]
        if not extra:
            return True
        why = f"it holds {', '.join(extra)} beside the array's own files"
    elif node is not None:
        why = f"it is a zarr {'array' if isinstance(node, zarr.Array) else 'group'} without {LATENT_ATTR!r} attrs"
    else:
        why = found.describe()
    raise OutputError(f"{refuse}: {name} is not a latent cache robolearn wrote ({why}); move it away")
