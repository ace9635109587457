"""What the store pages show, as JSON-ready dicts and encoded images (no web framework here).

Everything is read on demand from a `robolearn.store.Store`: the episode table from ``meta/episodes``
(one read per column, whatever the number of episodes), one episode's low-dimensional streams and
timestamps when its page opens, and one frame of one camera per image request. The stored JPEG of a
frame is served as it is on disk (no decoding); other images are encoded to PNG (lossless), depth and
float tactile maps through a colour map.
"""

from __future__ import annotations

import math

import numpy as np

from robolearn import spaces
from robolearn.store import Store, StoreError
from robolearn.store.layout import EPISODE_COLUMNS, STATUS, is_timing_key

HIST_BINS = 40
MAX_STAT_ROWS = 200_000
"""Per-key histograms of a larger store come from this many rows in evenly spaced contiguous blocks."""
_STAT_BLOCKS = 32


def key_kind(key: str, shape: tuple[int, ...], dtype: str) -> str:
    """How the pages show a key: ``image`` (RGB), ``map`` (depth or a float tactile array, colour-mapped),
    ``timing`` (`timing/*` scalars) or ``series`` (low-dimensional: plotted over time)."""
    if is_timing_key(key):
        return "timing"
    if len(shape) == 3 and shape[-1] == 3 and dtype == "uint8":
        return "image"
    if len(shape) >= 2 and (key.startswith(spaces.DEPTH) or key.startswith(spaces.TACTILE)):
        return "map"
    return "series"


def _kinds(store: Store) -> dict[str, str]:
    return {k: key_kind(k, f.shape, f.dtype) for k, f in store.features.items()}


def store_summary(store: Store) -> dict:
    """The store page's one call: what the store holds and its episode table, column by column."""
    columns = {c: store.episodes[c].tolist() for c in EPISODE_COLUMNS}
    kinds = _kinds(store)
    return {
        "path": store.path, "version": store.version, "fps": store.fps, "env_id": store.info.get("env_id"),
        "n_episodes": store.n_episodes, "n_frames": store.n_frames,
        "features": {k: {"shape": list(f.shape), "dtype": f.dtype, "codec": f.codec, "kind": kinds[k]}
                     for k, f in store.features.items()},
        "tasks": store.tasks, "sources": list(store.info.get("sources", [])),
        "status_names": {str(v): k for k, v in STATUS.items()},
        "episodes": columns,
    }


def _finite_list(x: np.ndarray) -> list:
    """JSON has no NaN: non-finite values become null."""
    x = np.asarray(x, dtype=np.float64)
    if np.isfinite(x).all():
        return x.tolist()
    return [v if math.isfinite(v) else None for v in x.tolist()]


def _hist(x: np.ndarray, bins: int = HIST_BINS) -> dict:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"count": 0}
    lo, hi = float(x.min()), float(x.max())
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi) if hi > lo else (lo - 0.5, hi + 0.5))
    return {"count": int(len(x)), "min": lo, "max": hi, "mean": float(x.mean()), "std": float(x.std()),
            "counts": counts.tolist(), "edges": edges.tolist()}


def _stat_rows(n_frames: int, max_rows: int) -> list[tuple[int, int]]:
    """[start, stop) row blocks to read: everything, or evenly spaced contiguous blocks of max_rows in all."""
    if n_frames <= max_rows:
        return [(0, n_frames)]
    size = max(1, max_rows // _STAT_BLOCKS)
    starts = np.linspace(0, n_frames - size, _STAT_BLOCKS).astype(np.int64)
    return [(int(s), int(s) + size) for s in starts]


def store_stats(store: Store, max_rows: int = MAX_STAT_ROWS) -> dict:
    """Dataset statistics and per-key, per-dimension histograms of the low-dimensional keys (timing
    included: NaN where a stage did not run is left out); images get the stored per-channel statistics.
    Placeholder actions of action-free episodes are left out of `action` and `action_commanded`."""
    eps = store.episodes
    lengths = store.lengths
    status = {name: int((eps["status"] == code).sum()) for name, code in STATUS.items()}
    defined = eps["success"] >= 0
    out = {
        "episodes": store.n_episodes, "frames": store.n_frames,
        "duration_s": float(store.n_frames / store.fps) if store.fps > 0 else None,
        "success_rate": float((eps["success"][defined] == 1).mean()) if defined.any() else None,
        "status": status,
        "tasks": {t: int((eps["task_index"] == i).sum()) for i, t in enumerate(store.tasks)},
        "episode_hists": {"length": _hist(lengths.astype(np.float64)),
                          "achieved_fps": _hist(eps["achieved_fps"].astype(np.float64))},
        "keys": {}, "sampled_rows": None,
    }
    if store.n_frames == 0:
        return out
    blocks = _stat_rows(store.n_frames, max_rows)
    if blocks != [(0, store.n_frames)]:
        out["sampled_rows"] = int(sum(b - a for a, b in blocks))
    real_action = np.repeat(eps["has_actions"].astype(bool), lengths)
    stored = store.stats or {}
    for key, kind in _kinds(store).items():
        feat = store.features[key]
        if kind in ("image", "map"):
            if key in stored:
                out["keys"][key] = {"kind": kind, "stored": {s: stored[key].get(s) for s in ("mean", "std", "min", "max")}}
            continue
        x = np.concatenate([store.read(key, a, b) for a, b in blocks]).reshape(-1, max(1, int(np.prod(feat.shape))))
        if key in (spaces.ACTION, spaces.ACTION_COMMANDED):
            x = x[np.concatenate([real_action[a:b] for a, b in blocks])]
        x = x.astype(np.float64)
        out["keys"][key] = {"kind": kind, "dims": [_hist(x[:, d]) for d in range(x.shape[1])]}
    return out


def _stamps(ts: np.ndarray, fps: float) -> dict:
    """Inter-frame intervals of one stream and how much they jitter (ms)."""
    dt = np.diff(ts) * 1e3
    if len(dt) == 0:
        return {"count": len(ts)}
    period = 1e3 / fps if fps > 0 else float(np.median(dt))
    return {"count": int(len(ts)), "mean_dt_ms": float(dt.mean()), "jitter_ms": float(dt.std()),
            "p50_dt_ms": float(np.percentile(dt, 50)), "p99_dt_ms": float(np.percentile(dt, 99)),
            "max_dt_ms": float(dt.max()), "min_dt_ms": float(dt.min()),
            "gaps": int((dt > 1.5 * period).sum()), "backwards": int((dt < 0).sum())}


def episode_detail(store: Store, episode: int) -> dict:
    """One episode's page: its table row, every low-dimensional stream (columns of values, null for NaN;
    `timing/*` as ms after the tick's stamp),
    every stream's timestamps (seconds from the episode's first stamp) with interval statistics, and the
    keys shown as images."""
    if not 0 <= episode < store.n_episodes:
        raise StoreError(f"episode {episode} does not exist: {store.path} has {store.n_episodes} episodes")
    row = {c: store.episodes[c][episode].item() for c in EPISODE_COLUMNS}
    sources = list(store.info.get("sources", []))
    src = int(row["source_index"])
    row.update(task=store.task(episode), source=sources[src] if 0 <= src < len(sources) else "",
               status_name=next((k for k, v in STATUS.items() if v == row["status"]), str(row["status"])))
    s, e = int(store.episode_starts[episode]), int(store.episode_ends[episode])
    kinds = _kinds(store)
    stamps = {k: store.timestamps(k, episode) for k in store.features}
    series = {}
    for key, kind in kinds.items():
        if kind in ("series", "timing"):
            x = store.read(key, s, e, episode).reshape(e - s, -1).astype(np.float64)
            if kind == "timing":  # stage times (monotonic s) -> ms after the tick's stamp (its action's)
                x = (x - stamps[key][:, None]) * 1e3
            series[key] = {"kind": kind, "dims": int(x.shape[1]), "values": [_finite_list(x[:, d]) for d in range(x.shape[1])]}
    t0 = min((float(t[0]) for t in stamps.values() if len(t)), default=0.0)
    ref = next((k for k in (spaces.ACTION, spaces.STATE) if k in stamps), None)
    timestamps = {}
    for key, ts in stamps.items():
        info = _stamps(ts, store.fps)
        if ref is not None and key != ref:
            off = (ts - stamps[ref]) * 1e3
            info.update(offset_to=ref, offset_mean_ms=float(off.mean()), offset_std_ms=float(off.std()))
        timestamps[key] = {"t": (ts - t0).tolist(), **info}
    return {"episode": episode, "n_episodes": store.n_episodes, "length": e - s, "start": s, "fps": store.fps,
            "row": row, "frames": {k: v for k, v in kinds.items() if v in ("image", "map")},
            "series": series, "timestamps": timestamps}


def _map_range(store: Store, key: str, frame: np.ndarray, stats: dict | None) -> tuple[float, float]:
    """The value range a depth/tactile map is coloured over: the stored statistics' 1st..99th percentile
    (one scale for every frame), else the frame's own finite range."""
    s = (stats or {}).get(key)
    if s and s.get("q01") is not None and s.get("q99") is not None:
        lo, hi = float(np.min(s["q01"])), float(np.max(s["q99"]))
    else:
        finite = frame[np.isfinite(frame)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _png(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"PNG encoding failed for a frame of shape {rgb.shape}")
    return buf.tobytes()


def colour_map(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W) or (H, W, C) floats -> (H, W, 3) uint8 RGB (viridis over [lo, hi]; C > 1 is shown as the
    magnitude over the last axis; NaN/inf black)."""
    import cv2

    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = x[..., 0] if x.shape[-1] == 1 else np.linalg.norm(x, axis=-1)
    x = x.reshape(x.shape[0], -1)
    bad = ~np.isfinite(x)
    u8 = (np.clip((np.nan_to_num(x, nan=lo) - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)
    rgb = cv2.applyColorMap(u8, cv2.COLORMAP_VIRIDIS)[..., ::-1].copy()
    rgb[bad] = 0
    return rgb


def frame_image(store: Store, key: str, episode: int, index: int, stats: dict | None = None) -> tuple[bytes, str]:
    """Frame `index` of `episode` for one image or map key, as (bytes, media type): the stored JPEG as it
    is on disk, else a PNG (exact for lossless images, colour-mapped for depth and float tactile)."""
    if key not in store.features:
        raise StoreError(f"unknown key {key!r}: {store.path} has {', '.join(sorted(store.features))}")
    feat = store.features[key]
    kind = key_kind(key, feat.shape, feat.dtype)
    if kind not in ("image", "map"):
        raise StoreError(f"key {key!r} is not an image or map ({kind}); frames are served for images, depth "
                         f"and tactile maps")
    if not 0 <= episode < store.n_episodes:
        raise StoreError(f"episode {episode} does not exist: {store.path} has {store.n_episodes} episodes")
    s, e = int(store.episode_starts[episode]), int(store.episode_ends[episode])
    if not 0 <= index < e - s:
        raise StoreError(f"frame {index} does not exist: episode {episode} has {e - s} frames")
    i = s + index
    if feat.codec == "jpeg":
        blob = store.chunk_bytes(key, i, i + 1)[0]
        if blob is not None:
            return blob, "image/jpeg"
    frame = store.read(key, i, i + 1, episode)[0]
    if kind == "image":
        return _png(frame), "image/png"
    lo, hi = _map_range(store, key, frame, stats)
    return _png(colour_map(frame, lo, hi)), "image/png"
