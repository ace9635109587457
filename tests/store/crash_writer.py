"""A store writer to be killed: appends deterministic episodes until it is stopped.

    python -m tests.store.crash_writer STORE PROGRESS [--episodes N] [--layout sharded|files]

Every frame's values are a formula of (episode, frame) (`crash_episode`), so a checker can tell
exactly what a committed episode must hold. Episodes are written three ways, by episode index mod 3:
whole (`add_episode`), streamed in blocks of two frames (`begin_episode`), and streamed after a take
that is streamed and then aborted (a re-record: its frames are longer or shorter and must vanish). PROGRESS gets one fsync'd line per event:
`ready` once the store exists, `start E` before episode E is written, `done E` after it committed.
A sharded store (the default layout) has CRASH_SHARD_FRAMES frames per shard, so commits pack shards
often and a kill lands in packing too.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from robolearn.store import EpisodeMeta, Feature, StoreWriter

CRASH_FEATURES = {
    "state": Feature((3,), "float32"),
    "images/front": Feature((24, 32, 3), "uint8"),
    "images/wrist": Feature((16, 16, 3), "uint8", "jpeg", 90),
    "action": Feature((2,), "float32"),
}


CRASH_SHARD_FRAMES = 8


def crash_length(e: int) -> int:
    return 3 + (e * 7) % 11


def crash_episode(e: int) -> dict[str, np.ndarray]:
    """Frames of episode e (raw, before any lossy codec)."""
    n = crash_length(e)
    i = np.arange(n, dtype=np.float32)
    state = np.stack([e * 1000 + i, i, np.full(n, e, np.float32)], 1)
    front = np.zeros((n, 24, 32, 3), np.uint8)
    front[..., 0] = e % 256
    front[..., 1] = (np.arange(n) % 256)[:, None, None]
    front[..., 2] = ((np.arange(32)[None, None, :] + e) % 256)
    wrist = np.zeros((n, 16, 16, 3), np.uint8)
    wrist[..., 0] = ((e * 37) % 200 + 20)
    wrist[..., 1] = (np.arange(n) * 9 % 200 + 20)[:, None, None]
    wrist[..., 2] = 128
    action = np.stack([-(e * 1000 + i), i * 0.5], 1).astype(np.float32)
    return {"state": state, "images/front": front, "images/wrist": wrist, "action": action}


def crash_timestamps(e: int) -> np.ndarray:
    return e * 100.0 + np.arange(crash_length(e)) / 10.0


def stream_blocks(stream, e: int, block: int = 2) -> None:
    """Append episode e's frames to an open stream, `block` frames at a time."""
    frames, ts = crash_episode(e), crash_timestamps(e)
    for a in range(0, crash_length(e), block):
        stream.append({k: v[a: a + block] for k, v in frames.items()}, {k: ts[a: a + block] for k in frames})


def _log(f, line: str) -> None:
    f.write(line + "\n")
    f.flush()
    os.fsync(f.fileno())


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("progress")
    p.add_argument("--episodes", type=int, default=10**9)
    p.add_argument("--layout", choices=["sharded", "files"], default="sharded")
    args = p.parse_args(argv)
    with open(args.progress, "a") as log, StoreWriter(args.store, CRASH_FEATURES, fps=10.0, frame_layout=args.layout,
                                                      shard_frames=CRASH_SHARD_FRAMES) as w:
        _log(log, "ready")
        for _ in range(args.episodes):
            e = w.n_episodes
            _log(log, f"start {e}")
            meta = EpisodeMeta(task=f"task{e % 3}", seed=e, success=e % 2 == 0)
            if e % 3 == 0:
                ts = crash_timestamps(e)
                got = w.add_episode(crash_episode(e), {k: ts for k in CRASH_FEATURES}, meta)
            else:
                if e % 3 == 2:
                    with w.begin_episode() as take:
                        stream_blocks(take, e + 1000)
                        take.abort()
                with w.begin_episode() as st:
                    stream_blocks(st, e)
                    got = st.commit(meta)
            assert got == e
            _log(log, f"done {e}")


if __name__ == "__main__":
    main()
