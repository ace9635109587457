"""The one Trainer fits any Model: a model that only trains (the latent autoencoder) as well as a policy."""

import pytest
import torch

from robolearn.experiment import build_config
from robolearn.policies import Model, Policy, load
from robolearn.policies.latent import AutoencoderModel
from robolearn.store import Store
from robolearn.train import Trainer
from robolearn.train.run import build_run, train_policy

AE = ["policy=autoencoder", "model.channels=[8]", "train.batch_size=4", "train.val_ratio=0", "train.val_every=0",
      "train.log_every=1", "train.warmup_steps=1", "train.device=cpu"]


def test_trainer_trains_an_autoencoder(make_store, tmp_path):
    store = str(make_store((6, 7, 5)))
    run = build_run(build_config([*AE, "train.steps=3"]), store)
    assert isinstance(run.policy, Model) and not isinstance(run.policy, Policy)
    assert run.train_sampler.obs_keys == ["images/front"]  # its data requirements: frames only
    summary = train_policy(build_config([*AE, "train.steps=3"]), store, tmp_path / "run", progress=False)
    assert summary["steps"] == 3
    model = load(tmp_path / "run")
    assert isinstance(model, AutoencoderModel)
    batch = {k: torch.from_numpy(v) for k, v in run.train_sampler.get_batch(torch.arange(4).numpy()).items()}
    assert set(model.compute_loss(batch)) >= {"loss", "mse", "kl"}
    assert Store.open(store).n_episodes == 3


def test_trainer_refuses_what_is_not_a_model(make_store, tmp_path):
    run = build_run(build_config([*AE, "train.steps=1"]), str(make_store((6,))))
    with pytest.raises(TypeError, match="Trainer fits a robolearn.policies.base.Model .*; got Linear"):
        Trainer(torch.nn.Linear(2, 2), run.train_sampler, build_config(AE).train, tmp_path / "x")
