"""Fake features, stats and batches in the policy data contract, for tests of any policy.

Example::

    from robolearn.policies import make_policy
    from robolearn.policies.testing import fake_batch, fake_features, fake_stats

    features = fake_features(state_dim=4, action_dim=2, cameras=("front",), image_size=24)
    policy = make_policy("diffusion", features, fake_stats(features), horizon=8)
    loss = policy.compute_loss(fake_batch(features, B=3, To=2, T=8))["loss"]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from robolearn.spaces import ACTION, STATE, image_key


def fake_features(
    state_dim: int | None = 4, action_dim: int = 2, cameras: Sequence[str] = (), image_size: int = 24
) -> dict[str, dict]:
    """`features` with an optional "state", one "images/<camera>" per camera and "action"."""
    features: dict[str, dict] = {}
    if state_dim:
        features[STATE] = {"shape": [state_dim], "dtype": "float32"}
    for cam in cameras:
        features[image_key(cam)] = {"shape": [image_size, image_size, 3], "dtype": "uint8"}
    features[ACTION] = {"shape": [action_dim], "dtype": "float32"}
    return features


def fake_stats(features: Mapping[str, Mapping], low: float = -2.0, high: float = 3.0) -> dict[str, dict]:
    """Stats for every low-dim key: min/q01 = low, max/q99 = high, mean/std to match."""
    stats = {}
    for key, f in features.items():
        if f["dtype"] == "uint8":
            continue
        d = f["shape"][0]
        stats[key] = {"min": [low] * d, "max": [high] * d, "q01": [low] * d, "q99": [high] * d,
                      "mean": [(low + high) / 2] * d, "std": [(high - low) / 4] * d}
    return stats


def fake_obs(features: Mapping[str, Mapping], B: int, To: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Observation keys shaped (B, To, ...) with the contract's dtypes."""
    g = torch.Generator().manual_seed(seed)
    obs = {}
    for key, f in features.items():
        if key == ACTION:
            continue
        shape = (B, To, *f["shape"])
        if f["dtype"] == "uint8":
            obs[key] = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
        else:
            obs[key] = torch.rand(shape, generator=g) * 5 - 2
    return obs


def fake_batch(
    features: Mapping[str, Mapping], B: int, To: int, T: int, seed: int = 0, n_pad: int = 0
) -> dict[str, torch.Tensor]:
    """A training batch: obs keys (B, To, ...), "action" (B, T, Da), "action_is_pad" (B, T) with the
    last `n_pad` steps of every sample marked as padding."""
    batch = fake_obs(features, B, To, seed)
    g = torch.Generator().manual_seed(seed + 1)
    batch[ACTION] = torch.rand((B, T, *features[ACTION]["shape"]), generator=g) * 5 - 2
    is_pad = torch.zeros(B, T, dtype=torch.bool)
    if n_pad:
        is_pad[:, T - n_pad :] = True
    batch["action_is_pad"] = is_pad
    return batch
