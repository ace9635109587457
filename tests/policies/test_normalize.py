import pytest
import torch

from robolearn.policies.normalize import Normalizer

FEATURES = {
    "state": {"shape": [3], "dtype": "float32"},
    "images/front": {"shape": [8, 8, 3], "dtype": "uint8"},
    "action": {"shape": [2], "dtype": "float32"},
}
STATS = {
    "state": {"min": [-1.0, 0.0, 5.0], "max": [1.0, 10.0, 5.0], "mean": [0.0, 5.0, 5.0], "std": [0.5, 2.0, 0.0]},
    "action": {"min": [-2.0, -2.0], "max": [2.0, 6.0], "mean": [0.0, 1.0], "std": [1.0, 2.0]},
}


def test_min_max_maps_range_to_unit_interval_and_inverts():
    norm = Normalizer(FEATURES, STATS)
    x = torch.tensor([[-1.0, 0.0, 5.0], [1.0, 10.0, 5.0], [0.0, 5.0, 5.0]])
    y = norm.normalize("state", x)
    # Third dimension is constant (zero range): centred on 0, not divided by ~0.
    assert torch.allclose(y, torch.tensor([[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), atol=1e-6)
    assert torch.allclose(norm.unnormalize("state", y), x, atol=1e-6)


def test_mean_std_and_zero_std_guard():
    norm = Normalizer(FEATURES, STATS, {"state": "mean_std"})
    y = norm.normalize("state", torch.tensor([1.0, 7.0, 6.0]))
    assert torch.allclose(y, torch.tensor([2.0, 1.0, 1.0]))
    assert torch.isfinite(y).all()
    assert torch.allclose(norm.unnormalize("state", y), torch.tensor([1.0, 7.0, 6.0]))


def test_identity_needs_no_stats():
    norm = Normalizer({"action": FEATURES["action"]}, {}, {"action": "identity"})
    x = torch.randn(4, 2)
    assert torch.equal(norm.normalize("action", x), x)


def test_images_scaled_to_unit_float_and_must_be_uint8():
    norm = Normalizer(FEATURES, STATS)
    img = torch.full((2, 1, 8, 8, 3), 255, dtype=torch.uint8)
    out = norm.normalize("images/front", img)
    assert out.dtype == torch.float32 and out.shape == img.shape and torch.all(out == 1.0)
    with pytest.raises(ValueError, match="images/front"):
        norm.normalize("images/front", img.float())


def test_buffers_are_in_state_dict():
    sd = Normalizer(FEATURES, STATS).state_dict()
    assert {"state__scale", "state__offset", "action__scale", "action__offset"} <= set(sd)


def test_missing_stats_key_raises_naming_it():
    with pytest.raises(KeyError, match="action"):
        Normalizer(FEATURES, {"state": STATS["state"]})
    with pytest.raises(KeyError, match="min"):
        Normalizer(FEATURES, {**STATS, "action": {"mean": [0, 0], "std": [1, 1]}})


def test_stats_shape_mismatch_raises():
    bad = {**STATS, "action": {"min": [0.0], "max": [1.0]}}
    with pytest.raises(ValueError, match="action"):
        Normalizer(FEATURES, bad)


def test_unknown_key_and_input_shape_mismatch_raise():
    norm = Normalizer(FEATURES, STATS)
    with pytest.raises(KeyError, match="force"):
        norm.normalize("force", torch.zeros(6))
    with pytest.raises(ValueError, match="'state'"):
        norm.normalize("state", torch.zeros(2, 4))
    with pytest.raises(ValueError, match="'action'"):
        norm.unnormalize("action", torch.zeros(3))


def test_bad_mode_and_mode_for_unknown_key_raise():
    with pytest.raises(ValueError, match="state"):
        Normalizer(FEATURES, STATS, {"state": "zscore"})
    with pytest.raises(KeyError, match="force"):
        Normalizer(FEATURES, STATS, {"force": "min_max"})
