"""Windows of `To` observation steps and `T` action steps, gathered a whole batch at a time.

A window is anchored at a current frame t of an episode [s, e):
- observation keys read frames t-To+1 .. t   (`<key>_is_pad` marks frames before s, filled with frame s)
- the action key reads frames   t .. t+T-1    (`action_is_pad` marks frames past e-1, filled with frame e-1)
Every frame of every selected episode anchors one window.

Optional extras (off by default):
- ``future_keys={key: (K, stride)}``: ``future/<key>`` reads frames t+stride, .., t+K*stride
  (``future/<key>_is_pad`` marks frames past e-1, filled with frame e-1): the future frames PAD and
  UWM predict.
- ``episode_columns=("has_actions", ...)``: one value per window from the store's episode table.
- keys ``latents/<camera>`` read the latents cached in the store (`robolearn.store.latents`) like any
  frame-aligned key.

Episodes whose recording was aborted (episode ``status`` "aborted": a device fault cut them short) are
skipped unless ``include_aborted=True``; ``timing/*`` keys (loop timing) are read only when named.
"""

from __future__ import annotations

import numpy as np

from robolearn.store.latents import is_latent_key, latent_features, read_latents, stale_latents
from robolearn.store.layout import STATUS, StoreError
from robolearn.spaces import ACTION, future_key
from robolearn.store.reader import Store
from robolearn.store.ops import split_episodes  # noqa: F401  (the one split, re-exported here)

DEFAULT_CACHE_BYTES = 4 << 30


def usable_episodes(store: Store, episodes: np.ndarray | None = None, include_aborted: bool = False) -> np.ndarray:
    """`episodes` (default: every committed one) without those whose recording was aborted, unless asked."""
    eps = np.arange(store.n_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
    if include_aborted or not len(eps):
        return eps
    return eps[store.episodes["status"][eps] != STATUS["aborted"]]


class WindowSampler:
    """Gathers windows from a store; low-dim arrays (and images, when they fit) are cached in memory.

    >>> s = WindowSampler(store, ["state", "images/front"], n_obs_steps=2, horizon=16)  # doctest: +SKIP
    >>> batch = s.get_batch(np.arange(64))  # state (64, 2, Do), images/front (64, 2, H, W, 3), action (64, 16, Da)
    """

    def __init__(self, store: Store, obs_keys: list[str], n_obs_steps: int, horizon: int,
                 episodes: np.ndarray | None = None, action_key: str = ACTION,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, future_keys: dict[str, tuple[int, int]] | None = None,
                 episode_columns: tuple[str, ...] = (), include_aborted: bool = False):
        self.future_keys = {k: (int(n), int(stride)) for k, (n, stride) in (future_keys or {}).items()}
        wants_latents = any(map(is_latent_key, [*obs_keys, *self.future_keys]))
        latents, stale = (latent_features(store), stale_latents(store)) if wants_latents else ({}, {})
        for key in [*obs_keys, action_key, *self.future_keys]:
            if key in stale:
                raise StoreError(stale[key])
            if key not in store.features and key not in latents:
                raise StoreError(f"key {key!r} is not in store {store.path} (it has {', '.join(sorted(store.features))})")
        for key, (n, stride) in self.future_keys.items():
            if n < 1 or stride < 1:
                raise ValueError(f"future_keys[{key!r}] = ({n}, {stride}): frames and stride must be >= 1")
        unknown = sorted(set(episode_columns) - set(store.episodes))
        if unknown:
            raise StoreError(f"episode column(s) {unknown} are not in store {store.path} "
                             f"(it has {sorted(store.episodes)})")
        self.episode_columns = tuple(episode_columns)
        if n_obs_steps < 1 or horizon < 1:
            raise ValueError(f"n_obs_steps and horizon must be >= 1, got {n_obs_steps}, {horizon}")
        self.store, self.obs_keys, self.action_key = store, list(obs_keys), action_key
        self.To, self.T = int(n_obs_steps), int(horizon)
        asked = np.arange(store.n_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
        eps = usable_episodes(store, asked, include_aborted)
        aborted = len(asked) - len(eps)
        if len(eps) == 0:
            why = f"; {aborted} aborted skipped (include_aborted=True keeps them)" if aborted else ""
            raise StoreError(f"no episodes selected from {store.path} ({store.n_episodes} committed{why})")
        self.skipped_aborted = aborted
        self.episodes = eps
        starts, ends = store.episode_starts[eps], store.episode_ends[eps]
        self._anchor = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]).astype(np.int64)
        self._start = np.concatenate([np.full(e - s, s) for s, e in zip(starts, ends)]).astype(np.int64)
        self._end = np.concatenate([np.full(e - s, e) for s, e in zip(starts, ends)]).astype(np.int64)
        self._cache: dict[str, np.ndarray] = {}
        budget = cache_bytes
        for key in dict.fromkeys([action_key, *obs_keys, *self.future_keys]):
            arr = store.root[self._path(key)]
            nbytes = int(np.prod(arr.shape)) * arr.dtype.itemsize if arr.shape[0] else 0
            if nbytes <= budget:
                self._cache[key] = read_latents(store, key) if is_latent_key(key) else store.read_all(key)
                budget -= nbytes

    @property
    def reads_store(self) -> bool:
        """Whether batches read frames from the store (some key did not fit the in-memory cache)."""
        return any(k not in self._cache for k in dict.fromkeys([self.action_key, *self.obs_keys, *self.future_keys]))

    def action_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """Per window: the first store frame its action steps read and one past the last (before padding)."""
        return self._anchor, np.minimum(self._anchor + self.T, self._end)

    @staticmethod
    def _path(key: str) -> str:
        return key if is_latent_key(key) else f"data/{key}"

    def __len__(self) -> int:
        return len(self._anchor)

    def _frames(self, key: str, idx: np.ndarray) -> np.ndarray:
        if key in self._cache:
            return self._cache[key][idx]
        flat = idx.reshape(-1)
        uniq, inverse = np.unique(flat, return_inverse=True)
        got = self.store.read_frames(key, uniq)  # images: ranged reads, decoded in threads (store.frames)
        return got[inverse].reshape(*idx.shape, *got.shape[1:])

    def get_batch(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Windows by index -> numpy arrays with a leading batch axis B = len(windows)."""
        windows = np.asarray(windows, dtype=np.int64)
        t, s, e = self._anchor[windows, None], self._start[windows, None], self._end[windows, None]
        obs_raw = t - self.To + 1 + np.arange(self.To)[None]
        act_raw = t + np.arange(self.T)[None]
        obs_idx, act_idx = np.clip(obs_raw, s, e - 1), np.clip(act_raw, s, e - 1)
        batch: dict[str, np.ndarray] = {}
        obs_pad = obs_raw < s
        for key in self.obs_keys:
            batch[key] = self._frames(key, obs_idx)
            batch[f"{key}_is_pad"] = obs_pad
        batch[self.action_key] = self._frames(self.action_key, act_idx)
        batch[f"{self.action_key}_is_pad"] = act_raw > e - 1
        for key, (n, stride) in self.future_keys.items():
            fut_raw = t + stride * np.arange(1, n + 1)[None]
            batch[future_key(key)] = self._frames(key, np.minimum(fut_raw, e - 1))
            batch[f"{future_key(key)}_is_pad"] = fut_raw > e - 1
        batch["episode_index"] = np.searchsorted(self.store.episode_ends, t[:, 0], side="right")
        for col in self.episode_columns:
            batch[col] = self.store.episodes[col][batch["episode_index"]]
        return batch

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.get_batch(np.array([i])).items()}
