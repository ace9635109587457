"""mp4 reading and writing for the interop formats (PyAV): frames picked by timestamp, episodes appended.

LeRobot v3 keeps many episodes in one mp4 and says where each starts (`from_timestamp`); the reader here
keeps one decoder open and walks forward through the file, seeking only when asked for an earlier time
or for a time far ahead, so importing a file's episodes in order decodes each frame once.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from robolearn.store.layout import StoreError

SEEK_AHEAD_S = 2.0  # a request further ahead than this seeks to a keyframe instead of decoding through


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is in the interop extra
        raise StoreError("reading or writing mp4 needs PyAV: pip install 'robolearn[interop]'") from e
    return av


class VideoReader:
    """RGB frames (H, W, 3) uint8 of one video file, looked up by presentation time in seconds.

    >>> with VideoReader("front.mp4") as r:  # doctest: +SKIP
    ...     frames = r.frames_at(np.arange(12) / 10, tolerance_s=0.04)  # (12, H, W, 3)
    """

    def __init__(self, path: str | Path):
        av = _av()
        self.path = Path(path)
        try:
            self.container = av.open(str(path))
        except Exception as e:
            raise StoreError(f"cannot open video {path}: {e}") from e
        if not self.container.streams.video:
            self.container.close()
            raise StoreError(f"{path} holds no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self._frames = None  # the decode iterator, or None before the first read / after a seek
        self._next: tuple[float, np.ndarray] | None = None  # decoded but not yet handed out

    def _seek(self, t: float) -> None:
        tb = self.stream.time_base
        self.container.seek(max(0, int(t / tb)) if tb else 0, stream=self.stream, backward=True, any_frame=False)
        self._frames = self.container.decode(self.stream)
        self._next = None

    def _pull(self) -> tuple[float, np.ndarray] | None:
        if self._next is not None:
            out, self._next = self._next, None
            return out
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        return float(frame.pts * frame.time_base), frame.to_ndarray(format="rgb24")

    def frames_at(self, times: np.ndarray, tolerance_s: float) -> np.ndarray:
        """The frame nearest each time in `times` (ascending); every one must lie within `tolerance_s`."""
        times = np.asarray(times, dtype=np.float64)
        t0, t1 = float(times[0]), float(times[-1])
        here = None if self._next is None else self._next[0]
        if self._frames is None or here is None or t0 < here - tolerance_s or t0 > here + SEEK_AHEAD_S:
            self._seek(t0)
        stamps, frames = [], []
        while True:
            item = self._pull()
            if item is None:
                break
            t, img = item
            if t > t1 + tolerance_s:
                self._next = item  # the first frame of whatever is asked for next
                break
            if t >= t0 - tolerance_s:
                stamps.append(t)
                frames.append(img)
        if not frames:
            raise StoreError(f"{self.path} has no frame between {t0:.4f} s and {t1:.4f} s")
        stamps = np.asarray(stamps)
        nearest = np.abs(stamps[None, :] - times[:, None]).argmin(1)
        off = np.abs(stamps[nearest] - times)
        if off.max() > tolerance_s:
            bad = int(off.argmax())
            raise StoreError(f"{self.path} has no frame within {tolerance_s:.4f} s of {times[bad]:.4f} s "
                             f"(nearest at {stamps[nearest[bad]]:.4f} s)")
        return np.stack([frames[i] for i in nearest])

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def video_info(path: str | Path) -> dict:
    """What LeRobot records about a video stream in info.json (`features[key]["info"]`)."""
    av = _av()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = s.average_rate or s.guessed_rate
        fps = float(rate) if rate else 0.0
        return {
            "video.height": int(s.codec_context.height),
            "video.width": int(s.codec_context.width),
            "video.codec": s.codec_context.name,
            "video.pix_fmt": s.codec_context.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(fps) if fps.is_integer() else fps,
            "video.channels": 3,
            "has_audio": bool(c.streams.audio),
        }


class VideoWriter:
    """Appends RGB frames to one mp4 (h264, yuv420p, short GOP for random access); frame n shows at n / fps."""

    def __init__(self, path: str | Path, fps: float, height: int, width: int, crf: int = 18, gop: int = 2):
        av = _av()
        if height % 2 or width % 2:
            raise StoreError(f"cannot encode {width}x{height} frames as yuv420p h264: width and height must be even")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.container = av.open(str(path), "w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=self.rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.codec_context.gop_size = gop
        self.stream.codec_context.max_b_frames = 0  # presentation order == decode order: exact frame times
        self.stream.options = {"crf": str(crf), "preset": "medium"}
        self.n_frames = 0
        self._av = av

    def add(self, frames: np.ndarray) -> None:
        """Append frames (N, H, W, 3) uint8."""
        for img in frames:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.n_frames
            frame.time_base = 1 / self.rate
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.n_frames += 1

    def bytes_written(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
