import pytest
import torch
import torch.nn.functional as F

from robolearn.policies import make_policy
from robolearn.policies.diffusion import DiffusionConfig
from robolearn.policies.nets.encoders import ResNetEncoder, crop, load_pretrained_encoder
from robolearn.policies.nets.unet1d import ConditionalUnet1D, Conv1d
from robolearn.policies.testing import fake_batch, fake_features, fake_obs, fake_stats

torch.set_num_threads(1)

TINY = dict(horizon=8, down_dims=(16, 32), diffusion_step_embed_dim=16, vision_backbone="small",
            image_feature_dim=8, spatial_softmax_num_keypoints=4)


def tiny_policy(features, **kw):
    return make_policy("diffusion", features, fake_stats(features), **{**TINY, **kw})


@pytest.mark.parametrize(
    "features, kw",
    [
        (fake_features(state_dim=4, action_dim=2), {}),  # state only
        (fake_features(state_dim=None, action_dim=3, cameras=("front",)), {}),  # image only
        (fake_features(state_dim=5, action_dim=2, cameras=("front", "wrist")), {}),  # shared encoder
        (fake_features(state_dim=5, action_dim=2, cameras=("front", "wrist")), {"share_image_encoder": False}),
        (fake_features(state_dim=4, action_dim=2, cameras=("front",)), {"inference_scheduler": "ddpm", "num_inference_steps": 5}),
        (fake_features(state_dim=4, action_dim=2, cameras=("front",)), {"image_pool": "avg", "encoder_dtype": "bfloat16"}),
    ],
)
def test_loss_and_action_chunk_shapes(features, kw):
    policy = tiny_policy(features, **kw)
    out = policy.compute_loss(fake_batch(features, B=3, To=2, T=8))
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    policy.eval()
    actions = policy.predict_action_chunk(fake_obs(features, B=2, To=2))
    assert actions.shape == (2, 8, features["action"]["shape"][0]) and actions.dtype == torch.float32
    assert torch.isfinite(actions).all()


def test_separate_encoders_per_camera_are_distinct_modules():
    features = fake_features(cameras=("front", "wrist"))
    assert set(tiny_policy(features, share_image_encoder=False).encoders) == {"front", "wrist"}
    assert set(tiny_policy(features).encoders) == {"shared"}


def test_padded_action_steps_do_not_contribute_to_the_loss():
    features = fake_features(state_dim=4, action_dim=2)
    policy = tiny_policy(features)
    batch = fake_batch(features, B=3, To=2, T=8, n_pad=3)
    predictions = []

    def keep(module, args, out):
        out.retain_grad()
        predictions.append(out)

    policy.unet.register_forward_hook(keep)
    loss = policy.compute_loss(batch)["loss"]
    loss.backward()
    grad = predictions[0].grad  # (B, T, Da): d loss / d noise prediction
    assert torch.all(grad[:, -3:] == 0) and torch.all(grad[:, :-3].abs().sum(-1) > 0)


def test_overfits_a_fixed_batch():
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2, cameras=("front",), image_size=16)
    policy = tiny_policy(features, crop_shape=(16, 16))
    batch = fake_batch(features, B=4, To=2, T=8)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        torch.manual_seed(1)  # the same noise and steps every time: a pure regression problem
        loss = policy.compute_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_training_pulls_sampled_actions_to_the_demonstrated_ones():
    torch.manual_seed(0)
    features = fake_features(state_dim=4, action_dim=2)
    policy = make_policy("diffusion", features, fake_stats(features), horizon=8, down_dims=(32, 64),
                         diffusion_step_embed_dim=32)
    batch = fake_batch(features, B=4, To=2, T=8)
    obs = {"state": batch["state"]}

    def sample_error() -> float:
        policy.eval()
        actions = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0))
        policy.train()
        return F.mse_loss(actions, batch["action"]).item()

    before = sample_error()
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for _ in range(400):
        loss = policy.compute_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sample_error() < before / 3


def test_generator_makes_sampling_reproducible():
    features = fake_features(cameras=("front",))
    policy = tiny_policy(features, inference_scheduler="ddpm", num_inference_steps=4).eval()
    obs = fake_obs(features, B=2, To=2)
    a = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))
    b = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))
    c = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_observation_errors_name_the_key():
    features = fake_features(state_dim=4, cameras=("front",))
    policy = tiny_policy(features).eval()
    obs = fake_obs(features, B=1, To=2)
    with pytest.raises(KeyError, match="images/front"):
        policy.predict_action_chunk({"state": obs["state"]})
    with pytest.raises(ValueError, match="'state'"):
        policy.predict_action_chunk({**obs, "state": obs["state"][:, :1]})  # To=1 instead of 2
    with pytest.raises(ValueError, match="images/front"):
        policy.predict_action_chunk({**obs, "images/front": obs["images/front"].float()})


def test_config_validation():
    with pytest.raises(ValueError, match="horizon"):
        DiffusionConfig(horizon=10, down_dims=(8, 16, 32))
    with pytest.raises(ValueError, match="n_action_steps"):
        DiffusionConfig(horizon=8, n_action_steps=9)
    with pytest.raises(ValueError, match="inference_scheduler"):
        DiffusionConfig(inference_scheduler="euler")
    with pytest.raises(ValueError, match="no field"):
        make_policy("diffusion", fake_features(), fake_stats(fake_features()), donw_dims=(8,))
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("difusion", fake_features(), fake_stats(fake_features()))


@pytest.mark.parametrize(
    "c_in, c_out, k, B, T",
    [(80, 16, 5, 1, 16), (96, 16, 5, 2, 4), (400, 8, 1, 1, 8), (8, 8, 5, 1, 16), (80, 8, 5, 40, 16)],
)
def test_small_input_conv_matches_native_conv(c_in, c_out, k, B, T):
    conv = Conv1d(c_in, c_out, k)
    x = torch.randn(B, c_in, T)
    ref = F.conv1d(x, conv.weight, conv.bias, padding=k // 2)
    assert torch.allclose(conv(x), ref, atol=1e-5)


def test_unet_step_and_obs_film_split_matches_forward():
    unet = ConditionalUnet1D(input_dim=3, global_cond_dim=10, down_dims=(16, 32, 64), step_embed_dim=16)
    x, cond, k = torch.randn(2, 8, 3), torch.randn(2, 10), torch.tensor([3, 70])
    ref = unet(x, k, cond)
    assert ref.shape == (2, 8, 3)
    assert torch.allclose(unet.denoise(x, unet.obs_film(cond) + unet.step_film(k)), ref, atol=1e-5)


def test_crop_random_in_training_centre_in_eval():
    images = torch.rand(6, 3, 20, 20)
    centre = crop(images, (16, 16), random=False)
    assert torch.equal(centre, images[:, :, 2:18, 2:18])
    rand = crop(images, (16, 16), random=True, generator=torch.Generator().manual_seed(0))
    assert rand.shape == (6, 3, 16, 16)
    # Each image gets its own window, and every window is a real sub-image.
    tops_lefts = []
    for n in range(6):
        hits = [(t, l) for t in range(5) for l in range(5) if torch.equal(rand[n], images[n, :, t:t + 16, l:l + 16])]
        assert len(hits) == 1
        tops_lefts.append(hits[0])
    assert len(set(tops_lefts)) > 1


def test_encoder_presets_and_output_shape():
    enc = ResNetEncoder((32, 32), (28, 28), backbone="small", feature_dim=12).eval()
    assert enc(torch.rand(5, 3, 32, 32)).shape == (5, 12)
    widths = [m.out_channels for m in ResNetEncoder((32, 32), None, backbone="resnet18").modules()
              if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert min(widths) == 64 and max(widths) == 512


def test_load_pretrained_encoder(tmp_path):
    from safetensors.torch import save_file

    src = ResNetEncoder((32, 32), None, backbone="small")
    weights = {k: v.contiguous() for k, v in src.backbone.state_dict().items()}
    weights["fc.weight"] = torch.zeros(10, 256)  # classifier and BN running stats are skipped
    weights["bn1.running_mean"] = torch.zeros(32)
    save_file(weights, str(tmp_path / "trunk.safetensors"))
    dst = load_pretrained_encoder(ResNetEncoder((32, 32), None, backbone="small"), tmp_path / "trunk.safetensors")
    assert torch.equal(dst.backbone.conv1.weight, src.backbone.conv1.weight)

    with pytest.raises(ValueError, match="missing .*layer1.1"):
        load_pretrained_encoder(ResNetEncoder((32, 32), None, backbone="resnet18"), tmp_path / "trunk.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_pretrained_encoder(src, tmp_path / "nope.safetensors")

    features = fake_features(cameras=("front",), image_size=32)
    policy = tiny_policy(features, pretrained_encoder_path=str(tmp_path / "trunk.safetensors"))
    assert torch.equal(policy.encoders["shared"].backbone.conv1.weight, src.backbone.conv1.weight)
