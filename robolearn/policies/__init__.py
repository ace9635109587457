"""Policies: registry, construction, checkpoints and compatibility checks.

Every entry of `POLICIES` is a `robolearn.policies.base.Model` (what the Trainer fits); the ones that act
are `Policy`s (the autoencoder and RDP's tokenizer only train). A checkpoint directory holds:

- ``model.safetensors``: the state dict (normalizer buffers included);
- ``ema.safetensors`` (optional): the EMA weights, preferred by `load` unless ``use_ema=False``;
- ``config.json``: ``{"policy": <name>, "config": {...}, "features": {...}, **extra}``;
- ``stats.json``: the dataset stats the normalizer was fitted from.

Example::

    from robolearn.policies import check_compatible, load, make_policy, save_policy

    policy = make_policy("diffusion", features, stats, vision_backbone="resnet18")
    save_policy(policy, "runs/exp/ckpt", ema_policy=ema, extra={"env_id": "PushT-v0"})
    policy = load("runs/exp/ckpt")
    check_compatible(policy, env.observation_space, env.action_space)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robolearn.errors import ConfigError, InvalidValueError, MissingPathError
from robolearn.policies.base import ACTION_KEY, STATE_KEY, DataRequirements, Model, Policy, PolicyConfig
from robolearn.policies.diffusion import DiffusionConfig, DiffusionPolicy
from robolearn.policies.latent import AutoencoderConfig, AutoencoderModel
from robolearn.policies.pad import PADConfig, PADPolicy
from robolearn.policies.uwm import UWMConfig, UWMPolicy
from robolearn.policies.flow import FlowConfig, FlowPolicy
from robolearn.policies.normalize import Normalizer, is_image_key
from robolearn.policies.rdp import ActionTokenizer, RDPConfig, RDPPolicy, RDPTokenizerConfig
from robolearn.spaces import family_of

POLICIES = {
    "rdp": (RDPConfig, RDPPolicy),
    "rdp_tokenizer": (RDPTokenizerConfig, ActionTokenizer),
    "diffusion": (DiffusionConfig, DiffusionPolicy),
    "autoencoder": (AutoencoderConfig, AutoencoderModel),
    "pad": (PADConfig, PADPolicy),
    "uwm": (UWMConfig, UWMPolicy),
    "flow": (FlowConfig, FlowPolicy),
}

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
CONFIG_FILE = "config.json"
STATS_FILE = "stats.json"
_RESERVED = ("policy", "config", "features")

__all__ = [
    "POLICIES", "DataRequirements", "Model", "Policy", "PolicyConfig", "Normalizer", "make_policy", "save_policy", "load", "check_compatible",
]


def _lookup(name: str) -> tuple[type[PolicyConfig], type[Model]]:
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; known policies: {sorted(POLICIES)}.")
    return POLICIES[name]


def _clean_features(features: Mapping[str, Mapping]) -> dict[str, dict]:
    # Keep what a policy consumes (state, images/*, depth/*, force, action), as plain JSON-able dicts.
    out = {}
    for key, f in features.items():
        if family_of(key) in ("state", "action", "force", "images", "depth"):
            if "shape" not in f or "dtype" not in f:
                raise ValueError(f"feature {key!r} needs 'shape' and 'dtype', got {dict(f)}.")
            out[key] = {"shape": [int(s) for s in f["shape"]], "dtype": str(f["dtype"])}
    return out


def make_policy(name: str, features: Mapping[str, Mapping], stats: Mapping[str, Mapping], **overrides: Any) -> Model:
    """A fresh policy `name` for `features`/`stats`; `overrides` set config fields.

    Pretrained weights named by the config (e.g. ``pretrained_encoder_path``) are loaded here.
    """
    config_cls, policy_cls = _lookup(name)
    fields = {f.name for f in dataclasses.fields(config_cls)} - {"features"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"{config_cls.__name__} has no field(s) {unknown}; known fields: {sorted(fields)}.")
    config = config_cls.from_dict(
        {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}, features=_clean_features(features)
    )
    policy = policy_cls(config, stats)
    policy.init_pretrained()
    return policy


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def _state_dict_for_file(module: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = module.state_dict() if isinstance(module, nn.Module) else module
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def save_policy(
    policy: Policy,
    directory: str | os.PathLike,
    ema_policy: nn.Module | Mapping[str, torch.Tensor] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write `policy` (and optionally its EMA copy) as a checkpoint directory; returns the path.

    Each file is written to a temporary name and renamed, config.json last, so a crash never leaves
    a half-written file; an ``ema.safetensors`` from an earlier save is removed when `ema_policy`
    is None. `extra` (e.g. ``{"env_id": ...}``) is merged into config.json.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra may not use the reserved config.json key(s) {clash}.")
    directory.mkdir(parents=True, exist_ok=True)
    model_sd = _state_dict_for_file(policy)
    meta = {"policy": policy.name}
    _atomic_write(directory / MODEL_FILE, lambda p: save_file(model_sd, str(p), metadata=meta))
    if ema_policy is not None:
        ema_sd = _state_dict_for_file(ema_policy)
        if set(ema_sd) != set(model_sd):
            diff = sorted(set(ema_sd) ^ set(model_sd))[:3]
            raise ValueError(f"ema_policy's state dict keys differ from the policy's (e.g. {diff}).")
        _atomic_write(directory / EMA_FILE, lambda p: save_file(ema_sd, str(p), metadata=meta))
    else:
        (directory / EMA_FILE).unlink(missing_ok=True)
    _write_json(directory / STATS_FILE, policy.stats)
    config = {"policy": policy.name, "config": policy.config.to_dict(), "features": policy.config.features, **extra}
    _write_json(directory / CONFIG_FILE, config)
    return directory


def _read_json(directory: Path, name: str) -> Any:
    path = directory / name
    if not path.is_file():
        raise MissingPathError(f"{name} not found in checkpoint directory {str(directory)!r}.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InvalidValueError(f"{path} is not valid JSON: {e}.") from None


INFERENCE_FIELDS = ("n_action_steps", "num_inference_steps")
"""Policy config fields that only change how a trained policy acts (how many of a chunk's actions run before it
replans, denoising/integration steps per chunk): eval and deploy accept them as ``model.<field>=`` overrides."""


def _inference_overrides(fields: dict, overrides: Mapping[str, Any], what: str) -> dict:
    """The checkpoint's config `fields` with `INFERENCE_FIELDS` from `overrides` applied; any other override
    must equal what the network was trained with."""
    out = dict(fields)
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"model.{key}: {what} has no such field (it has {sorted(fields)})")
        if key in INFERENCE_FIELDS:
            out[key] = value
        elif json.loads(json.dumps(value)) != json.loads(json.dumps(fields[key])):  # tuples and lists alike
            raise ConfigError(f"model.{key}={value!r} differs from the {fields[key]!r} {what} was trained with; "
                              f"only {', '.join(f'model.{k}' for k in INFERENCE_FIELDS if k in fields)} can change "
                              "after training (train a new run for the rest)")
    return out


def load(
    directory: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True, compile: bool = False,
    inference_steps: int | None = None, overrides: Mapping[str, Any] | None = None,
) -> Model:
    """Rebuild a policy from a checkpoint directory, in eval mode on `device`.

    Uses ``ema.safetensors`` when present and `use_ema`, else ``model.safetensors``. A missing file
    raises FileNotFoundError naming the file and the directory. ``compile=True`` compiles it for fast
    inference (`robolearn.policies.compile.compile_for_inference`; diffusion and flow policies).
    ``inference_steps`` replaces the config's ``num_inference_steps`` (denoising or integration steps per
    chunk: fewer is faster, more is what a slow policy costs); the config checks its range, and a policy
    without such steps refuses it. ``overrides`` are ``model.<field>`` values from the command line:
    `INFERENCE_FIELDS` replace the checkpoint's; any other field must equal the checkpoint's value (it shapes
    the trained network), else a ConfigError names it.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    config_json = _read_json(directory, CONFIG_FILE)
    stats = _read_json(directory, STATS_FILE)
    for key in _RESERVED:
        if key not in config_json:
            raise InvalidValueError(f"{directory / CONFIG_FILE} has no {key!r} entry.")
    config_cls, policy_cls = _lookup(config_json["policy"])
    fields = config_json["config"]
    if inference_steps is not None:
        if "num_inference_steps" not in fields:
            raise InvalidValueError(f"the {config_json['policy']!r} policy in {directory} has no denoising steps to "
                                    "set (num_inference_steps); drop --inference-steps")
        fields = {**fields, "num_inference_steps": int(inference_steps)}
    fields = _inference_overrides(fields, overrides or {}, f"the {config_json['policy']!r} policy in {directory}")
    config = config_cls.from_dict(fields, features=config_json["features"])
    policy = policy_cls(config, stats)
    weights = directory / (EMA_FILE if use_ema and (directory / EMA_FILE).is_file() else MODEL_FILE)
    if not weights.is_file():
        raise MissingPathError(f"{weights.name} not found in checkpoint directory {str(directory)!r}.")
    state = load_file(str(weights))
    own = policy.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise InvalidValueError(
            f"{weights} does not match the {policy_cls.__name__} rebuilt from {CONFIG_FILE}: missing "
            f"{len(missing)} key(s) {missing[:3]}, unexpected {len(unexpected)} {unexpected[:3]}, "
            f"shape mismatch for {len(wrong)} {wrong[:3]}."
        )
    policy.load_state_dict(state)
    policy = policy.to(device).eval()
    if compile:
        from robolearn.policies.compile import compile_for_inference

        compile_for_inference(policy)
    return policy


def check_compatible(policy: Policy, observation_space: Any, action_space: Any) -> None:
    """Raise ValueError unless the env's spaces carry every input key and the action with the
    shapes (and, for images, dtype) the policy was built for."""
    import gymnasium as gym
    import numpy as np

    if isinstance(policy, Model) and not isinstance(policy, Policy):
        raise InvalidValueError(f"{policy.name!r} is a model that trains but does not act (no predict_action_chunk); "
                                "evaluate or deploy a policy that uses it instead.")
    if not isinstance(observation_space, gym.spaces.Dict):
        raise ValueError(f"observation space must be a gymnasium Dict space, got {type(observation_space).__name__}.")
    for key in policy.input_keys:
        expected = tuple(policy.config.features[key]["shape"])
        if key not in observation_space.spaces:
            raise InvalidValueError(
                f"Observation key {key!r} expected with shape {expected}, but the observation space has no such "
                f"key (it has {sorted(observation_space.spaces)})."
            )
        space = observation_space.spaces[key]
        if tuple(space.shape or ()) != expected:
            raise InvalidValueError(
                f"Observation key {key!r} expected shape {expected}, but the observation space has "
                f"{tuple(space.shape or ())}."
            )
        if is_image_key(key) and space.dtype != np.uint8:
            raise InvalidValueError(
                f"Observation key {key!r} expected dtype uint8, but the observation space has {space.dtype}."
            )
    expected = (policy.action_dim,)
    actual = tuple(action_space.shape or ())
    if actual != expected:
        raise InvalidValueError(f"Key {ACTION_KEY!r} expected shape {expected}, but the action space has {actual}.")
