"""Parts PAD and UWM share: the frozen autoencoder, latents from a batch (cached or encoded on the
fly), what the window sampler must deliver, decoding predictions, and the noise schedules.

Functions take the policy (a `Policy` with a `LatentConfig`), so each policy composes them.

Batch keys read here (see `robolearn.sampling.windows`):

- current frames: ``latents/<camera>`` (B, To, C, h, w) when cached, else ``images/<camera>`` (B, To, H, W, 3) uint8;
- future frames: ``future/latents/<camera>`` or ``future/images/<camera>`` (B, K, ...), with
  ``future/<key>_is_pad`` (B, K);
- ``has_actions`` (B,) bool (episode column): False for action-free (video-only) episodes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from robolearn.errors import ConfigError, InvalidValueError
from robolearn.policies.base import STATE_KEY, DataRequirements, Policy
from robolearn.policies.latent.autoencoder import build_autoencoder, fingerprint, load_autoencoder
from robolearn.spaces import FUTURE, future_key, image_key, key_name, latent_key

FUTURE_PREFIX = FUTURE


def setup_latents(policy: Policy) -> None:
    """Build the frozen ``policy.autoencoder`` and set ``policy.cameras`` and ``policy.latent_shape``."""
    cfg = policy.config
    if cfg.autoencoder:
        ae = build_autoencoder(cfg.autoencoder)
        policy._autoencoder_loaded = False
    elif cfg.autoencoder_path:
        ae = load_autoencoder(cfg.autoencoder_path)
        cfg.autoencoder, cfg.autoencoder_fingerprint = ae.spec(), fingerprint(ae)
        policy._autoencoder_loaded = True
    else:
        raise ConfigError(f"{policy.name} needs an autoencoder: set autoencoder_path to a `robolearn train "
                         f"policy=autoencoder` run directory or a diffusers AutoencoderKL folder.")
    policy.autoencoder = ae.eval().requires_grad_(False)
    cams = list(cfg.cameras) or [key_name(k) for k in policy.image_keys]
    if not cams:
        raise ConfigError(f"{policy.name} predicts future frames, but features have no 'images/<camera>' key.")
    missing = [c for c in cams if image_key(c) not in cfg.features]
    if missing:
        raise ConfigError(f"cameras {missing} have no images/<camera> feature (features: {sorted(cfg.features)}).")
    sizes = {tuple(cfg.features[image_key(c)]["shape"][:2]) for c in cams}
    if len(sizes) > 1:
        raise ConfigError(f"one autoencoder encodes every camera, so all must have one size; got {sorted(sizes)}.")
    policy.cameras = cams
    policy.latent_shape = ae.latent_shape(next(iter(sizes)))  # (C, h, w)


def init_autoencoder(policy: Policy) -> None:
    """`init_pretrained` part: load the autoencoder weights from ``autoencoder_path`` and fingerprint them."""
    cfg = policy.config
    if cfg.autoencoder_path and not policy._autoencoder_loaded:
        loaded = load_autoencoder(cfg.autoencoder_path)
        if loaded.spec() != cfg.autoencoder:
            raise ConfigError(f"the autoencoder at {cfg.autoencoder_path} does not match the config's "
                             f"`autoencoder` architecture; leave `autoencoder` empty to take it from the path.")
        policy.autoencoder.load_state_dict(loaded.state_dict())
        policy._autoencoder_loaded = True
    cfg.autoencoder_fingerprint = fingerprint(policy.autoencoder)


def data_requirements(policy: Policy, cached_latents: Mapping[str, Mapping] | None) -> DataRequirements:
    """Cached latents where this autoencoder made them (same fingerprint), else frames; future frames; has_actions."""
    cfg, cached = policy.config, cached_latents or {}
    keys = []
    for cam in policy.cameras:
        lk = latent_key(cam)
        ok = cfg.use_cached_latents and lk in cached and cached[lk].get("fingerprint") == cfg.autoencoder_fingerprint
        keys.append(lk if ok else image_key(cam))
    obs_keys = ([STATE_KEY] if STATE_KEY in cfg.features else []) + keys
    return DataRequirements(tuple(obs_keys), int(cfg.n_obs_steps), int(cfg.horizon),
                            {k: (cfg.future_frames, cfg.frame_stride) for k in keys}, ("has_actions",),
                            language=policy.uses_language)


@torch.no_grad()
def encode_images(policy: Policy, images: torch.Tensor) -> torch.Tensor:
    """(B, N, H, W, 3) uint8 -> (B, N, C, h, w) scaled latents."""
    B, N = images.shape[:2]
    x = images.to(policy.device).flatten(0, 1).permute(0, 3, 1, 2).float().div_(255.0)
    return policy.autoencoder.encode(x).view(B, N, *policy.latent_shape)


def latents_from(policy: Policy, batch: Mapping[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
    """Every camera's frames under `prefix` ("" current, "future/" future) as (B, V * N, C, h, w)."""
    views = []
    for cam in policy.cameras:
        lk, ik = prefix + latent_key(cam), prefix + image_key(cam)
        if lk in batch:
            z = torch.as_tensor(batch[lk], device=policy.device).float()
            if tuple(z.shape[2:]) != tuple(policy.latent_shape):
                raise InvalidValueError(f"{lk!r} has latents of shape {tuple(z.shape[2:])}, the autoencoder makes "
                                 f"{tuple(policy.latent_shape)}: re-cache the store's latents.")
            views.append(z)
        elif ik in batch:
            views.append(encode_images(policy, torch.as_tensor(batch[ik])))
        else:
            raise KeyError(f"batch has neither {lk!r} nor {ik!r} (it has: {sorted(batch)}).")
    return torch.cat(views, dim=1)


def future_is_pad(policy: Policy, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(B, V * K) bool: future frames that lie past the episode end (all False if not given)."""
    masks = []
    for cam in policy.cameras:
        for key in (f"{future_key(latent_key(cam))}_is_pad", f"{future_key(image_key(cam))}_is_pad"):
            if key in batch:
                masks.append(torch.as_tensor(batch[key], device=policy.device, dtype=torch.bool))
                break
        else:
            B = next(iter(batch.values())).shape[0]
            masks.append(torch.zeros(B, policy.config.future_frames, dtype=torch.bool, device=policy.device))
    return torch.cat(masks, dim=1)


def language_token(policy: Policy, obs: Mapping[str, torch.Tensor], B: int) -> torch.Tensor:
    """``policy.language_token(obs["task_embedding"])``: (B, 384) -> (B, width), the key checked."""
    from robolearn.language import EMBED_DIM, TASK_EMBEDDING_KEY

    if TASK_EMBEDDING_KEY not in obs:
        raise KeyError(f"use_language is on, but the observation has no {TASK_EMBEDDING_KEY!r} key (it has: "
                       f"{sorted(obs)}); add the task's embedding, (B, {EMBED_DIM}) float32, from "
                       f"robolearn.language.TaskEmbedder.")
    emb = torch.as_tensor(obs[TASK_EMBEDDING_KEY], device=policy.device).float()
    if tuple(emb.shape) != (B, EMBED_DIM):
        raise ValueError(f"{TASK_EMBEDDING_KEY!r} has shape {tuple(emb.shape)}, expected ({B}, {EMBED_DIM}).")
    return policy.language_token(emb)


def has_actions(batch: Mapping[str, torch.Tensor], B: int, device: torch.device) -> torch.Tensor:
    """(B,) bool: True for windows from episodes with actions; also False where every action step is padding."""
    out = torch.ones(B, dtype=torch.bool, device=device)
    if "has_actions" in batch:
        out &= torch.as_tensor(batch["has_actions"], device=device, dtype=torch.bool).view(B)
    if "action_is_pad" in batch:
        out &= ~torch.as_tensor(batch["action_is_pad"], device=device, dtype=torch.bool).all(dim=1)
    return out


@torch.no_grad()
def decode_latents(policy: Policy, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, V * K, C, h, w) -> {"images/<camera>": (B, K, H, W, 3) uint8}."""
    B, VK = z.shape[:2]
    x = policy.autoencoder.decode(z.flatten(0, 1))  # (B*V*K, 3, H, W) in [0, 1]
    x = (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).reshape(B, VK, *x.shape[2:], 3)
    K = VK // len(policy.cameras)
    return {image_key(cam): x[:, i * K:(i + 1) * K] for i, cam in enumerate(policy.cameras)}


def make_schedules(policy: Policy) -> None:
    """``policy.sqrt_alpha_bar``/``sqrt_one_minus_alpha_bar`` buffers (training) and DDIM samplers for
    actions (clipped) and latents (not clipped)."""
    cfg = policy.config
    kw = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
              prediction_type=cfg.prediction_type)
    alphas = DDPMScheduler(**kw).alphas_cumprod.to(torch.float32)
    policy.register_buffer("sqrt_alpha_bar", alphas.sqrt(), persistent=False)
    policy.register_buffer("sqrt_one_minus_alpha_bar", (1 - alphas).sqrt(), persistent=False)
    policy.action_sampler = DDIMScheduler(**kw, clip_sample=cfg.clip_sample, clip_sample_range=1.0)
    policy.latent_sampler = DDIMScheduler(**kw, clip_sample=False)
    for s in (policy.action_sampler, policy.latent_sampler):
        s.set_timesteps(cfg.num_inference_steps)


def add_noise(policy: Policy, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """q(x_t | x_0) for per-sample timesteps t (B,)."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    return policy.sqrt_alpha_bar[t].view(shape) * x + policy.sqrt_one_minus_alpha_bar[t].view(shape) * noise


def target(policy: Policy, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The regression target of the configured prediction type."""
    return noise if policy.config.prediction_type == "epsilon" else clean


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid leading (B, N) entries; 0 when none is valid."""
    err = (pred - target).pow(2).flatten(2).mean(-1)  # (B, N)
    valid = valid.to(err.dtype)
    return (err * valid).sum() / valid.sum().clamp_min(1.0)
