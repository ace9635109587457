"""Observation conditioning and denoiser construction shared by the diffusion and flow policies.

Both policies hold the same parts under the same attribute names, so their state dicts line up:

- ``encoders``: an `nn.ModuleDict` of `ResNetEncoder` ("shared", or one per camera);
- ``language_proj`` (only with ``use_language``): ``Linear(384 -> language_feature_dim)`` of the
  batch's ``"task_embedding"`` (B, 384), see `robolearn.language`;
- ``unet`` (``denoiser="unet"``) or ``transformer`` (``denoiser="transformer"``).

Conditioning: observation features per step = concat(normalized state, image features of every
camera), (B, To, D). The U-Net takes them flattened, (B, To * D), plus the language features once;
the transformer takes one token per step, (B, To, D + L), the language features repeated per step.

The functions take the policy (any `Policy` with the parts above and a config with the shared
fields: `DiffusionConfig`, `FlowConfig`), so each policy composes them instead of inheriting them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from robolearn.errors import ConfigError
from robolearn.policies.base import STATE_KEY, Policy
from robolearn.language import EMBED_DIM, TASK_EMBEDDING_KEY
from robolearn.policies.nets.encoders import RESNET_PRESETS, ResNetEncoder, resolve_compute_dtype
from robolearn.policies.nets.transformer import TransformerForDiffusion
from robolearn.policies.nets.unet1d import ConditionalUnet1D

DENOISERS = ("unet", "transformer")


def check_config(cfg: Any) -> None:
    """Validation of the shared vision/denoiser/language fields (called from the configs' __post_init__);
    resolves ``encoder_dtype="auto"`` to the dtype chosen on this machine, so the saved config.json names it."""
    if cfg.vision_backbone not in RESNET_PRESETS:
        raise ConfigError(f"vision_backbone {cfg.vision_backbone!r} is not one of {sorted(RESNET_PRESETS)}.")
    cfg.encoder_dtype = resolve_compute_dtype(cfg.encoder_dtype)
    if cfg.denoiser not in DENOISERS:
        raise ConfigError(f"denoiser {cfg.denoiser!r} must be one of {list(DENOISERS)}.")
    if cfg.denoiser == "unet":
        multiple = 2 ** (len(cfg.down_dims) - 1)
        if cfg.horizon % multiple:
            raise ConfigError(
                f"horizon {cfg.horizon} must be divisible by {multiple} for down_dims {tuple(cfg.down_dims)}."
            )
    elif cfg.n_emb % cfg.n_head:
        raise ConfigError(f"n_emb ({cfg.n_emb}) must be divisible by n_head ({cfg.n_head}).")
    if not 0 <= cfg.rtc_training_max_delay < cfg.horizon:
        raise ConfigError(f"rtc_training_max_delay must be in [0, horizon={cfg.horizon}) actions (0: off), "
                          f"got {cfg.rtc_training_max_delay}.")
    if cfg.use_language and cfg.language_feature_dim < 1:
        raise ConfigError(f"language_feature_dim must be >= 1 with use_language, got {cfg.language_feature_dim}.")


def _default_crop(hw: tuple[int, int]) -> tuple[int, int]:
    return tuple(max(1, round(s * 7 / 8)) for s in hw)


def camera_module_name(key: str) -> str:
    """``images/front`` -> ``front`` (the per-camera encoder's name in `encoders`)."""
    return key.split("/", 1)[1].replace(".", "_")


def build_image_encoders(cfg: Any, image_keys: list[str]) -> nn.ModuleDict:
    """One shared `ResNetEncoder` or one per camera, as the config asks; empty without cameras."""
    feats = cfg.features
    image_shapes = {k: tuple(feats[k]["shape"][:2]) for k in image_keys}
    if cfg.share_image_encoder and len(set(image_shapes.values())) > 1:
        raise ConfigError(
            f"share_image_encoder needs cameras of one size, got {image_shapes}; set share_image_encoder=False."
        )

    def encoder(hw: tuple[int, int]) -> ResNetEncoder:
        return ResNetEncoder(hw, cfg.crop_shape or _default_crop(hw), cfg.vision_backbone, cfg.image_pool,
                             cfg.spatial_softmax_num_keypoints, cfg.image_feature_dim, cfg.encoder_dtype)

    encoders = nn.ModuleDict()
    if image_keys and cfg.share_image_encoder:
        encoders["shared"] = encoder(image_shapes[image_keys[0]])
    elif image_keys:
        for k in image_keys:
            encoders[camera_module_name(k)] = encoder(image_shapes[k])
    return encoders


def obs_feature_dim(cfg: Any, image_keys: list[str]) -> int:
    """D: features per observation step (state dims + lowdim_keys dims + image_feature_dim per camera)."""
    state_dim = int(cfg.features[STATE_KEY]["shape"][0]) if STATE_KEY in cfg.features else 0
    state_dim += sum(int(cfg.features[k]["shape"][0]) for k in cfg.lowdim_keys)
    return state_dim + len(image_keys) * cfg.image_feature_dim


def build_language_proj(cfg: Any) -> nn.Linear | None:
    return nn.Linear(EMBED_DIM, cfg.language_feature_dim) if cfg.use_language else None


def build_denoiser(cfg: Any, action_dim: int, step_dim: int) -> nn.Module:
    """The denoiser `cfg.denoiser` names, for `step_dim` features per observation step; with training-time
    RTC its input carries one more channel, the frozen-prefix flag (`robolearn.policies.rtc.flag_frozen`)."""
    lang = cfg.language_feature_dim if cfg.use_language else 0
    input_dim = action_dim + (1 if cfg.rtc_training_max_delay else 0)
    if cfg.denoiser == "unet":
        return ConditionalUnet1D(
            input_dim=input_dim, global_cond_dim=cfg.n_obs_steps * step_dim + lang, down_dims=cfg.down_dims,
            kernel_size=cfg.kernel_size, n_groups=cfg.n_groups, step_embed_dim=cfg.diffusion_step_embed_dim,
            film_scale=cfg.film_scale, output_dim=action_dim,
        )
    return TransformerForDiffusion(
        input_dim=input_dim, horizon=cfg.horizon, n_obs_steps=cfg.n_obs_steps, cond_dim=step_dim + lang,
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_emb=cfg.n_emb, p_drop_emb=cfg.p_drop_emb,
        p_drop_attn=cfg.p_drop_attn, causal_attn=cfg.causal_attn, output_dim=action_dim,
    )


def attach_denoiser(policy: Policy, step_dim: int) -> None:
    """Set ``policy.unet`` or ``policy.transformer`` (the attribute name is the state dict prefix)."""
    setattr(policy, policy.config.denoiser, build_denoiser(policy.config, policy.action_dim, step_dim))


def get_denoiser(policy: Policy) -> nn.Module:
    return getattr(policy, policy.config.denoiser)


def encode_obs_steps(policy: Policy, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per-step observation features (B, To, D) from obs keys shaped (B, To, ...)."""
    obs = policy.check_obs(obs)
    B, To = obs[policy.input_keys[0]].shape[:2]
    parts = []
    if STATE_KEY in obs:
        parts.append(policy.normalizer.normalize(STATE_KEY, obs[STATE_KEY]))
    parts.extend(policy.normalizer.normalize(k, obs[k]) for k in policy.lowdim_keys)
    if policy.image_keys:
        # (B, To, H, W, 3) uint8 per camera -> float [0, 1]; the NHWC -> NCHW permute is a
        # (channels-last) view, so cropping happens before any copy.
        images = [policy.normalizer.normalize(k, obs[k]) for k in policy.image_keys]
        if "shared" in policy.encoders:
            x = torch.stack(images, dim=2).flatten(0, 2).permute(0, 3, 1, 2)  # (B*To*Ncam, 3, H, W)
            parts.append(policy.encoders["shared"](x).view(B, To, -1))
        else:
            for k, img in zip(policy.image_keys, images):
                enc = policy.encoders[camera_module_name(k)]
                parts.append(enc(img.flatten(0, 1).permute(0, 3, 1, 2)).view(B, To, -1))
    return torch.cat(parts, dim=-1)


def language_features(policy: Policy, obs: Mapping[str, torch.Tensor], batch_size: int) -> torch.Tensor:
    """``language_proj(obs["task_embedding"])``: (B, 384) -> (B, language_feature_dim)."""
    if TASK_EMBEDDING_KEY not in obs:
        raise KeyError(
            f"use_language is on, but the observation has no {TASK_EMBEDDING_KEY!r} key (it has: {sorted(obs)}); "
            f"add the task string's embedding, (B, {EMBED_DIM}) float32, from robolearn.language.TaskEmbedder."
        )
    emb = torch.as_tensor(obs[TASK_EMBEDDING_KEY], device=policy.device)
    if tuple(emb.shape) != (batch_size, EMBED_DIM) or not emb.is_floating_point():
        raise ValueError(
            f"observation {TASK_EMBEDDING_KEY!r} has shape {tuple(emb.shape)} and dtype {emb.dtype}, "
            f"expected ({batch_size}, {EMBED_DIM}) float32."
        )
    return policy.language_proj(emb.to(torch.float32))


def denoiser_cond(policy: Policy, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The denoiser's condition: (B, To * D [+ L]) for the U-Net, (B, To, D [+ L]) for the transformer."""
    steps = encode_obs_steps(policy, obs)  # (B, To, D)
    B, To, _ = steps.shape
    lang = language_features(policy, obs, B) if policy.config.use_language else None
    if policy.config.denoiser == "unet":
        return steps.flatten(1) if lang is None else torch.cat([steps.flatten(1), lang], dim=-1)
    return steps if lang is None else torch.cat([steps, lang[:, None].expand(B, To, -1)], dim=-1)


def chunk_loss(err: torch.Tensor, is_pad: torch.Tensor | None, frozen: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the (B, T, Da) error over the positions that count: not past the episode end (``is_pad``
    (B, T)) and not a frozen prefix position of training-time RTC (``frozen`` (B, T))."""
    if is_pad is None and frozen is None:
        return err.mean()
    skip = torch.zeros(err.shape[:2], dtype=torch.bool, device=err.device)
    if is_pad is not None:
        skip |= is_pad.to(err.device, torch.bool)
    if frozen is not None:
        skip |= frozen
    valid = (~skip).to(err.dtype)  # (B, T)
    return (err.mean(-1) * valid).sum() / valid.sum().clamp_min(1.0)


def chunk_denoiser(
    denoiser: nn.Module, cond: torch.Tensor, timesteps: torch.Tensor
) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """``pred(i, x)``: the denoiser's output for x at ``timesteps[i]``, with the work that depends only
    on the observation (U-Net FiLM, transformer memory) and the step list done once per chunk."""
    if isinstance(denoiser, ConditionalUnet1D):
        obs_film = denoiser.obs_film(cond)  # (B, F)
        step_films = denoiser.step_film(timesteps.to(cond.device))  # (K, F), one call for all K steps
        return lambda i, x: denoiser.denoise(x, obs_film + step_films[i])
    memory = denoiser.obs_memory(cond)  # (B, To, E)
    steps = timesteps.to(cond.device)
    return lambda i, x: denoiser.denoise(x, steps[i], memory)
