"""LeRobot dataset format v3.0 <-> robolearn store.

A v3.0 dataset (what LeRobot 0.4 writes and `LeRobotDataset(repo_id, root=...)` reads):

```
meta/info.json                      codebase_version, fps, features, path templates, totals
meta/tasks.parquet                  pandas frame: index = task string, column task_index
meta/episodes/chunk-*/file-*.parquet  one row per episode: length, which data/video file holds it, the
                                      episode's [from_timestamp, to_timestamp) inside each video, stats/*
meta/stats.json                     per-feature statistics
data/chunk-*/file-*.parquet         one row per frame of many episodes (observation.state, action, timestamp,
                                      frame_index, episode_index, index, task_index)
videos/<key>/chunk-*/file-*.mp4     one stream holding many episodes back to back
```

Key mapping (both ways): `observation.state` <-> `state`, `action` <-> `action`,
`observation.images.<cam>` <-> `images/<cam>`, `next.reward` <-> `reward`, `observation.force` <-> `force`.
Other LeRobot features are skipped on import and named in the summary and in the store attrs
(`skipped_features`); the original LeRobot names are kept in `attrs["lerobot_keys"]` so an export writes them back.
Low-dim features become float32. Timestamps are LeRobot's `timestamp` column, restarting at 0 in each
episode. On export the timestamps are `frame_index / fps`: LeRobot finds video frames at
`from_timestamp + timestamp`, so it needs that grid, not capture times.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robolearn.store.staging import staged
from robolearn.store.interop.video import VideoReader, VideoWriter, video_info
from robolearn.store.layout import EpisodeMeta, Feature, StoreError
from robolearn.store.reader import Store
from robolearn.store.writer import StoreWriter

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILE_MB = 100  # a data file is closed once it reaches this size (LeRobot's defaults)
VIDEO_FILE_MB = 200
BOOKKEEPING = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
               "task_index": "int64"}
LOWDIM_NAMES = {"observation.state": "state", "action": "action", "next.reward": "reward",
                "observation.force": "force"}
IMAGE_PREFIX = "observation.images."
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
IMAGE_STATS_FRAMES = 100  # frames sampled per episode for image statistics
IMAGE_STATS_SIDE = 150  # and strided down to about this many pixels a side


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow is in the interop extra
        raise StoreError("LeRobot import/export needs pyarrow: pip install 'robolearn[interop]'") from e
    return pa, pq


# ---------------------------------------------------------------------------------------------- import


def read_info(root: Path) -> dict:
    """meta/info.json of a v3.0 dataset; anything else is refused with a sentence saying what was found."""
    path = root / "meta" / "info.json"
    if not root.is_dir():
        raise StoreError(f"{root} is not a LeRobot dataset folder (expected a directory with meta/info.json)")
    if not path.is_file():
        raise StoreError(f"{root} is not a LeRobot dataset: {path} is missing")
    try:
        info = json.loads(path.read_text())
    except ValueError as e:
        raise StoreError(f"{path} is not valid JSON: {e}") from e
    version = str(info.get("codebase_version", "?"))
    if not version.startswith("v3."):
        raise StoreError(f"{root} is a LeRobot {version} dataset; robolearn reads format v3.0 only "
                         f"(convert it with LeRobot's convert_dataset_v21_to_v30 first)")
    for key in ("fps", "features", "data_path"):
        if key not in info:
            raise StoreError(f"{path} lacks {key!r}: not a complete LeRobot v3.0 info.json")
    return info


def _store_key(name: str, spec: dict) -> tuple[str | None, str]:
    """(store key, '') for a LeRobot feature robolearn keeps, else (None, why it is skipped)."""
    if name in BOOKKEEPING:
        return None, ""
    if spec.get("dtype") in ("video", "image"):
        if (spec.get("info") or {}).get("video.is_depth_map"):
            return None, "depth stored as video is not imported"
        cam = name[len(IMAGE_PREFIX):] if name.startswith(IMAGE_PREFIX) else (
            "image" if name == "observation.image" else None)
        if not cam or "/" in cam:
            return None, "camera name is not observation.images.<camera>"
        if len(spec.get("shape", ())) != 3 or spec["shape"][2] != 3:
            return None, f"camera shape {spec.get('shape')} is not (H, W, 3)"
        return f"images/{cam}", ""
    if name in LOWDIM_NAMES:
        return LOWDIM_NAMES[name], ""
    return None, "no robolearn feature key for it"


def _names(spec: dict) -> list[str] | None:
    names = spec.get("names")
    if isinstance(names, dict) and len(names) == 1:  # older datasets: {"motors": [...]}
        names = next(iter(names.values()))
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    return None


def _plan_import(info: dict) -> tuple[dict[str, Feature], dict[str, str], dict[str, str], dict[str, list]]:
    features, keys, skipped, names = {}, {}, {}, {}
    for name, spec in info["features"].items():
        key, why = _store_key(name, spec)
        if key is None:
            if why:
                skipped[name] = why
            continue
        shape = tuple(int(s) for s in spec["shape"])
        if key.startswith("images/"):
            features[key] = Feature(shape, "uint8")
        else:
            features[key] = Feature(shape, "float32")
            if _names(spec) is not None:
                names[key] = _names(spec)
        keys[key] = name
    if "action" not in features:
        raise StoreError("the LeRobot dataset has no 'action' feature; a robolearn store needs actions")
    return features, keys, skipped, names


def _read_tasks(root: Path) -> dict[int, str]:
    import pandas as pd

    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        raise StoreError(f"{root} is not a complete LeRobot v3.0 dataset: {path} is missing")
    df = pd.read_parquet(path)
    if "task" in df.columns:  # a frame written with the index reset
        return {int(i): str(t) for t, i in zip(df["task"], df["task_index"])}
    return {int(i): str(t) for t, i in zip(df.index, df["task_index"])}


def _read_episodes(root: Path) -> list[dict]:
    _, pq = _pa()
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise StoreError(f"{root} is not a complete LeRobot v3.0 dataset: no meta/episodes/chunk-*/file-*.parquet")
    rows = []
    for f in files:
        cols = [c for c in pq.read_schema(f).names if not c.startswith("stats/")]
        rows.extend(pq.read_table(f, columns=cols).to_pylist())
    return sorted(rows, key=lambda r: r["episode_index"])


def _column(table, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A parquet column as (N, *shape), whether stored as scalars, fixed-size or variable lists."""
    pa, _ = _pa()
    arr = table.column(name).combine_chunks()
    n = len(arr)
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        arr = arr.flatten()
    values = arr.to_numpy(zero_copy_only=False)
    if values.size != n * int(np.prod(shape)):
        raise StoreError(f"column {name!r} does not hold {list(shape)} values per frame")
    return values.reshape(n, *shape)


def _decode_images(table, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """dtype "image" features: PNG/JPEG bytes in a {bytes, path} struct column."""
    import io

    from PIL import Image

    out = np.empty((table.num_rows, *shape), np.uint8)
    for i, cell in enumerate(table.column(name).to_pylist()):
        if not cell or not cell.get("bytes"):
            raise StoreError(f"image column {name!r} row {i} holds no encoded bytes")
        out[i] = np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB"))
    return out


class _Episodes:
    """Reads one episode at a time: its rows from the data parquet file it lives in (a file is read once and
    kept while consecutive episodes use it) and its frames from each camera's shared mp4."""

    def __init__(self, root: Path, info: dict, features: dict[str, Feature], keys: dict[str, str],
                 tasks: dict[int, str]):
        self.root, self.info, self.features, self.keys, self.tasks = root, info, features, keys, tasks
        self.videos = [k for k in features if features[k].is_image and info["features"][keys[k]]["dtype"] == "video"]
        self.columns = [*BOOKKEEPING, *(keys[k] for k in features if k not in self.videos)]
        self.tolerance_s = 0.4 / float(info["fps"])  # each requested time maps to its own nearest frame
        self.path, self.table, self.episode_index = None, None, None
        self.readers: dict[str, VideoReader] = {}
        self.notes: list[str] = []

    def _rows(self, ep: dict):
        _, pq = _pa()
        path = self.root / self.info["data_path"].format(chunk_index=int(ep["data/chunk_index"]),
                                                         file_index=int(ep["data/file_index"]))
        if path != self.path:
            if not path.is_file():
                raise StoreError(f"episode {ep['episode_index']}: data file {path} is missing")
            self.table = pq.read_table(path, columns=self.columns)
            self.episode_index = self.table.column("episode_index").to_numpy()
            self.path = path
        part = self.table.take(np.flatnonzero(self.episode_index == ep["episode_index"]))
        part = part.take(np.argsort(part.column("frame_index").to_numpy(), kind="stable"))
        if part.num_rows != int(ep["length"]):
            raise StoreError(f"episode {ep['episode_index']}: meta/episodes says {ep['length']} frames, "
                             f"{path} holds {part.num_rows}")
        return part

    def _video(self, key: str, ep: dict, ts: np.ndarray) -> np.ndarray:
        name = self.keys[key]
        path = self.root / self.info["video_path"].format(
            video_key=name, chunk_index=int(ep[f"videos/{name}/chunk_index"]),
            file_index=int(ep[f"videos/{name}/file_index"]))
        if key not in self.readers or self.readers[key].path != path:
            if key in self.readers:
                self.readers.pop(key).close()
            if not path.is_file():
                raise StoreError(f"episode {ep['episode_index']}: video file {path} is missing")
            self.readers[key] = VideoReader(path)
        frames = self.readers[key].frames_at(float(ep[f"videos/{name}/from_timestamp"]) + ts, self.tolerance_s)
        if frames.shape[1:] != self.features[key].shape:
            raise StoreError(f"{path}: frames are {list(frames.shape[1:])}, info.json says "
                             f"{list(self.features[key].shape)}")
        return frames

    def read(self, ep: dict) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
        """(frames per store key, timestamps, task) of one episode."""
        table = self._rows(ep)
        ts = _column(table, "timestamp", ()).astype(np.float64)
        frames = {}
        for key, feat in self.features.items():
            if key in self.videos:
                frames[key] = self._video(key, ep, ts)
            elif feat.is_image:
                frames[key] = _decode_images(table, self.keys[key], feat.shape)
            else:
                frames[key] = _column(table, self.keys[key], feat.shape).astype(np.float32)
        task_index = _column(table, "task_index", ())
        if len(np.unique(task_index)) > 1:
            self.notes.append(f"episode {ep['episode_index']} has several tasks; the first frame's is kept")
        task = self.tasks.get(int(task_index[0]), (ep.get("tasks") or [""])[0])
        return frames, ts, task

    def close(self) -> None:
        for r in self.readers.values():
            r.close()


def import_lerobot(src: str | Path, store: str | Path, overwrite: bool = False) -> dict:
    """Write every episode of the LeRobot v3.0 dataset at `src` into a new store at `store` (with `overwrite`,
    one that replaces a robolearn store there); return a summary."""
    root = Path(src)
    info = read_info(root)
    fps = float(info["fps"])
    features, keys, skipped, names = _plan_import(info)
    tasks = _read_tasks(root)
    episodes = _read_episodes(root)
    attrs = {"source_format": "lerobot_v3", "source_path": str(root.resolve()),
             "codebase_version": info["codebase_version"], "robot_type": info.get("robot_type"),
             "lerobot_keys": keys, "feature_names": names, "skipped_features": skipped}
    source = _Episodes(root, info, features, keys, tasks)
    try:
        with staged(store, kind="store", overwrite=overwrite) as tmp, StoreWriter(tmp, features, fps, attrs=attrs) as writer:
            for ep in episodes:
                frames, ts, task = source.read(ep)
                writer.add_episode(frames, {k: ts for k in features},
                                   EpisodeMeta(task=task, declared_fps=fps, source=f"lerobot:{root.resolve()}"))
    finally:
        source.close()
    return {"format": "lerobot", "source": str(src), "store": str(store), "episodes": len(episodes),
            "frames": int(sum(int(ep["length"]) for ep in episodes)), "fps": fps, "keys": sorted(features),
            "tasks": [tasks[i] for i in sorted(tasks)], "skipped": skipped, "notes": source.notes}


# ---------------------------------------------------------------------------------------------- export


def _export_name(key: str, store: Store) -> str | None:
    kept = (store.info.get("lerobot_keys") or {}).get(key)
    if kept:
        return kept
    if key.startswith("images/"):
        return IMAGE_PREFIX + key.split("/", 1)[1]
    return {v: k for k, v in LOWDIM_NAMES.items()}.get(key)


def _export_names(key: str, store: Store, dim: int) -> list[str]:
    names = (store.info.get("feature_names") or {}).get(key)
    if isinstance(names, list) and len(names) == dim:
        return list(names)
    if key == "state" and store.info.get("state_layout"):
        out = []
        for name, start, stop in store.info["state_layout"]:
            out += [name] if stop - start == 1 else [f"{name}_{j}" for j in range(stop - start)]
        if len(out) == dim:
            return out
    return [f"{key}_{j}" for j in range(dim)]


def _stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """min/max/mean/std/count and quantiles per dimension of x (N, D)."""
    x64 = x.astype(np.float64)
    q = np.quantile(x64, QUANTILES, axis=0)
    out = {"min": x.min(0), "max": x.max(0), "mean": x64.mean(0), "std": x64.std(0),
           "count": np.array([len(x)], dtype=np.int64)}
    out.update({f"q{int(round(p * 100)):02d}": q[i] for i, p in enumerate(QUANTILES)})
    return out


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per channel on a 0..1 scale, shaped (3, 1, 1) as LeRobot stores them."""
    step = max(1, max(frames.shape[1:3]) // IMAGE_STATS_SIDE)
    px = frames[:, ::step, ::step].reshape(-1, 3).astype(np.float64) / 255.0
    s = _stats(px)
    out = {k: (v.reshape(3, 1, 1) if k != "count" else np.array([len(frames)], np.int64)) for k, v in s.items()}
    return out


def _merge_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset stats from per-episode ones: exact min/max/mean/std, count-weighted quantiles (as LeRobot)."""
    n = np.array([float(p["count"][0]) for p in parts])
    w = (n / n.sum()).reshape(-1, *([1] * parts[0]["mean"].ndim))
    means = np.stack([p["mean"] for p in parts])
    mean = (w * means).sum(0)
    var = (w * (np.stack([p["std"] for p in parts]) ** 2 + (means - mean) ** 2)).sum(0)
    out = {"min": np.min([p["min"] for p in parts], 0), "max": np.max([p["max"] for p in parts], 0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(n.sum())], np.int64)}
    for qk in (k for k in parts[0] if k.startswith("q")):
        out[qk] = (w * np.stack([p[qk] for p in parts])).sum(0)
    return out


def _hf_feature(dtype: str, shape: tuple[int, ...]) -> dict:
    value = {"dtype": dtype, "_type": "Value"}
    return value if shape == (1,) else {"feature": value, "length": int(shape[0]), "_type": "List"}


class _DataSink:
    """Rows of data/*.parquet, written a file at a time; a file is closed once it passes DATA_FILE_MB."""

    def __init__(self, root: Path, columns: dict[str, tuple[str, tuple[int, ...]]]):
        self.root, self.columns = root, columns
        self.chunk, self.file, self.parts, self.nbytes = 0, 0, [], 0
        self.hf = json.dumps({"info": {"features": {n: _hf_feature(d, s) for n, (d, s) in columns.items()}}})

    def where(self) -> tuple[int, int]:
        """(chunk_index, file_index) the next episode goes to."""
        if self.parts and self.nbytes >= DATA_FILE_MB * 1024 * 1024:
            self.flush()
            self.file += 1
            if self.file >= CHUNKS_SIZE:
                self.chunk, self.file = self.chunk + 1, 0
        return self.chunk, self.file

    def add(self, cols: dict[str, np.ndarray]) -> None:
        self.parts.append(cols)
        self.nbytes += sum(v.nbytes for v in cols.values())

    def flush(self) -> None:
        pa, pq = _pa()
        if not self.parts:
            return
        arrays = []
        for name, (dtype, shape) in self.columns.items():
            v = np.concatenate([p[name] for p in self.parts]).astype(dtype)
            arrays.append(pa.array(v.reshape(-1)) if shape == (1,) else
                          pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), int(shape[0])))
        table = pa.Table.from_arrays(arrays, names=list(self.columns)).replace_schema_metadata(
            {"huggingface": self.hf})
        path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        self.parts, self.nbytes = [], 0


class _VideoSink:
    """One camera's mp4 files; episodes are appended whole and a file is closed once it passes VIDEO_FILE_MB."""

    def __init__(self, root: Path, name: str, fps: float, shape: tuple[int, ...]):
        self.root, self.name, self.fps, self.shape = root, name, fps, shape
        self.chunk, self.file, self.writer, self.first = 0, 0, None, None

    def start_episode(self) -> tuple[int, int, float]:
        """(chunk_index, file_index, from_timestamp) of the episode about to be appended."""
        if self.writer is not None and self.writer.bytes_written() >= VIDEO_FILE_MB * 1024 * 1024:
            self.writer.close()
            self.writer = None
            self.file += 1
            if self.file >= CHUNKS_SIZE:
                self.chunk, self.file = self.chunk + 1, 0
        if self.writer is None:
            path = self.root / VIDEO_PATH.format(video_key=self.name, chunk_index=self.chunk, file_index=self.file)
            self.writer = VideoWriter(path, self.fps, self.shape[0], self.shape[1])
            self.first = self.first or path
        return self.chunk, self.file, self.writer.n_frames / self.fps

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _jsonable(stats: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


def export_lerobot(store: str | Path, dst: str | Path, block: int = 64) -> dict:
    """Write the store at `store` as a LeRobot v3.0 dataset folder `dst` (h264 videos); return a summary."""
    pa, pq = _pa()
    import pandas as pd

    s = Store.open(store)
    if s.n_episodes == 0:
        raise StoreError(f"store {store} has no committed episodes to export")
    fps = s.fps
    names, skipped = {}, {}
    for key in s.features:
        name = _export_name(key, s)
        if name is None:
            skipped[key] = "LeRobot has no standard feature for it"
        elif key.startswith("images/") and s.features[key].dtype != "uint8":
            skipped[key] = "only uint8 (H, W, 3) cameras are exported"
        else:
            names[key] = name
    cams = [k for k in names if s.features[k].is_image]
    lowdim = [k for k in names if not s.features[k].is_image]
    columns = {names[k]: ("float32", (int(np.prod(s.features[k].shape)),)) for k in lowdim}
    columns.update({n: (d, (1,)) for n, d in BOOKKEEPING.items()})
    task_ids: dict[str, int] = {}
    ep_rows, ep_stats, total = [], {n: [] for n in [*(names[k] for k in cams), *columns]}, 0
    with staged(dst) as tmp:
        root = Path(tmp)
        data = _DataSink(root, columns)
        videos = {k: _VideoSink(root, names[k], fps, s.features[k].shape) for k in cams}
        try:
            for e in range(s.n_episodes):
                start, stop = int(s.episode_starts[e]), int(s.episode_ends[e])
                n = stop - start
                task = s.task(e)
                ti = task_ids.setdefault(task, len(task_ids))
                cols = {names[k]: s.read(k, start, stop, e).astype(np.float32).reshape(n, -1) for k in lowdim}
                cols.update({"timestamp": (np.arange(n) / fps).astype(np.float32), "frame_index": np.arange(n),
                             "episode_index": np.full(n, e), "index": total + np.arange(n),
                             "task_index": np.full(n, ti)})
                chunk, file = data.where()
                data.add(cols)
                row = {"episode_index": e, "tasks": [task], "length": n, "data/chunk_index": chunk,
                       "data/file_index": file, "dataset_from_index": total, "dataset_to_index": total + n}
                for name, v in cols.items():
                    ep_stats[name].append(_stats(v.reshape(n, -1)))
                for k in cams:
                    vchunk, vfile, t0 = videos[k].start_episode()
                    sample = set(np.linspace(0, n - 1, min(n, IMAGE_STATS_FRAMES)).astype(int).tolist())
                    picked = []
                    for b in range(start, stop, block):
                        frames = s.read(k, b, min(stop, b + block), e)
                        videos[k].writer.add(frames)
                        picked += [f for i, f in enumerate(frames) if b - start + i in sample]
                    ep_stats[names[k]].append(_image_stats(np.stack(picked)))
                    row.update({f"videos/{names[k]}/chunk_index": vchunk, f"videos/{names[k]}/file_index": vfile,
                                f"videos/{names[k]}/from_timestamp": t0,
                                f"videos/{names[k]}/to_timestamp": t0 + n / fps})
                for name, parts in ep_stats.items():
                    row.update({f"stats/{name}/{stat}": _jsonable(parts[-1])[stat] for stat in parts[-1]})
                row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
                ep_rows.append(row)
                total += n
            data.flush()
        finally:
            for v in videos.values():
                v.close()
        meta = root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(ep_rows), root / EPISODES_PATH.format(chunk_index=0, file_index=0))
        pd.DataFrame({"task_index": list(task_ids.values())}, index=list(task_ids)).to_parquet(
            meta / "tasks.parquet")
        stats = {name: _jsonable(_merge_stats(parts)) for name, parts in ep_stats.items()}
        (meta / "stats.json").write_text(json.dumps(stats, indent=4))
        features = {}
        for k in cams:
            features[names[k]] = {"dtype": "video", "shape": list(s.features[k].shape),
                                  "names": ["height", "width", "channels"], "info": video_info(videos[k].first)}
        for k in lowdim:
            dim = int(np.prod(s.features[k].shape or (1,)))
            features[names[k]] = {"dtype": "float32", "shape": [dim], "names": _export_names(k, s, dim)}
        features.update({n: {"dtype": d, "shape": [1], "names": None} for n, d in BOOKKEEPING.items()})
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": s.info.get("robot_type"),
                "total_episodes": s.n_episodes, "total_frames": total, "total_tasks": len(task_ids),
                "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB,
                "video_files_size_in_mb": VIDEO_FILE_MB, "fps": int(fps) if float(fps).is_integer() else fps,
                "splits": {"train": f"0:{s.n_episodes}"}, "data_path": DATA_PATH,
                "video_path": VIDEO_PATH if cams else None, "features": features}
        (meta / "info.json").write_text(json.dumps(info, indent=4))
    return {"format": "lerobot", "store": str(store), "destination": str(dst), "episodes": s.n_episodes,
            "frames": total, "fps": fps, "features": sorted(features), "tasks": list(task_ids), "skipped": skipped}
