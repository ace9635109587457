"""Training skips episodes whose recording was aborted unless train.include_aborted asks for them."""

import pytest

from robolearn.experiment import build_config
from robolearn.store import EpisodeMeta, StoreError, StoreWriter
from robolearn.train.run import build_run
from tests.conftest import FEATURES, episode_frames

AE = ["policy=autoencoder", "model.channels=[8]", "train.batch_size=4", "train.val_ratio=0", "train.val_every=0",
      "train.device=cpu", "train.steps=1"]


def store_with(tmp_path, statuses):
    path = tmp_path / "s.zarr"
    with StoreWriter(path, FEATURES, fps=10) as w:
        for e, status in enumerate(statuses):
            w.add_episode(episode_frames(e, 4 + e), None, EpisodeMeta(status=status, seed=e))
    return str(path)


def test_training_skips_aborted_episodes_unless_asked(tmp_path):
    store = store_with(tmp_path, ["ok", "aborted", "ok"])
    run = build_run(build_config(AE), store)
    assert run.train_sampler.episodes.tolist() == [0, 2] and run.train_episodes == 2
    run = build_run(build_config([*AE, "train.include_aborted=true"]), store)
    assert run.train_sampler.episodes.tolist() == [0, 1, 2]


def test_a_store_of_aborted_episodes_only_says_so(tmp_path):
    store = store_with(tmp_path, ["aborted", "aborted"])
    with pytest.raises(StoreError, match="all 2 were aborted while recording .*train.include_aborted=true"):
        build_run(build_config(AE), store)
