"""Batches read from the store (frames not cached) are prefetched, and equal what the sampler gathers."""

import numpy as np

from robolearn.sampling import BatchDataset, WindowSampler, make_loader
from robolearn.store import Store


def test_prefetched_batches_equal_direct_gathers(make_store):
    s = Store.open(make_store((9, 12, 7)))
    uncached = WindowSampler(s, ["state", "images/front"], n_obs_steps=2, horizon=4, cache_bytes=0)
    cached = WindowSampler(s, ["state", "images/front"], n_obs_steps=2, horizon=4)
    assert uncached.reads_store and not cached.reads_store
    ds = BatchDataset(uncached, 5, seed=3)
    assert ds.prefetch and not BatchDataset(cached, 5).prefetch
    for workers in (0, 2):
        got = list(make_loader(uncached, 5, seed=3, num_workers=workers))
        assert len(got) == len(ds) == 28 // 5
        for i, b in enumerate(got):
            want = cached.get_batch(ds.batches[i])  # the same windows, from the in-memory cache
            for k, v in want.items():
                np.testing.assert_array_equal(b[k].numpy(), v, err_msg=f"batch {i} key {k} workers {workers}")
    for i in range(len(ds)):  # in process: while batch i is handed out, batch i+1 is being gathered
        ds[i]
        assert list(ds._pending) == ([i + 1] if i + 1 < len(ds) else [])
