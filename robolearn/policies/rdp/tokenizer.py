"""RDP stage 1: the asymmetric action tokenizer (`rdp_tokenizer`).

Encoder (sees actions only): normalized action chunk (B, T, Da) -> Conv1d + Mish at the action rate ->
log2(r) stride-2 Conv1d -> mean and log-variance of the latent (B, T // r, Dz) (a VAE with a tiny KL).
Decoder (sees the latent and the force, one control tick at a time): latent step j -> Linear -> r per-tick
features (tick k reads those of step k // r, slot k % r) ; concat with the embedding of the force read at
tick k -> GRU -> Linear -> normalized action k. Training reconstructs logged actions from logged forces
(teacher forcing); at deployment the decoder runs every control tick on the latest force reading, so the
robot reacts to contact inside a chunk that the slow policy planned from older observations.

Batch: "action" (B, T, Da), "action_is_pad" (B, T), "force" (B, 1, 6) (tick t) and "future/force"
(B, T - 1, 6) (ticks t+1 .. t+T-1); `data_requirements` asks the WindowSampler for them.
A `Model`, not a `Policy`: it trains (stage 1) but does not act; RDP's stage 2 acts through it.

Example::

    tok = make_policy("rdp_tokenizer", features, stats, horizon=16, downsample=4)
    loss = tok.compute_loss(batch)["loss"]                      # reconstruction + kl_weight * KL
    z = tok.encode(tok.normalizer.normalize("action", actions))  # (B, T // r, Dz)
    a, h = tok.decode_step(z, k=0, force=f_norm, hidden=None)    # one tick: (B, Da) normalized
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import InvalidValueError, UnknownKeyError
from robolearn.policies.base import ACTION_KEY, DataRequirements, Model
from robolearn.policies.normalize import Normalizer
from robolearn.policies.rdp.config import FORCE_KEY, RDPTokenizerConfig
from robolearn.spaces import future_key

FUTURE_FORCE_KEY = future_key(FORCE_KEY)


def check_force_feature(config: Any) -> int:
    """The force dimension from `config.features`, or a KeyError saying what the store must record."""
    if FORCE_KEY not in config.features:
        raise UnknownKeyError(
            f"RDP needs a {FORCE_KEY!r} feature (a wrench or tactile embedding per tick); the features have "
            f"{sorted(config.features)}. Record a task with a force stream, e.g. robolearn/mujoco-wipe."
        )
    shape = config.features[FORCE_KEY]["shape"]
    if len(shape) != 1:
        raise InvalidValueError(f"feature {FORCE_KEY!r} must be 1-D (Dforce,), got shape {shape}.")
    return int(shape[0])


def shared_force_stats(stats: Mapping[str, Mapping], mode: str) -> dict[str, Mapping]:
    """`stats` with the `force` entry changed so that every force dimension gets the same normalization scale
    (`mode` "mean_std": the largest std; "min_max": the widest range, centred on each dimension's own
    midpoint); means and midpoints stay per dimension. Other keys and other modes pass through unchanged."""
    if FORCE_KEY not in stats or mode not in ("mean_std", "min_max"):
        return dict(stats)
    force = dict(stats[FORCE_KEY])
    if mode == "mean_std":
        std = [float(x) for x in force["std"]]
        force["std"] = [max(std)] * len(std)
    else:
        lo, hi = [float(x) for x in force["min"]], [float(x) for x in force["max"]]
        half = max(b - a for a, b in zip(lo, hi)) / 2
        force["min"] = [(a + b) / 2 - half for a, b in zip(lo, hi)]
        force["max"] = [(a + b) / 2 + half for a, b in zip(lo, hi)]
    return {**stats, FORCE_KEY: force}


class ActionTokenizer(Model):
    """Conv1d VAE encoder of action chunks + GRU decoder conditioned on the per-tick force (module doc)."""

    name = "rdp_tokenizer"
    config: RDPTokenizerConfig

    def __init__(self, config: RDPTokenizerConfig, stats: Mapping[str, Mapping]):
        super().__init__(config, stats)
        cfg = config
        self.force_dim = check_force_feature(cfg)
        # The tokenizer reads actions and forces only; stage 2 owns the observation encoders.
        self.input_keys = [FORCE_KEY]
        used = {k: cfg.features[k] for k in (FORCE_KEY, ACTION_KEY)}
        stats_used = (shared_force_stats(self.stats, cfg.normalization.get(FORCE_KEY, "min_max"))
                      if cfg.shared_force_scale else self.stats)
        self.normalizer = Normalizer(used, stats_used,
                                     {k: m for k, m in cfg.normalization.items() if k in used})
        Da, Dz, r = self.action_dim, cfg.latent_dim, cfg.downsample
        k, pad = cfg.kernel_size, cfg.kernel_size // 2
        layers: list[nn.Module] = []
        c_in = Da
        for c in cfg.encoder_channels:
            layers += [nn.Conv1d(c_in, c, k, padding=pad), nn.Mish()]
            c_in = c
        for _ in range(int(math.log2(r))):
            layers += [nn.Conv1d(c_in, c_in, 4, stride=2, padding=1), nn.Mish()]
        layers.append(nn.Conv1d(c_in, 2 * Dz, 1))
        self.encoder = nn.Sequential(*layers)
        self.upsample = nn.Linear(Dz, r * cfg.latent_upsample_dim)
        self.force_embed = nn.Sequential(nn.Linear(self.force_dim, cfg.force_embed_dim), nn.Mish(),
                                         nn.Linear(cfg.force_embed_dim, cfg.force_embed_dim))
        self.gru = nn.GRU(cfg.latent_upsample_dim + cfg.force_embed_dim, cfg.decoder_hidden, batch_first=True)
        self.head = nn.Linear(cfg.decoder_hidden, Da)
        # Running latent statistics (of the posterior mean), for stage 2's latent scaling.
        self.register_buffer("latent_mean", torch.zeros(Dz))
        self.register_buffer("latent_std", torch.ones(Dz))
        self.register_buffer("latent_updates", torch.zeros(()))

    # ---- sampler contract ----

    def data_requirements(self, cached_latents: Mapping[str, Mapping] | None = None) -> DataRequirements:
        """Force at tick t (obs frame) and ticks t+1 .. t+T-1 (future frames): one reading per action step."""
        cfg = self.config
        future = {FORCE_KEY: (cfg.horizon - 1, 1)} if cfg.horizon > 1 else {}
        return DataRequirements((FORCE_KEY,), int(cfg.n_obs_steps), int(cfg.horizon), future)

    def action_forces(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, Dforce) raw forces aligned with the action steps, from a sampler batch."""
        for key in (FORCE_KEY, *((FUTURE_FORCE_KEY,) if self.config.horizon > 1 else ())):
            if key not in batch:
                raise KeyError(f"batch has no {key!r} (it has {sorted(batch)}); build the sampler with "
                               "model.data_requirements().")
        now = batch[FORCE_KEY][:, -1:]
        return torch.cat([now, batch[FUTURE_FORCE_KEY]], 1) if self.config.horizon > 1 else now

    # ---- encoder / decoder ----

    def encode_dist(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized actions (B, T, Da) -> latent mean and log-variance, each (B, T // r, Dz)."""
        if actions.shape[1] != self.config.horizon:
            raise ValueError(f"action chunk has {actions.shape[1]} steps; the tokenizer's horizon is "
                             f"{self.config.horizon}.")
        mean, logvar = self.encoder(actions.transpose(1, 2)).transpose(1, 2).chunk(2, dim=-1)
        return mean, logvar.clamp(-10.0, 10.0)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalized actions (B, T, Da) -> latent (B, T // r, Dz) (the posterior mean)."""
        return self.encode_dist(actions)[0]

    def _tick_inputs(self, z: torch.Tensor, ticks: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
        # z: (B, L, Dz); ticks: (K,) action-step indices; forces: (B, K, Dforce) normalized -> (B, K, U + E)
        B, L, _ = z.shape
        r = self.config.downsample
        steps = (ticks // r).clamp(max=L - 1)
        up = self.upsample(z[:, steps]).view(B, len(ticks), r, -1)  # (B, K, r, U)
        slot = (ticks % r).view(1, -1, 1, 1).expand(B, -1, 1, up.shape[-1])
        return torch.cat([up.gather(2, slot).squeeze(2), self.force_embed(forces)], dim=-1)

    def decode(self, z: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
        """Latent (B, L, Dz) + normalized forces (B, T, Dforce) -> normalized actions (B, T, Da), from h = 0."""
        ticks = torch.arange(forces.shape[1], device=z.device)
        out, _ = self.gru(self._tick_inputs(z, ticks, forces))
        return self.head(out)

    def decode_step(self, z: torch.Tensor, k: int, force: torch.Tensor,
                    hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One control tick: latent (B, L, Dz), tick k of the chunk, normalized force (B, Dforce), GRU
        state (1, B, H) or None at the chunk's first tick -> (normalized action (B, Da), new state)."""
        ticks = torch.tensor([k], device=z.device)
        out, hidden = self.gru(self._tick_inputs(z, ticks, force[:, None]), hidden)
        return self.head(out[:, 0]), hidden

    # ---- Model ----

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if ACTION_KEY not in batch:
            raise KeyError(f"batch has no {ACTION_KEY!r} key (it has: {sorted(batch)}).")
        actions = self.normalizer.normalize(ACTION_KEY, batch[ACTION_KEY].to(self.device))  # (B, T, Da)
        forces = self.normalizer.normalize(FORCE_KEY, self.action_forces(batch).to(self.device))
        mean, logvar = self.encode_dist(actions)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
        recon_err = F.mse_loss(self.decode(z, forces), actions, reduction="none").mean(-1)  # (B, T)
        is_pad = batch.get("action_is_pad")
        if is_pad is None:
            recon = recon_err.mean()
        else:
            valid = (~is_pad.to(recon_err.device, torch.bool)).to(recon_err.dtype)
            recon = (recon_err * valid).sum() / valid.sum().clamp_min(1.0)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        if self.training:
            with torch.no_grad():
                # A plain average over the first 1/momentum batches, then an exponential one.
                m = max(self.config.latent_momentum, 1.0 / float(self.latent_updates + 1))
                self.latent_updates += 1
                flat = mean.detach().flatten(0, 1)
                self.latent_mean.lerp_(flat.mean(0), m)
                self.latent_std.lerp_(flat.std(0).clamp_min(1e-3), m)
        return {"loss": recon + self.config.kl_weight * kl, "recon": recon.detach(), "kl": kl.detach()}
