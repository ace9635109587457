"""Look at one recorded episode: an mp4 of its cameras side by side and a PNG of its state/action traces.

It lives above the store (it renders with eval's video writer); `robolearn data view` calls it. The output
folder may hold other files; an earlier `episode_<i>.mp4` or `episode_<i>_traces.png` there (whoever wrote it)
is replaced only with ``overwrite`` (`robolearn.output.check_files`), and each file appears only once whole.

>>> view_episode("demo.zarr", 3, "view/")  # doctest: +SKIP
{'video': 'view/episode_3.mp4', 'traces': 'view/episode_3_traces.png', ...}
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from robolearn.eval.video import write_video
from robolearn.output import check_files
from robolearn.spaces import ACTION, CAMERA_PREFIXES, FORCE, REWARD, STATE
from robolearn.store import Store, StoreError


def _as_rgb(key: str, frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 for colour images; depth and 1-channel streams scaled to grey."""
    if frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8:
        return frames
    x = frames.reshape(frames.shape[:3]).astype(np.float64) if frames.ndim == 4 else frames.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    grey = ((x - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def side_by_side(streams: list[np.ndarray]) -> np.ndarray:
    """Tile (N, H_i, W_i, 3) streams horizontally, each resized to the tallest height."""
    import cv2

    h = max(s.shape[1] for s in streams)
    resized = []
    for s in streams:
        if s.shape[1] != h:
            w = max(1, round(s.shape[2] * h / s.shape[1]))
            s = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in s])
        resized.append(s)
    return np.concatenate(resized, axis=2)


def plot_traces(path: Path, t: np.ndarray, series: dict[str, np.ndarray], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(series), 1, figsize=(9, 2.6 * len(series)), sharex=True, squeeze=False)
    for ax, (key, x) in zip(axes[:, 0], series.items()):
        x = x.reshape(len(x), -1)
        for d in range(x.shape[1]):
            ax.plot(t, x[:, d], lw=1, label=f"{key}[{d}]")
        ax.set_ylabel(key)
        if x.shape[1] <= 10:
            ax.legend(loc="upper right", fontsize=7, ncol=min(5, x.shape[1]))
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time since episode start (s)")
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial.png")  # the file appears only once whole
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def view_episode(store: str | os.PathLike, episode: int, out: str | os.PathLike = ".",
                 storage_options: dict | None = None, overwrite: bool = False) -> dict:
    """Write `episode_<i>.mp4` (cameras side by side) and `episode_<i>_traces.png` (state, action, ...) into
    the folder `out`; a file of either name already there is refused unless `overwrite` (module docstring)."""
    s = Store.open(store, storage_options)
    if not 0 <= episode < s.n_episodes:
        raise StoreError(f"episode {episode} does not exist: {store} has {s.n_episodes} episodes (0..{s.n_episodes - 1})")
    cams = sorted(k for k in s.features if k.startswith(CAMERA_PREFIXES))
    lowdim = [k for k in (STATE, ACTION, FORCE, REWARD) if k in s.features]
    names = [f"episode_{episode}.mp4"] * bool(cams) + [f"episode_{episode}_traces.png"] * bool(lowdim)
    check_files(out, names, overwrite=overwrite)  # before anything is rendered or created
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = s.episode(episode, cams + lowdim)
    result: dict = {"episode": episode, "length": int(s.lengths[episode]), "task": s.task(episode),
                    "cameras": cams, "video": None, "traces": None}
    if cams:
        frames = side_by_side([_as_rgb(k, data[k]) for k in cams])
        result["video"] = str(write_video(out / f"episode_{episode}.mp4", list(frames), fps=s.fps))
    if lowdim:
        t = s.timestamps(lowdim[0], episode)
        t = t - t[0]
        title = f"{Path(str(store)).name} episode {episode} ({result['length']} frames, task {result['task']!r})"
        result["traces"] = str(plot_traces(out / f"episode_{episode}_traces.png", t,
                                           {k: data[k] for k in lowdim}, title))
    return result
