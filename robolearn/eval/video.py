"""Rollout videos: H.264 mp4 files that play everywhere.

``write_video`` encodes uint8 ``(H, W, 3)`` frames with libx264 / yuv420p (padding to even
dimensions, which yuv420p requires). ``tile_episodes`` lays several episodes side by side in a
grid, each with a coloured bar under it: green for success, red for failure.

Example::

    frames = tile_episodes([ep0_frames, ep1_frames], successes=[True, False])
    write_video("rollouts.mp4", frames, fps=10)
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["tile_episodes", "write_video"]

SUCCESS_RGB = (40, 200, 60)
FAIL_RGB = (220, 40, 40)


def _check_frame(frame: np.ndarray, where: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"{where}: frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    return frame


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Encode ``frames`` (uint8 ``(H, W, 3)``, all the same size) to an H.264 mp4 at ``fps``.

    Odd heights/widths are padded by one black row/column. The file appears only once fully
    written (encoded to a temporary file in the same folder, then renamed).
    """
    import imageio.v2 as imageio

    if len(frames) == 0:
        raise ValueError(f"write_video: no frames to write to {path}")
    if not fps > 0:
        raise ValueError(f"write_video: fps must be > 0, got {fps}")
    path = Path(path)
    first = _check_frame(frames[0], "write_video")
    h, w = first.shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error",
        )
        try:
            for i, frame in enumerate(frames):
                frame = _check_frame(frame, "write_video")
                if frame.shape[:2] != (h, w):
                    raise ValueError(
                        f"write_video: frame {i} is {frame.shape[:2]}, expected {(h, w)} like frame 0"
                    )
                writer.append_data(np.pad(frame, pad) if pad[0][1] or pad[1][1] else frame)
        finally:
            writer.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _upscale(frame: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return frame
    return np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)


def tile_episodes(
    episodes: Sequence[Sequence[np.ndarray]],
    successes: Sequence[bool],
    *,
    min_size: int = 96,
    bar: int | None = None,
) -> list[np.ndarray]:
    """Lay episodes out in a near-square grid, one cell per episode, for one video.

    Frame ``i`` of the result shows frame ``i`` of every episode; an episode that has ended keeps
    showing its last frame. Small frames are upscaled (nearest neighbour, integer factor) until
    their shorter side is at least ``min_size`` pixels. Each cell gets a bar of ``bar`` pixels
    (default: 1/16 of the cell height, at least 3) below it, green for success and red for failure.
    The result has as many frames as the longest episode.
    """
    if len(episodes) == 0:
        raise ValueError("tile_episodes: no episodes")
    if len(successes) != len(episodes):
        raise ValueError(
            f"tile_episodes: {len(episodes)} episodes but {len(successes)} success flags"
        )
    for i, ep in enumerate(episodes):
        if len(ep) == 0:
            raise ValueError(f"tile_episodes: episode {i} has no frames")
    h, w = _check_frame(episodes[0][0], "tile_episodes").shape[:2]
    factor = max(1, math.ceil(min_size / min(h, w)))
    ch, cw = h * factor, w * factor
    bar = max(3, ch // 16) if bar is None else bar
    n = len(episodes)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cell_h = ch + bar
    length = max(len(ep) for ep in episodes)

    out: list[np.ndarray] = []
    for t in range(length):
        canvas = np.zeros((rows * cell_h, cols * cw, 3), dtype=np.uint8)
        for i, (ep, ok) in enumerate(zip(episodes, successes)):
            frame = _check_frame(ep[min(t, len(ep) - 1)], "tile_episodes")
            if frame.shape[:2] != (h, w):
                raise ValueError(
                    f"tile_episodes: episode {i} has frames of {frame.shape[:2]}, expected {(h, w)}"
                )
            r, c = divmod(i, cols)
            y, x = r * cell_h, c * cw
            canvas[y : y + ch, x : x + cw] = _upscale(frame, factor)
            canvas[y + ch : y + cell_h, x : x + cw] = SUCCESS_RGB if ok else FAIL_RGB
        out.append(canvas)
    return out
