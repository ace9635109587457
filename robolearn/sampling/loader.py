"""torch loading: a Dataset whose items are whole batches (one vectorised gather per batch), so
DataLoader workers and the in-process path share the same code.

When a sampler reads frames from the store (they do not fit its in-memory cache), each process gathers
the next batch it will be asked for in a background thread while the current one is consumed (the
frames' reads and decodes run in the store's decoding threads, `robolearn.store.frames`)."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from robolearn.errors import InvalidValueError
from robolearn.sampling.windows import WindowSampler


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


class BatchDataset(Dataset):
    """Item i is the batch of windows `batches[i]`; reshuffled per epoch by `set_epoch`.

    Data-parallel training: every rank draws the same seeded epoch order and keeps the batches
    `rank::world_size` (cut to a multiple of world_size so all ranks take the same number of steps),
    so at step k the ranks together hold the k-th global batch of world_size * batch_size windows.
    """

    def __init__(self, sampler: WindowSampler, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1, prefetch: bool | None = None):
        """`prefetch`: gather the next batch in the background (default: when the sampler reads frames
        from the store, `WindowSampler.reads_store`)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.sampler, self.batch_size, self.shuffle, self.seed = sampler, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last and len(sampler) >= batch_size
        self.prefetch = sampler.reads_store if prefetch is None else bool(prefetch)
        self._pending: dict[int, Future] = {}
        self._pid = os.getpid()
        self._executor: ThreadPoolExecutor | None = None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        n = len(self.sampler)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        self.batches = [order[i:i + self.batch_size] for i in range(0, stop, self.batch_size)]
        if self.world_size > 1:
            usable = len(self.batches) // self.world_size * self.world_size
            if usable == 0:
                raise InvalidValueError(f"{n} training windows make {len(self.batches)} batches of {self.batch_size}: "
                                 f"too few for {self.world_size} workers (lower train.batch_size or --workers)")
            self.batches = self.batches[self.rank:usable:self.world_size]
        self._pending = {}

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not self.prefetch:
            return to_torch(self.sampler.get_batch(self.batches[i]))
        if self._pid != os.getpid():  # a DataLoader worker: the parent's thread and futures are not ours
            self._pid, self._pending, self._executor = os.getpid(), {}, None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="robolearn-prefetch")
        fut = self._pending.pop(i, None)
        batch = fut.result() if fut is not None else self.sampler.get_batch(self.batches[i])
        info = get_worker_info()
        nxt = i + (info.num_workers if info is not None else 1)  # workers take batches in turn
        if nxt < len(self.batches) and nxt not in self._pending:
            self._pending[nxt] = self._executor.submit(self.sampler.get_batch, self.batches[nxt])
        return to_torch(batch)


def make_loader(sampler: WindowSampler, batch_size: int, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, epoch: int = 0, start_batch: int = 0, rank: int = 0,
                world_size: int = 1) -> DataLoader:
    ds = BatchDataset(sampler, batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    ds.set_epoch(epoch)
    ds.batches = ds.batches[start_batch:]
    # A private generator: creating a loader must not draw from the global torch RNG (exact resume).
    return DataLoader(ds, batch_size=None, shuffle=False, num_workers=num_workers, persistent_workers=False,
                      prefetch_factor=2 if num_workers else None,
                      generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def infinite_batches(sampler: WindowSampler, batch_size: int, seed: int = 0, num_workers: int = 0,
                     start_epoch: int = 0, start_batch: int = 0, rank: int = 0, world_size: int = 1):
    """Yield (epoch, index in epoch, batch) forever, reshuffling each epoch with a seed derived from
    (seed, epoch); (start_epoch, start_batch) resumes exactly where an interrupted run stopped.
    `rank`/`world_size` give this rank its share of every epoch (see BatchDataset)."""
    epoch, first = start_epoch, start_batch
    while True:
        loader = make_loader(sampler, batch_size, True, seed, num_workers, epoch, first, rank, world_size)
        for i, batch in enumerate(loader, first):
            yield epoch, i, batch
        epoch, first = epoch + 1, 0
