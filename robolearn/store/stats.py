"""Per-key statistics (mean, std, min, max, q01, q99), computed once and stored in meta/stats."""

from __future__ import annotations

import numpy as np

from robolearn.errors import InvalidValueError
from robolearn.store.layout import ACTION_KEY, is_timing_key
from robolearn.store.reader import Store

MAX_IMAGE_FRAMES = 512  # image stats come from an evenly spaced sample of frames


def _lowdim_stats(x: np.ndarray) -> dict:
    x = x.reshape(len(x), -1).astype(np.float64)
    q01, q99 = np.quantile(x, [0.01, 0.99], axis=0)
    return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "min": x.min(0).tolist(),
            "max": x.max(0).tolist(), "q01": q01.tolist(), "q99": q99.tolist(), "count": int(len(x))}


def compute_stats(store: Store, keys: list[str] | None = None) -> dict:
    """Statistics per feature key: per dimension for low-dim keys, per channel on a 0..1 scale for images.
    By default every key but `timing/*` (loop timing, not a model input; NaN where a stage did not run)."""
    stats = {}
    for key in keys or [k for k in store.features if not is_timing_key(k)]:
        feat = store.features[key]
        if store.n_frames == 0:
            raise InvalidValueError(f"store {store.path} has no committed frames to compute statistics from")
        if feat.is_image:
            idx = np.unique(np.linspace(0, store.n_frames - 1, min(MAX_IMAGE_FRAMES, store.n_frames)).astype(int))
            frames = np.stack([store.read(key, int(i), int(i) + 1)[0] for i in idx]).astype(np.float64)
            if feat.dtype == "uint8":
                frames /= 255.0
            s = _lowdim_stats(frames.reshape(-1, frames.shape[-1]))
            s["count"] = int(len(idx))
            stats[key] = s
        elif key == ACTION_KEY and not store.episodes["has_actions"].all():
            # Action-free (video-only) episodes hold placeholder actions: only real ones count.
            keep = np.flatnonzero(store.episodes["has_actions"])
            if len(keep) == 0:
                raise InvalidValueError(f"store {store.path} has no episode with actions to compute action statistics from")
            stats[key] = _lowdim_stats(np.concatenate(
                [store.read(key, int(store.episode_starts[e]), int(store.episode_ends[e]), int(e)) for e in keep]))
        else:
            stats[key] = _lowdim_stats(store.read_all(key))
    return stats


def ensure_stats(path, keys: list[str] | None = None) -> dict:
    """Stored statistics if they cover the committed frames, else compute and store them."""
    from robolearn.store.writer import StoreWriter

    store = Store.open(path)
    stored = store.stats
    wanted = keys or [k for k in store.features if not is_timing_key(k)]
    if stored and all(k in stored for k in wanted) and stored.get("_frames") == store.n_frames:
        return {k: v for k, v in stored.items() if not k.startswith("_")}
    stats = compute_stats(store, keys)
    try:
        with StoreWriter(path) as w:
            w.set_stats({**stats, "_frames": store.n_frames})
    except Exception:
        pass  # read-only or busy store: statistics are still returned, just not cached
    return stats
