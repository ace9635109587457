"""Per-episode task embeddings in every batch, for language-conditioned policies (`use_language`)."""

from __future__ import annotations

import numpy as np

from robolearn.sampling.windows import WindowSampler
from robolearn.spaces import TASK_EMBEDDING

TASK_EMBEDDING_KEY = TASK_EMBEDDING


class TaskEmbeddingSampler:
    """Wraps a WindowSampler: each window gets its episode's task embedding (B, D) as `task_embedding`.
    `table` holds one row per store episode (indexed by the store's episode index)."""

    def __init__(self, sampler: WindowSampler, table: np.ndarray):
        if len(table) != sampler.store.n_episodes:
            raise ValueError(f"task embedding table has {len(table)} rows, the store {sampler.store.n_episodes} episodes")
        self.sampler, self.table = sampler, np.asarray(table, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.sampler)

    @property
    def reads_store(self) -> bool:
        return self.sampler.reads_store

    def get_batch(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        batch = self.sampler.get_batch(windows)
        batch[TASK_EMBEDDING_KEY] = self.table[batch["episode_index"]]
        return batch

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.get_batch(np.array([i])).items()}


def with_task_embeddings(policy, store, *samplers):
    """Wrap samplers when the policy is language-conditioned (`uses_language`); otherwise return them unchanged."""
    if not policy.uses_language:
        return samplers
    from robolearn.language import task_embeddings_for

    table = task_embeddings_for(store, np.arange(store.n_episodes))
    return tuple(None if s is None else TaskEmbeddingSampler(s, table) for s in samplers)
