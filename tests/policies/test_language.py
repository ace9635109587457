import json

import numpy as np
import pytest
import torch

from robolearn.policies import load, make_policy, save_policy
from robolearn.language import EMBED_DIM, TaskEmbedder, task_embeddings_for
from robolearn.policies.testing import fake_batch, fake_features, fake_obs, fake_stats
from robolearn.store import Store

torch.set_num_threads(1)

TINY = dict(horizon=8, down_dims=(16, 32), diffusion_step_embed_dim=16, n_layer=2, n_head=2, n_emb=32,
            p_drop_attn=0.0, image_feature_dim=8, spatial_softmax_num_keypoints=4,
            use_language=True, language_feature_dim=8)


@pytest.fixture(scope="module")
def embedder():
    return TaskEmbedder()  # the real packaged MiniLM, loaded once for this module (~6 s)


class CountingModel:
    """Wraps the real model and records what it was asked to encode."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def encode(self, tasks, **kw):
        self.calls.append(list(tasks))
        return self.model.encode(tasks, **kw)


def test_real_model_embeds_tasks(embedder):
    emb = embedder.embed(["push the T block to the target", "open the drawer", "push the T block to the target"])
    assert emb.shape == (3, EMBED_DIM) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # the model L2-normalizes
    assert np.array_equal(emb[0], emb[2]) and not np.allclose(emb[0], emb[1])
    # Related instructions are closer than unrelated ones.
    near = embedder.embed(["push the T-shaped block onto the goal"])[0]
    assert emb[0] @ near > emb[1] @ near
    assert embedder.embed([]).shape == (0, EMBED_DIM)
    with pytest.raises(TypeError, match="list"):
        embedder.embed("open the drawer")


def test_each_task_is_encoded_once_and_cached_on_disk(embedder, tmp_path):
    path = tmp_path / "run" / "task_embeddings.json"
    first = TaskEmbedder(cache_path=path)
    first._model = counting = CountingModel(embedder.model)
    a = first.embed(["lift the cube", "stack the cubes", "lift the cube"])
    b = first.embed(["stack the cubes", "lift the cube"])
    assert counting.calls == [["lift the cube"], ["stack the cubes"]]
    assert np.array_equal(a[[1, 0]], b)
    data = json.loads(path.read_text())
    assert sorted(data["embeddings"]) == ["lift the cube", "stack the cubes"] and data["dim"] == EMBED_DIM

    second = TaskEmbedder(cache_path=path)  # served from the file: the model never loads
    assert second.cached_tasks == ["lift the cube", "stack the cubes"]
    assert np.array_equal(second.embed(["stack the cubes", "lift the cube"]), b)
    assert second._model is None

    data["model"] = "some/other-model"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="some/other-model"):
        TaskEmbedder(cache_path=path)


def test_task_embeddings_for_store_episodes(embedder, make_store):
    store = Store.open(make_store(lengths=(3, 4, 3, 2), tasks=["push", "lift", "push", ""]))
    counting = CountingModel(embedder.model)
    cached = TaskEmbedder()
    cached._model = counting
    emb = task_embeddings_for(store, [3, 0, 1, 2], cached)
    assert emb.shape == (4, EMBED_DIM)
    assert np.array_equal(emb[1], emb[3]) and not np.allclose(emb[1], emb[2])
    assert np.array_equal(emb[0], embedder.embed([""])[0])
    assert counting.calls == [[""], ["lift"], ["push"]]


@pytest.mark.parametrize("name, denoiser", [("diffusion", "unet"), ("diffusion", "transformer"),
                                            ("flow", "unet"), ("flow", "transformer")])
def test_language_changes_the_actions(name, denoiser, tmp_path):
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2)
    policy = make_policy(name, features, fake_stats(features), denoiser=denoiser, **TINY)
    assert policy.language_proj.weight.shape == (8, EMBED_DIM)
    batch = fake_batch(features, B=3, To=2, T=8)
    batch["task_embedding"] = torch.randn(3, EMBED_DIM)
    loss = policy.compute_loss(batch)["loss"]
    loss.backward()
    assert policy.language_proj.weight.grad.abs().sum() > 0

    policy.eval()
    obs = fake_obs(features, B=2, To=2)
    g = torch.Generator()
    task_a, task_b = torch.randn(1, EMBED_DIM).expand(2, -1), torch.randn(1, EMBED_DIM).expand(2, -1)
    a = policy.predict_action_chunk({**obs, "task_embedding": task_a}, generator=g.manual_seed(0))
    a2 = policy.predict_action_chunk({**obs, "task_embedding": task_a}, generator=g.manual_seed(0))
    b = policy.predict_action_chunk({**obs, "task_embedding": task_b}, generator=g.manual_seed(0))
    assert torch.equal(a, a2) and (a - b).abs().max() > 1e-6

    save_policy(policy, tmp_path)
    loaded = load(tmp_path)
    assert torch.equal(loaded.predict_action_chunk({**obs, "task_embedding": task_a}, generator=g.manual_seed(0)), a)

    with pytest.raises(KeyError, match="task_embedding.*TaskEmbedder"):
        policy.predict_action_chunk(obs)
    with pytest.raises(ValueError, match=r"'task_embedding' has shape \(2, 10\)"):
        policy.predict_action_chunk({**obs, "task_embedding": torch.randn(2, 10)})


def test_language_off_adds_no_parameters():
    features = fake_features(state_dim=4, action_dim=2)
    policy = make_policy("flow", features, fake_stats(features), **{**TINY, "use_language": False})
    assert policy.language_proj is None and not any(k.startswith("language_proj") for k in policy.state_dict())
