"""Where a person took over from the policy: the per-frame ``intervention`` mask of a store.

A store recorded by ``robolearn deploy --teleop`` declares the ``intervention`` key (bool per frame: the
action came from the teleop device, not the policy). Every other store -- recorded by an expert, by teleop,
by deploy without a device, or before the key existed -- has no such array and reads as all False: nothing
was corrected there.

Example::

    mask = intervention_mask(store)                 # (n_frames,) bool
    per_episode = episode_interventions(store)      # {"intervention_steps": (n_episodes,), "takeovers": ...}
"""

from __future__ import annotations

import numpy as np

from robolearn.spaces import INTERVENTION
from robolearn.store.reader import Store

__all__ = ["episode_interventions", "intervention_mask", "takeover_count"]


def intervention_mask(store: Store) -> np.ndarray:
    """(n_frames,) bool over the committed frames: True where a person had taken over; all False for a
    store without the ``intervention`` key."""
    if INTERVENTION not in store.features:
        return np.zeros(store.n_frames, dtype=bool)
    return np.asarray(store.read_all(INTERVENTION), dtype=bool).reshape(-1)[: store.n_frames]


def takeover_count(mask: np.ndarray) -> int:
    """Takeovers in one episode's mask: runs of True (a rising edge, or True at the first frame)."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    return int(np.count_nonzero(m[1:] & ~m[:-1]) + (1 if len(m) and m[0] else 0))


def episode_interventions(store: Store) -> dict[str, np.ndarray]:
    """Per committed episode: ``intervention_steps`` (frames a person drove) and ``takeovers`` (runs of them)."""
    mask = intervention_mask(store)
    starts, ends = store.episode_starts, store.episode_ends
    steps = np.array([int(mask[s:e].sum()) for s, e in zip(starts, ends)], dtype=np.int64)
    runs = np.array([takeover_count(mask[s:e]) for s, e in zip(starts, ends)], dtype=np.int64)
    return {"intervention_steps": steps, "takeovers": runs}
