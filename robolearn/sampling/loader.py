"""torch loading: a Dataset whose items are whole batches (one vectorised gather per batch), so
DataLoader workers and the in-process path share the same code."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from robolearn.sampling.windows import WindowSampler


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


class BatchDataset(Dataset):
    """Item i is the batch of windows `batches[i]`; reshuffled per epoch by `set_epoch`."""

    def __init__(self, sampler: WindowSampler, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True):
        self.sampler, self.batch_size, self.shuffle, self.seed = sampler, batch_size, shuffle, seed
        self.drop_last = drop_last and len(sampler) >= batch_size
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        n = len(self.sampler)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        self.batches = [order[i:i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return to_torch(self.sampler.get_batch(self.batches[i]))


def make_loader(sampler: WindowSampler, batch_size: int, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, epoch: int = 0, start_batch: int = 0) -> DataLoader:
    ds = BatchDataset(sampler, batch_size, shuffle=shuffle, seed=seed)
    ds.set_epoch(epoch)
    ds.batches = ds.batches[start_batch:]
    # A private generator: creating a loader must not draw from the global torch RNG (exact resume).
    return DataLoader(ds, batch_size=None, shuffle=False, num_workers=num_workers, persistent_workers=False,
                      prefetch_factor=2 if num_workers else None,
                      generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def infinite_batches(sampler: WindowSampler, batch_size: int, seed: int = 0, num_workers: int = 0,
                     start_epoch: int = 0, start_batch: int = 0):
    """Yield (epoch, index in epoch, batch) forever, reshuffling each epoch with a seed derived from
    (seed, epoch); (start_epoch, start_batch) resumes exactly where an interrupted run stopped."""
    epoch, first = start_epoch, start_batch
    while True:
        for i, batch in enumerate(make_loader(sampler, batch_size, True, seed, num_workers, epoch, first), first):
            yield epoch, i, batch
        epoch, first = epoch + 1, 0
