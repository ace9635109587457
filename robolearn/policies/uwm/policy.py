"""UWMPolicy: one DiT denoises the action chunk and K future latent frames, each with its own timestep.

Training (DDPM, epsilon prediction): for every sample, t_action and t_obs are drawn independently;
the network sees the noisy chunk, the noisy future latents, both timesteps (two embeddings in the
adaLN condition) and the current observation (current-frame latent patches and state as tokens, state
also in the adaLN condition). Windows from action-free episodes (``has_actions`` False, or every action
step padded) get t_action = T-1 with pure-noise actions and no action loss: they train the video and
dynamics parts only (UWM's co-training on video).

Inference (DDIM) fixes one modality's timestep to pick a conditional, as in the paper:

| mode               | action                    | future frames              |
|--------------------|---------------------------|----------------------------|
| "policy"           | denoised                  | held at full noise         |
| "forward_dynamics" | given, clean (t = 0)      | denoised                   |
| "inverse_dynamics" | denoised                  | given, clean (t = 0)       |
| "video"            | held at full noise        | denoised                   |
| "joint"            | denoised                  | denoised (same steps)      |

Example::

    policy = make_policy("uwm", features, stats, autoencoder_path="runs/ae")
    out = policy.sample(obs, "forward_dynamics", actions=actions, decode=True)
    out["latents"], out["images/front"]      # (B, K, C, h, w), (B, K, H, W, 3) uint8
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from robolearn.policies.base import ACTION_KEY, STATE_KEY, DataRequirements, Policy
from robolearn.language import EMBED_DIM
from robolearn.policies.latent import common
from robolearn.policies.nets.dit import DiT
from robolearn.policies.uwm.config import UWMConfig

MODES = ("policy", "forward_dynamics", "inverse_dynamics", "video", "joint")


class UWMPolicy(Policy):
    """Unified World Model. See `UWMConfig` and the module docstring."""

    name = "uwm"
    config: UWMConfig

    def __init__(self, config: UWMConfig, stats: Mapping[str, Mapping]):
        super().__init__(config, stats)
        cfg = config
        common.setup_latents(self)
        C, h, w = self.latent_shape
        V, To = len(self.cameras), cfg.n_obs_steps
        self.state_dim = int(cfg.features[STATE_KEY]["shape"][0]) if STATE_KEY in cfg.features else 0
        self.obs_patch = nn.Conv2d(C, cfg.width, cfg.patch, stride=cfg.patch)
        self.state_token = nn.Linear(To * self.state_dim, cfg.width) if self.state_dim else None
        self.language_token = nn.Linear(EMBED_DIM, cfg.width) if cfg.use_language else None
        n_tokens = V * To * (h // cfg.patch) * (w // cfg.patch) + (1 if self.state_dim else 0) + int(cfg.use_language)
        cond_dim = To * self.state_dim + (cfg.width if cfg.use_language else 0)
        self.dit = DiT(C, (h, w), V * cfg.future_frames, self.action_dim, cfg.horizon, cond_dim=cond_dim,
                       n_cond_tokens=n_tokens, n_timesteps=2, width=cfg.width, depth=cfg.depth, heads=cfg.heads,
                       patch=cfg.patch, mlp_ratio=cfg.mlp_ratio, n_registers=cfg.n_registers, dropout=cfg.dropout)
        common.make_schedules(self)

    @property
    def uses_language(self) -> bool:
        return self.config.use_language

    def init_pretrained(self) -> None:
        common.init_autoencoder(self)

    def data_requirements(self, cached_latents: Mapping[str, Mapping] | None = None) -> DataRequirements:
        return common.data_requirements(self, cached_latents)

    def condition(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(adaLN cond (B, To * Do [+ width]) or None, observation tokens (B, Nc, width)) from the current
        frames, the state and (use_language) the task embedding."""
        current = common.latents_from(self, obs)  # (B, V * To, C, h, w)
        tokens = [self.dit.embed_patches(current, self.obs_patch)]
        conds = []
        if self.state_dim:
            state = torch.as_tensor(obs[STATE_KEY], device=self.device)
            conds.append(self.normalizer.normalize(STATE_KEY, state).flatten(1))
            tokens.insert(0, self.state_token(conds[0])[:, None])
        if self.config.use_language:
            lang = common.language_token(self, obs, current.shape[0])
            conds.append(lang)
            tokens.insert(0, lang[:, None])
        return (torch.cat(conds, dim=-1) if conds else None), torch.cat(tokens, dim=1)

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        if ACTION_KEY not in batch:
            raise KeyError(f"batch has no {ACTION_KEY!r} key (it has: {sorted(batch)}).")
        actions = self.normalizer.normalize(ACTION_KEY, batch[ACTION_KEY].to(self.device))  # (B, T, Da)
        B, T, _ = actions.shape
        if T != cfg.horizon:
            raise ValueError(f"batch {ACTION_KEY!r} has {T} steps, but the policy's horizon is {cfg.horizon}.")
        future = common.latents_from(self, batch, common.FUTURE_PREFIX)  # (B, V*K, C, h, w)
        cond, tokens = self.condition(batch)
        N = cfg.num_train_timesteps
        acts = common.has_actions(batch, B, self.device)
        t_a = torch.where(acts, torch.randint(0, N, (B,), device=self.device), N - 1)
        t_o = torch.randint(0, N, (B,), device=self.device)
        noise_a, noise_o = torch.randn_like(actions), torch.randn_like(future)
        noisy_a = torch.where(acts[:, None, None], common.add_noise(self, actions, noise_a, t_a), noise_a)
        noisy_o = common.add_noise(self, future, noise_o, t_o)
        eps_o, eps_a = self.dit(noisy_o, noisy_a, (t_a, t_o), cond, tokens)
        valid_a = acts[:, None].clone()
        if "action_is_pad" in batch:
            valid_a = valid_a & ~batch["action_is_pad"].to(self.device, torch.bool)
        loss_a = common.masked_mse(eps_a, common.target(self, actions, noise_a), valid_a)
        loss_o = common.masked_mse(eps_o, common.target(self, future, noise_o), ~common.future_is_pad(self, batch))
        return {"loss": loss_o + cfg.action_loss_weight * loss_a, "action_loss": loss_a.detach(),
                "obs_loss": loss_o.detach()}

    @torch.no_grad()
    def sample(self, obs: Mapping[str, torch.Tensor], mode: str = "policy", actions: torch.Tensor | None = None,
               future: Mapping[str, torch.Tensor] | None = None, generator: torch.Generator | None = None,
               decode: bool = False) -> dict[str, torch.Tensor]:
        """One of `MODES` for obs keys (B, To, ...).

        `actions` (B, T, Da) env units: the given chunk for "forward_dynamics". `future`: the given
        future frames for "inverse_dynamics", ``{"images/<camera>": (B, K, H, W, 3) uint8}`` or
        ``{"latents/<camera>": (B, K, C, h, w)}``. Returns ``"action"`` (B, T, Da) env units when the
        mode makes or takes one, ``"latents"`` (B, V*K, C, h, w) when it makes or takes frames, and with
        `decode` the frames as ``"images/<camera>"`` (B, K, H, W, 3) uint8.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {list(MODES)}.")
        if mode == "forward_dynamics" and actions is None:
            raise ValueError("mode 'forward_dynamics' needs `actions` (B, T, Da).")
        if mode == "inverse_dynamics" and future is None:
            raise ValueError("mode 'inverse_dynamics' needs `future` frames ({'images/<camera>': (B, K, H, W, 3)}).")
        cfg = self.config
        cond, tokens = self.condition(obs)
        B, dev = tokens.shape[0], self.device
        C, h, w = self.latent_shape
        full = torch.full((B,), cfg.num_train_timesteps - 1, device=dev, dtype=torch.long)
        zero = torch.zeros((B,), device=dev, dtype=torch.long)
        gdev = generator.device if generator is not None else dev
        a = torch.randn((B, cfg.horizon, self.action_dim), generator=generator, device=gdev).to(dev)
        o = torch.randn((B, len(self.cameras) * cfg.future_frames, C, h, w), generator=generator, device=gdev).to(dev)
        denoise_a = mode in ("policy", "inverse_dynamics", "joint")
        denoise_o = mode in ("forward_dynamics", "video", "joint")
        t_a, t_o = full, full
        if mode == "forward_dynamics":
            a, t_a = self.normalizer.normalize(ACTION_KEY, torch.as_tensor(actions, device=dev)), zero
        if mode == "inverse_dynamics":
            o, t_o = common.latents_from(self, future), zero
        for t in self.action_sampler.timesteps:
            step = torch.full((B,), int(t), device=dev, dtype=torch.long)
            eps_o, eps_a = self.dit(o, a, (step if denoise_a else t_a, step if denoise_o else t_o), cond, tokens)
            if denoise_a:
                a = self.action_sampler.step(eps_a, t, a).prev_sample
            if denoise_o:
                o = self.latent_sampler.step(eps_o, t, o).prev_sample
        out = {}
        if mode == "forward_dynamics":
            out[ACTION_KEY] = torch.as_tensor(actions, device=dev, dtype=torch.float32)  # as given, not round-tripped
        elif mode != "video":
            out[ACTION_KEY] = self.normalizer.unnormalize(ACTION_KEY, a)
        if mode != "policy":
            out["latents"] = o
            if decode:
                out.update(common.decode_latents(self, o))
        return out

    def predict_action_chunk(
        self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.sample(obs, "policy", generator=generator)[ACTION_KEY]
