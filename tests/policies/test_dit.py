"""The shared DiT: token layout, adaLN-zero start, one or two timesteps."""

import pytest
import torch

from robolearn.policies.nets.dit import DiT

torch.set_num_threads(1)


def tiny(**kw):
    args = dict(latent_channels=4, latent_hw=(4, 6), n_frames=2, action_dim=3, horizon=5, cond_dim=7, n_cond_tokens=2,
                n_timesteps=2, width=32, depth=2, heads=4, patch=2, n_registers=2)
    args.update(kw)
    torch.manual_seed(0)
    return DiT(**args)


def test_shapes_and_zero_start():
    net = tiny()
    lat, act = torch.randn(3, 2, 4, 4, 6), torch.randn(3, 5, 3)
    t = torch.randint(0, 100, (3,))
    out_lat, out_act = net(lat, act, (t, t), torch.randn(3, 7), torch.randn(3, 2, 32))
    assert out_lat.shape == (3, 2, 4, 4, 6) and out_act.shape == (3, 5, 3)
    assert out_lat.abs().max() == 0 and out_act.abs().max() == 0  # adaLN-zero: the identity at init


def _randomise(net):
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)


def test_unpatchify_keeps_frames_and_places_apart():
    net = tiny(n_timesteps=1, cond_dim=0, n_cond_tokens=0, depth=0, n_registers=0)  # no mixing between tokens
    _randomise(net)
    lat = torch.randn(1, 2, 4, 4, 6)
    base, _ = net(lat, torch.zeros(1, 5, 3), torch.tensor([3]))
    bumped = lat.clone()
    bumped[0, 1, :, 2:4, 4:6] += 1.0  # one patch of frame 1
    out, _ = net(bumped, torch.zeros(1, 5, 3), torch.tensor([3]))
    changed = (out - base).abs().sum(dim=2)[0] > 0  # (K, h, w)
    assert changed[1, 2:4, 4:6].all() and changed.sum() == 4


def test_timestep_count_and_cond_are_checked():
    net = tiny()
    lat, act, t = torch.randn(1, 2, 4, 4, 6), torch.randn(1, 5, 3), torch.tensor([1])
    with pytest.raises(ValueError, match="takes 2 timestep"):
        net(lat, act, t, torch.randn(1, 7), torch.randn(1, 2, 32))
    with pytest.raises(ValueError, match="got no cond"):
        net(lat, act, (t, t), None, torch.randn(1, 2, 32))
    with pytest.raises(ValueError, match="divisible by patch"):
        tiny(latent_hw=(5, 6))


def test_two_timesteps_are_distinguished():
    net = tiny()
    _randomise(net)
    lat, act, cond, tok = torch.randn(1, 2, 4, 4, 6), torch.randn(1, 5, 3), torch.randn(1, 7), torch.randn(1, 2, 32)
    a, b = torch.tensor([10]), torch.tensor([90])
    assert not torch.allclose(net(lat, act, (a, b), cond, tok)[1], net(lat, act, (b, a), cond, tok)[1])
