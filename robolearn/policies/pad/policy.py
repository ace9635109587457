"""PADPolicy: one DiT denoises K future latent frames and the action chunk under ONE shared timestep.

Each noisy future latent is concatenated channel-wise with the current frame's latent (PAD's
``x_cond``), patchified into tokens beside the action tokens; the state and the task's language
embedding enter as tokens and through the adaLN condition (with the timestep). With ``use_depth``,
each camera's depth map, pooled to the latent grid, is one more channel of every frame.

Training: DDPM, one t per sample for both modalities; windows from action-free episodes keep the
frame loss only (their action tokens are pure noise), PAD's co-training with video.
Inference: DDIM over frames and actions together; `predict_action_chunk` returns the actions,
`sample(obs, decode=True)` also the predicted frames.

Example::

    policy = make_policy("pad", features, stats, autoencoder_path="runs/ae", use_language=True)
    out = policy.sample({**obs, "task_embedding": emb}, decode=True)
    out["action"], out["images/front"]      # (B, T, Da), (B, K, H, W, 3) uint8
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import ConfigError
from robolearn.policies.base import ACTION_KEY, STATE_KEY, DataRequirements, Policy
from robolearn.language import EMBED_DIM
from robolearn.policies.latent import common
from robolearn.policies.nets.dit import DiT
from robolearn.policies.pad.config import PADConfig
from robolearn.spaces import depth_key


class PADPolicy(Policy):
    """Prediction with Action. See `PADConfig` and the module docstring."""

    name = "pad"
    config: PADConfig

    def __init__(self, config: PADConfig, stats: Mapping[str, Mapping]):
        super().__init__(config, stats)
        cfg = config
        common.setup_latents(self)
        C, h, w = self.latent_shape
        self.depth_keys = [depth_key(c) for c in self.cameras] if cfg.use_depth else []
        missing = [k for k in self.depth_keys if k not in cfg.features]
        if missing:
            raise ConfigError(f"use_depth needs {missing} in features (features: {sorted(cfg.features)}).")
        for k in self.depth_keys:  # one scalar normalization per depth map, from its per-pixel stats
            if k not in self.stats:
                raise KeyError(f"stats has no entry for {k!r} (stats keys: {sorted(self.stats)}).")
            mean = float(np.mean(self.stats[k]["mean"]))
            std = float(np.sqrt(np.mean(np.square(self.stats[k]["std"])) + np.var(self.stats[k]["mean"])))
            self.register_buffer(f"{k.replace('/', '__')}__norm", torch.tensor([mean, max(std, 1e-6)]))
        self.frame_channels = C + (1 if cfg.use_depth else 0)
        self.state_dim = int(cfg.features[STATE_KEY]["shape"][0]) if STATE_KEY in cfg.features else 0
        self.state_token = nn.Linear(cfg.n_obs_steps * self.state_dim, cfg.width) if self.state_dim else None
        self.language_token = nn.Linear(EMBED_DIM, cfg.width) if cfg.use_language else None
        n_tokens = (1 if self.state_dim else 0) + (1 if cfg.use_language else 0)
        cond_dim = cfg.n_obs_steps * self.state_dim + (cfg.width if cfg.use_language else 0)
        self.dit = DiT(2 * self.frame_channels, (h, w), len(self.cameras) * cfg.future_frames, self.action_dim,
                       cfg.horizon, cond_dim=cond_dim, n_cond_tokens=n_tokens, n_timesteps=1,
                       out_channels=self.frame_channels, width=cfg.width, depth=cfg.depth, heads=cfg.heads,
                       patch=cfg.patch, mlp_ratio=cfg.mlp_ratio, n_registers=cfg.n_registers, dropout=cfg.dropout)
        common.make_schedules(self)

    @property
    def uses_language(self) -> bool:
        return self.config.use_language

    def init_pretrained(self) -> None:
        common.init_autoencoder(self)

    def data_requirements(self, cached_latents: Mapping[str, Mapping] | None = None) -> DataRequirements:
        req = common.data_requirements(self, cached_latents)
        depth = {k: (self.config.future_frames, self.config.frame_stride) for k in self.depth_keys}
        return dataclasses.replace(req, obs_keys=req.obs_keys + tuple(self.depth_keys),
                                   future_keys={**req.future_keys, **depth})

    def _depth(self, batch: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
        """(B, V * N, 1, h, w) normalized depth pooled to the latent grid."""
        _, h, w = self.latent_shape
        views = []
        for k in self.depth_keys:
            if prefix + k not in batch:
                raise KeyError(f"use_depth is on, but the batch has no {prefix + k!r} (it has: {sorted(batch)}).")
            d = torch.as_tensor(batch[prefix + k], device=self.device).float()
            d = d.reshape(*d.shape[:2], *self.config.features[k]["shape"][:2])  # (B, N, H, W)
            mean, std = getattr(self, f"{k.replace('/', '__')}__norm")
            B, N = d.shape[:2]
            views.append(F.adaptive_avg_pool2d((d - mean) / std, (h, w)).view(B, N, 1, h, w))
        return torch.cat(views, dim=1)

    def frames(self, batch: Mapping[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
        """(B, V * N, C [+1], h, w): latents of every camera, plus depth with use_depth."""
        z = common.latents_from(self, batch, prefix)
        return torch.cat([z, self._depth(batch, prefix)], dim=2) if self.depth_keys else z

    def condition(
        self, obs: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """(adaLN cond or None, cond tokens or None, current frame per future slot (B, V*K, C', h, w))."""
        cfg = self.config
        cur = self.frames(obs)  # (B, V * To, C', h, w)
        B, To = cur.shape[0], cfg.n_obs_steps
        cur = cur.view(B, len(self.cameras), To, *cur.shape[2:])[:, :, -1]  # the current frame t of each view
        cur = cur.repeat_interleave(cfg.future_frames, dim=1)  # (B, V*K, C', h, w)
        conds, tokens = [], []
        if self.state_dim:
            state = self.normalizer.normalize(STATE_KEY, torch.as_tensor(obs[STATE_KEY], device=self.device)).flatten(1)
            conds.append(state)
            tokens.append(self.state_token(state))
        if cfg.use_language:
            lang = common.language_token(self, obs, B)
            conds.append(lang)
            tokens.append(lang)
        cond = torch.cat(conds, dim=-1) if conds else None
        return cond, (torch.stack(tokens, dim=1) if tokens else None), cur

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        if ACTION_KEY not in batch:
            raise KeyError(f"batch has no {ACTION_KEY!r} key (it has: {sorted(batch)}).")
        actions = self.normalizer.normalize(ACTION_KEY, batch[ACTION_KEY].to(self.device))
        B, T, _ = actions.shape
        if T != cfg.horizon:
            raise ValueError(f"batch {ACTION_KEY!r} has {T} steps, but the policy's horizon is {cfg.horizon}.")
        future = self.frames(batch, common.FUTURE_PREFIX)
        cond, tokens, cur = self.condition(batch)
        t = torch.randint(0, cfg.num_train_timesteps, (B,), device=self.device)
        acts = common.has_actions(batch, B, self.device)
        noise_a, noise_o = torch.randn_like(actions), torch.randn_like(future)
        noisy_a = torch.where(acts[:, None, None], common.add_noise(self, actions, noise_a, t), noise_a)
        noisy_o = common.add_noise(self, future, noise_o, t)
        pred_o, pred_a = self.dit(torch.cat([noisy_o, cur], dim=2), noisy_a, t, cond, tokens)
        valid_a = acts[:, None].clone()
        if "action_is_pad" in batch:
            valid_a = valid_a & ~batch["action_is_pad"].to(self.device, torch.bool)
        loss_a = common.masked_mse(pred_a, common.target(self, actions, noise_a), valid_a)
        loss_o = common.masked_mse(pred_o, common.target(self, future, noise_o), ~common.future_is_pad(self, batch))
        return {"loss": loss_o + cfg.action_loss_weight * loss_a, "action_loss": loss_a.detach(),
                "obs_loss": loss_o.detach()}

    @torch.no_grad()
    def sample(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
               decode: bool = False) -> dict[str, torch.Tensor]:
        """Joint DDIM: ``"action"`` (B, T, Da) env units, ``"latents"`` (B, V*K, C', h, w) and with
        `decode` ``"images/<camera>"`` (B, K, H, W, 3) uint8 (the latent channels only)."""
        cfg = self.config
        cond, tokens, cur = self.condition(obs)
        B, dev = cur.shape[0], self.device
        gdev = generator.device if generator is not None else dev
        a = torch.randn((B, cfg.horizon, self.action_dim), generator=generator, device=gdev).to(dev)
        o = torch.randn(cur.shape, generator=generator, device=gdev).to(dev)
        for t in self.action_sampler.timesteps:
            step = torch.full((B,), int(t), device=dev, dtype=torch.long)
            pred_o, pred_a = self.dit(torch.cat([o, cur], dim=2), a, step, cond, tokens)
            a = self.action_sampler.step(pred_a, t, a).prev_sample
            o = self.latent_sampler.step(pred_o, t, o).prev_sample
        out = {ACTION_KEY: self.normalizer.unnormalize(ACTION_KEY, a), "latents": o}
        if decode:
            out.update(common.decode_latents(self, o[:, :, : self.latent_shape[0]]))
        return out

    def predict_action_chunk(
        self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.sample(obs, generator=generator)[ACTION_KEY]
