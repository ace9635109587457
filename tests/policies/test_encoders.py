"""The image encoder's training speed-ups keep its numerics and its checkpoints: the small-map convolution,
the per-stage memory formats, one trunk call for every camera, and the state dict saved before them."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from robolearn.policies import make_policy
from robolearn.policies.nets.encoders import Conv2d, ResNetEncoder, ResNetTrunk, RESNET_PRESETS
from robolearn.policies.testing import fake_features, fake_stats

FIXTURE = Path(__file__).parents[1] / "fixtures" / "encoder_state_dict_v1.json"


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("hw,c_in,c_out", [((3, 3), 64, 32), ((4, 4), 16, 24), ((2, 3), 8, 8)])
def test_small_map_conv_matches_conv2d_values_and_gradients(hw, c_in, c_out):
    torch.manual_seed(0)
    conv = Conv2d(c_in, c_out, 3, 1, 1, bias=False)
    x = torch.randn(6, c_in, *hw, requires_grad=True)
    y = conv(x)
    assert type(y.grad_fn).__name__ == "_SmallMapConvBackward"  # the fast path is the one under test
    x_ref = x.detach().clone().requires_grad_()
    w_ref = conv.weight.detach().clone().requires_grad_()
    y_ref = F.conv2d(x_ref, w_ref, None, 1, 1)
    assert torch.equal(y, y_ref)  # forward is F.conv2d itself
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    assert conv.weight.grad.shape == w_ref.grad.shape and conv.weight.grad.is_contiguous()
    assert _rel(conv.weight.grad, w_ref.grad) < 1e-5
    assert _rel(x.grad, x_ref.grad) < 1e-5


def test_small_map_conv_only_where_it_pays():
    conv = Conv2d(8, 8, 3, 1, 1, bias=False)
    assert type(conv(torch.randn(2, 8, 5, 5)).grad_fn).__name__ != "_SmallMapConvBackward"  # 25 positions
    strided = Conv2d(8, 8, 3, 2, 1, bias=False)
    assert type(strided(torch.randn(2, 8, 4, 4)).grad_fn).__name__ != "_SmallMapConvBackward"
    with torch.no_grad():
        assert conv(torch.randn(2, 8, 3, 3)).grad_fn is None


def test_mixed_memory_format_trunk_equals_nchw_trunk():
    torch.manual_seed(0)
    fast = ResNetEncoder((96, 96), (84, 84), backbone="small")
    assert fast.backbone.formats == [torch.channels_last] * 4 + [torch.contiguous_format]
    ref = ResNetTrunk(*RESNET_PRESETS["small"])
    for m in ref.modules():
        if isinstance(m, Conv2d):
            m.small_map_positions = 0  # plain oneDNN backward everywhere
    ref.load_state_dict(fast.backbone.state_dict())
    x = torch.rand(4, 3, 84, 84)
    y, y_ref = fast.backbone(x), ref(x)
    assert _rel(y, y_ref) < 1e-5
    g = torch.randn_like(y_ref)
    y.backward(g)
    y_ref.backward(g)
    ref_params = dict(ref.named_parameters())
    for name, p in fast.backbone.named_parameters():
        assert _rel(p.grad, ref_params[name].grad) < 1e-4, name


def test_shared_encoder_batches_cameras_like_one_call_per_camera():
    """`encode_obs_steps` runs every camera through one trunk call over B*To*Ncam images; that equals
    running the same encoder once per camera (eval: centred crops), features and gradients alike."""
    torch.manual_seed(0)
    features = fake_features(state_dim=3, action_dim=2, cameras=("front", "wrist"), image_size=32)
    policy = make_policy("diffusion", features, fake_stats(features), horizon=8, down_dims=(16, 32),
                         vision_backbone="small", image_feature_dim=8, spatial_softmax_num_keypoints=4).eval()
    enc = policy.encoders["shared"]
    B, To = 3, policy.config.n_obs_steps
    obs = {"state": torch.randn(B, To, 3)}
    for cam in ("front", "wrist"):
        obs[f"images/{cam}"] = torch.randint(0, 256, (B, To, 32, 32, 3), dtype=torch.uint8)
    batched = policy.encode_obs(obs).view(B, To, -1)  # (B, To, 3 + 2 * feature_dim)
    g = torch.randn_like(batched)
    (batched * g).sum().backward()
    grads = {k: p.grad.clone() for k, p in enc.named_parameters()}
    enc.zero_grad()
    per_camera = [policy.normalizer.normalize("state", obs["state"])]
    for cam in ("front", "wrist"):
        img = obs[f"images/{cam}"].flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
        per_camera.append(enc(img).view(B, To, -1))
    separate = torch.cat(per_camera, dim=-1)
    assert _rel(batched, separate) < 1e-5
    (separate * g).sum().backward()
    for k, p in enc.named_parameters():
        assert _rel(grads[k], p.grad) < 1e-4, k


@pytest.mark.parametrize("backbone", ["small", "resnet18"])
def test_state_dict_saved_before_loads(backbone):
    """Keys and shapes are the ones checkpoints were saved with; weights saved contiguous (NCHW) load into
    the channels-last stages and give the same features."""
    saved = json.loads(FIXTURE.read_text())[backbone]
    enc = ResNetEncoder((96, 96), (84, 84), backbone=backbone).eval()
    assert {k: list(v.shape) for k, v in enc.state_dict().items()} == saved
    torch.manual_seed(1)
    old = {k: torch.randn(v) * 0.05 if k.endswith("weight") else torch.randn(v) * 0.01 for k, v in saved.items()}
    enc.load_state_dict(old)
    assert enc.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    ref = ResNetEncoder((96, 96), (84, 84), backbone=backbone).eval()
    ref.backbone.set_memory_formats([torch.contiguous_format] * (1 + ref.backbone.n_stages))
    ref.load_state_dict(old)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert _rel(enc(x), ref(x)) < 1e-5


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    from robolearn.policies.nets.encoders import native_bf16

    (tmp_path / "zen4").write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    (tmp_path / "skylake").write_text("flags\t\t: fpu avx2 avx512f avx512bw\n")
    (tmp_path / "sapphire").write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    assert native_bf16(tmp_path / "zen4") and native_bf16(tmp_path / "sapphire")
    assert not native_bf16(tmp_path / "skylake") and not native_bf16(tmp_path / "missing")


def test_auto_encoder_dtype_is_resolved_into_the_saved_config(tmp_path, monkeypatch):
    from robolearn.errors import ConfigError
    from robolearn.policies import save_policy
    from robolearn.policies.nets import encoders

    features = fake_features(state_dim=3, action_dim=2, cameras=("front",), image_size=24)
    for native, expect in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(encoders, "native_bf16", lambda: native)
        policy = make_policy("diffusion", features, fake_stats(features), horizon=8, down_dims=(16, 32),
                             vision_backbone="small", image_feature_dim=8, spatial_softmax_num_keypoints=4,
                             encoder_dtype="auto")
        assert policy.config.encoder_dtype == expect
        assert policy.encoders["shared"].autocast == (expect == "bfloat16")
        save_policy(policy, tmp_path / expect)
        saved = json.loads((tmp_path / expect / "config.json").read_text())
        assert saved["config"]["encoder_dtype"] == expect
    with pytest.raises(ConfigError, match="encoder_dtype 'fp16' must be one of"):
        make_policy("diffusion", features, fake_stats(features), encoder_dtype="fp16")
