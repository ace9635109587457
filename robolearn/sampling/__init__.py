"""Sampling windows from a store for training: index, padding masks, splits, torch loading."""

from robolearn.sampling.loader import BatchDataset, infinite_batches, make_loader, to_torch
from robolearn.sampling.windows import WindowSampler, split_episodes

__all__ = ["BatchDataset", "WindowSampler", "infinite_batches", "make_loader", "split_episodes", "to_torch"]
