"""Autoencoder as a registry entry trained by the one Trainer, latents cached in the store, diffusers VAE folders."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from robolearn.cli.main import app
from robolearn.policies import Model, Policy, load, make_policy
from robolearn.policies.latent import (
    ConvAutoencoder,
    DiffusersAutoencoder,
    fingerprint,
    load_autoencoder,
)
from robolearn.policies.testing import fake_features, fake_stats
from robolearn.sampling import WindowSampler
from robolearn.store import EpisodeMeta, Store, StoreError, StoreWriter
from robolearn.store.latents import latent_features, read_latents
from robolearn.train.latents import cache_latents, cached_latents

from .conftest import dot_episode, write_dot_store

torch.set_num_threads(1)


def test_trained_autoencoder_reconstructs_and_loads(dot_autoencoder, dot_store):
    run, summary = dot_autoencoder
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["loss"] / rows[-1]["loss"] > 10  # loss of the first 50 steps vs the last 50
    ae = load_autoencoder(run)
    assert isinstance(ae, ConvAutoencoder) and not ae.training
    assert not any(p.requires_grad for p in ae.parameters())
    assert ae.latent_shape((16, 16)) == (4, 4, 4) and 0.2 < float(ae.scale) < 20
    frames = torch.from_numpy(Store.open(dot_store).read("images/front", 0, 16)).permute(0, 3, 1, 2) / 255
    z = ae.encode(frames)
    assert z.shape == (16, 4, 4, 4)
    assert float((ae.decode(z) - frames).pow(2).mean()) < 0.01


def test_autoencoder_does_not_act():
    features = fake_features(state_dim=2, action_dim=2, cameras=("front",), image_size=16)
    policy = make_policy("autoencoder", features, fake_stats(features), channels=(8, 16))
    assert policy.input_keys == ["images/front"]
    assert isinstance(policy, Model) and not isinstance(policy, Policy)
    assert not hasattr(policy, "predict_action_chunk")
    with pytest.raises(ValueError, match="divisible by 8"):
        make_policy("autoencoder", fake_features(2, 2, cameras=("front",), image_size=12), fake_stats(features),
                    channels=(8, 16, 32))


def test_cached_latents_match_encoding_and_feed_the_sampler(dot_autoencoder, tmp_path):
    path = write_dot_store(tmp_path / "s.zarr", episodes=3, length=10)
    ae = load_autoencoder(dot_autoencoder[0])
    summary = cache_latents(path, dot_autoencoder[0], dtype="float32")
    assert summary["latents/front"]["shape"] == [4, 4, 4] and summary["latents/front"]["frames"] == 30
    assert summary["latents/front"]["fingerprint"] == fingerprint(ae)
    store = Store.open(path)
    assert set(latent_features(store)) == {"latents/front"}
    frames = torch.from_numpy(store.read("images/front", 0, 30)).permute(0, 3, 1, 2) / 255
    np.testing.assert_allclose(read_latents(store, "latents/front"), ae.encode(frames).numpy(), atol=1e-5)

    s = WindowSampler(store, ["latents/front"], 2, 4, future_keys={"latents/front": (2, 3)},
                      episode_columns=("has_actions",))
    b = s.get_batch(np.array([0, 9, 10]))
    assert b["latents/front"].shape == (3, 2, 4, 4, 4) and b["future/latents/front"].shape == (3, 2, 4, 4, 4)
    lat = read_latents(store, "latents/front")
    np.testing.assert_array_equal(b["future/latents/front"][0], lat[[3, 6]])
    np.testing.assert_array_equal(b["future/latents/front"][1], lat[[9, 9]])  # past the end: last frame, padded
    assert b["future/latents/front_is_pad"].tolist() == [[False, False], [True, True], [False, False]]
    assert b["has_actions"].tolist() == [True, True, True]

    with StoreWriter(path) as w:  # the store grows: the cache no longer covers it
        w.add_episode(dot_episode(np.random.default_rng(1), 5), None, EpisodeMeta(task="move the dot"))
    with pytest.raises(StoreError, match="covers 30 frames, but .* has 35 committed"):
        WindowSampler(Store.open(path), ["latents/front"], 1, 4)


def test_cli_data_latents(dot_autoencoder, tmp_path):
    path = write_dot_store(tmp_path / "s.zarr", episodes=2, length=6)
    result = CliRunner().invoke(app, ["data", "latents", str(path), "--autoencoder", str(dot_autoencoder[0]), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["latents/front"]["dtype"] == "float16" and out["latents/front"]["frames"] == 12
    bad = CliRunner().invoke(app, ["data", "latents", str(path), "--autoencoder", str(tmp_path)])
    assert bad.exit_code == 2 and "no config.json" in bad.output


@pytest.fixture
def diffusers_vae_dir(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                        layers_per_block=1, sample_size=16)
    vae.save_pretrained(tmp_path / "vae", safe_serialization=True)
    return tmp_path / "vae"


def test_diffusers_autoencoder_from_a_local_folder(diffusers_vae_dir, tmp_path):
    ae = load_autoencoder(diffusers_vae_dir)
    assert isinstance(ae, DiffusersAutoencoder) and ae.latent_shape((16, 16)) == (4, 8, 8)
    x = torch.rand(2, 3, 16, 16)
    assert ae.encode(x).shape == (2, 4, 8, 8) and ae.decode(ae.encode(x)).shape == (2, 3, 16, 16)

    path = write_dot_store(tmp_path / "s.zarr", episodes=2, length=6)
    assert cache_latents(path, diffusers_vae_dir)["latents/front"]["shape"] == [4, 8, 8]
    features = fake_features(state_dim=2, action_dim=2, cameras=("front",), image_size=16)
    policy = make_policy("uwm", features, fake_stats(features), autoencoder_path=str(diffusers_vae_dir), horizon=4,
                         n_action_steps=2, width=32, depth=1, heads=2, future_frames=1, frame_stride=2)
    assert policy.config.autoencoder["kind"] == "diffusers_kl"
    assert policy.config.autoencoder_fingerprint == fingerprint(ae)
    assert policy.data_requirements(cached_latents(Store.open(path))).obs_keys == ("state", "latents/front")
    from robolearn.policies import save_policy

    save_policy(policy, tmp_path / "ckpt")
    loaded = load(tmp_path / "ckpt")  # rebuilt from config.json alone, weights from the checkpoint
    assert fingerprint(loaded.autoencoder) == fingerprint(ae)
