import json

import numpy as np
import pytest
import torch

from robolearn.experiment import build_config
from robolearn.sampling import BatchDataset, WindowSampler
from robolearn.store import Store
from tests.train.test_trainer import TINY, losses


def rank_batches(sampler, batch_size, world, epoch, seed=0):
    out = []
    for rank in range(world):
        ds = BatchDataset(sampler, batch_size // world, seed=seed, rank=rank, world_size=world)
        ds.set_epoch(epoch)
        out.append(ds.batches)
    return out


def test_rank_shards_are_disjoint_cover_the_global_batches_and_are_deterministic(make_store):
    sampler = WindowSampler(Store.open(make_store((9, 8, 7, 6))), ["state"], 2, 4)  # 30 windows
    for epoch in (0, 3):
        one = BatchDataset(sampler, 8, seed=0)
        one.set_epoch(epoch)
        shards = rank_batches(sampler, 8, 2, epoch)
        assert len(shards[0]) == len(shards[1]) == 3  # 7 batches of 4 cut to a multiple of 2 ranks
        flat = [np.concatenate(s) for s in shards]
        assert not set(flat[0]) & set(flat[1])
        # at step k the ranks together hold exactly one worker's k-th batch of 8
        for k in range(3):
            assert sorted(np.concatenate([shards[0][k], shards[1][k]])) == sorted(one.batches[k])
        again = rank_batches(sampler, 8, 2, epoch)
        for a, b in zip(shards, again):
            np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(rank_batches(sampler, 8, 2, 0)[0]), np.stack(rank_batches(sampler, 8, 2, 1)[0]))


def test_rank_shards_errors(make_store):
    sampler = WindowSampler(Store.open(make_store((5,))), ["state"], 2, 4)
    with pytest.raises(ValueError, match="too few for 4 workers"):
        BatchDataset(sampler, 2, rank=0, world_size=4)
    with pytest.raises(ValueError, match="rank must be in"):
        BatchDataset(sampler, 2, rank=2, world_size=2)


def test_batch_size_must_divide_over_workers(make_store, tmp_path):
    from robolearn.train.distributed import train_distributed

    with pytest.raises(ValueError, match="not divisible by --workers 3"):
        train_distributed(build_config([*TINY, "train.steps=1"]), str(make_store((5,))), tmp_path / "r", workers=3)


@pytest.mark.slow
def test_two_cpu_workers_train_a_loadable_policy(make_store, tmp_path):
    from robolearn.policies import load
    from robolearn.train.distributed import train_distributed

    store = str(make_store((6, 7, 5)))
    out = tmp_path / "ddp"
    # flow matching: its loss falls further than diffusion's in 30 steps on this tiny store
    cfg = build_config(["policy=flow", *TINY, "train.steps=30", "train.batch_size=16", "train.lr=0.003", "train.device=cpu",
                        "train.threads=1"])
    summary = train_distributed(cfg, store, out, workers=2, progress=False)
    assert summary["steps"] == 30 and summary["workers"] == 2
    assert summary["global_batch_size"] == 16 == json.loads((out / "config.json").read_text())["train"]["batch_size"]
    ls = losses(out)
    assert len(ls) == 30 and np.all(np.isfinite(ls))
    assert np.mean(ls[-10:]) < 0.85 * np.mean(ls[:5])  # one worker: 1.43 -> 1.10
    for f in ("model.safetensors", "ema.safetensors", "config.json", "stats.json", "train_curve.png",
              "train_summary.json"):
        assert (out / f).is_file(), f
    policy = load(out)
    obs = {"state": torch.zeros(1, 2, 3), "images/front": torch.zeros(1, 2, 8, 8, 3, dtype=torch.uint8)}
    assert policy.predict_action_chunk(obs).shape == (1, 4, 2)
