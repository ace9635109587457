"""Summaries and consistency checks of a store (what `robolearn data info|validate` print)."""

from __future__ import annotations

import numpy as np

from robolearn.store.layout import episode_columns
from robolearn.store.reader import Store


def store_info(path) -> dict:
    s = Store.open(path)
    return {"path": str(path), "episodes": s.n_episodes, "frames": s.n_frames, "lengths": s.lengths.tolist(),
            "fps": s.fps, "keys": sorted(s.features), "tasks": s.tasks, "bytes": s.nbytes(),
            "env_id": s.info.get("env_id")}


def validate_store(path) -> dict:
    """Every committed frame readable, table rows consistent with episode_ends, no uncommitted tail."""
    s = Store.open(path)
    problems = []
    for group in ("data", "timestamps"):
        for key in s.features:
            n = s.root[f"{group}/{key}"].shape[0]
            if n != s.n_frames:
                problems.append(f"{group}/{key} has {n} frames, {s.n_frames} committed (run `robolearn data repair`)")
    for col in episode_columns(s.version):
        n = s.root[f"meta/episodes/{col}"].shape[0]
        if n != s.n_episodes:
            problems.append(f"meta/episodes/{col} has {n} rows, {s.n_episodes} committed episodes")
    if s.root["meta/episode_ends"].shape[0] != s.n_episodes:
        problems.append("meta/episode_ends has an uncommitted tail (run `robolearn data repair`)")
    if s.n_episodes and not np.array_equal(s.episodes["length"], s.lengths):
        problems.append("episode lengths in meta/episodes disagree with meta/episode_ends")
    for i in range(s.n_episodes):
        for key in s.features:
            try:
                s.read(key, int(s.episode_starts[i]), int(s.episode_ends[i]), i)
                ts = s.timestamps(key, i)
                if len(ts) > 1 and np.any(np.diff(ts) < 0):
                    problems.append(f"episode {i}, key {key!r}: timestamps go backwards")
            except Exception as e:
                problems.append(str(e))
    return {"ok": not problems, "episodes": s.n_episodes, "frames": s.n_frames, "problems": problems}
