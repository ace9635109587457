"""From a store and an experiment config to a trained run directory (what `robolearn train` calls)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from robolearn.experiment import ExperimentConfig
from robolearn.output import check_output, claim_output
from robolearn.policies.base import Model
from robolearn.sampling import WindowSampler, split_episodes
from robolearn.sampling.interventions import DataConfig, WeightedWindows, intervention_windows
from robolearn.sampling.tasks import with_task_embeddings
from robolearn.sampling.windows import usable_episodes
from robolearn.store import Store, StoreError, ensure_stats
from robolearn.train.latents import cached_latents
from robolearn.train.trainer import Trainer


def store_features(store: Store) -> dict[str, dict]:
    return {k: {"shape": list(f.shape), "dtype": f.dtype} for k, f in store.features.items()}


def rollout_eval_fn(cfg: ExperimentConfig, env_id: str, env_kwargs: dict):
    """Periodic rollouts during training (train.eval_every): success rate of the current EMA weights."""
    from robolearn.eval.rollout import evaluate

    def run(model) -> dict:
        was_training = model.training
        model.eval()
        try:
            r = evaluate(model, env_id, cfg.train.eval_episodes, seed=cfg.eval.seed, env_kwargs=env_kwargs,
                         max_steps=cfg.task.max_steps, progress=False)
        finally:
            model.train(was_training)
        return {"success_rate": r.success_rate, "mean_length": r.mean_length}

    return run


@dataclass
class RunParts:
    """Everything a training run is built from; the same on one process and on every Ray Train rank."""

    policy: Model
    train_sampler: WindowSampler
    val_sampler: WindowSampler | None
    extra: dict
    """Saved beside the weights in config.json (env, store, experiment)."""
    eval_fn: Callable[[torch.nn.Module], dict] | None
    train_episodes: int
    val_episodes: int

    def summary(self) -> dict:
        return {"train_episodes": self.train_episodes, "val_episodes": self.val_episodes,
                "parameters": int(sum(p.numel() for p in self.policy.parameters()))}


def samplers_for(model: Model, store: Store, val_ratio: float, seed: int, include_aborted: bool = False,
                 data: DataConfig | None = None):
    """Train/val window samplers with what `model.data_requirements` asks for (cached latents it accepts,
    future frames, episode columns, task embeddings), selected and weighted by `data` (the store's interventions:
    `robolearn.sampling.interventions`; validation is selected, never weighted); returns (train, val or None,
    train_eps, val_eps)."""
    req = model.data_requirements(cached_latents(store))
    kw = {"future_keys": dict(req.future_keys), "episode_columns": tuple(req.episode_columns),
          "include_aborted": include_aborted}
    usable = usable_episodes(store, include_aborted=include_aborted)  # aborted recordings only when asked
    if len(usable) == 0:
        raise StoreError(f"store {store.path} has no episode to train on: all {store.n_episodes} were aborted "
                         f"while recording (train.include_aborted=true uses them)")
    train_eps, val_eps = (usable[i] for i in split_episodes(len(usable), val_ratio, seed))
    obs_keys, To, T = list(req.obs_keys), req.n_obs_steps, req.horizon
    train_s = WindowSampler(store, obs_keys, To, T, episodes=train_eps, **kw)
    val_s = (WindowSampler(store, obs_keys, To, T, episodes=val_eps, cache_bytes=1 << 30, **kw)
             if len(val_eps) else None)
    if data is not None and data.active:
        train_s = WeightedWindows.for_config(train_s, data)
        if val_s is not None and data.select != "all":
            val_s = WeightedWindows.for_config(val_s, data, weight=False) if intervention_windows(val_s).any() else None
    train_s, val_s = with_task_embeddings(model, store, train_s, val_s)
    return train_s, val_s, train_eps, val_eps


def build_run(cfg: ExperimentConfig, store_path: str) -> RunParts:
    """The configured policy (fitted normalizer, seeded weights) and its train/val window samplers."""
    from robolearn.policies import make_policy

    store = Store.open(store_path)
    if store.n_episodes == 0:
        raise StoreError(f"store {store_path} has no committed episodes to train on")
    stats = ensure_stats(store_path)
    features = store_features(store)
    torch.manual_seed(cfg.train.seed)  # weight init is part of the run's determinism
    policy = make_policy(cfg.policy, features, stats, **cfg.model)
    train_s, val_s, train_eps, val_eps = samplers_for(policy, store, cfg.train.val_ratio, cfg.train.seed,
                                                      cfg.train.include_aborted, cfg.data)
    env_id = store.info.get("env_id", cfg.task.env)
    extra = {"env_id": env_id, "env_kwargs": store.info.get("env_kwargs", cfg.task.env_kwargs),
             "store": str(store_path), "experiment": asdict(cfg)}
    eval_fn = rollout_eval_fn(cfg, env_id, extra["env_kwargs"]) if cfg.train.eval_every else None
    return RunParts(policy, train_s, val_s, extra, eval_fn, int(len(train_eps)), int(len(val_eps)))


def train_policy(cfg: ExperimentConfig, store_path: str, out: str | Path, progress: bool = True,
                 resume: bool = False, stop_at: int | None = None, overwrite: bool = False) -> dict:
    """Fit the configured policy to the store; the run directory is a loadable checkpoint.

    `out` must be new or an empty folder; `resume` continues the robolearn run there, `overwrite` replaces
    it (only the files a run consists of are deleted); anything else there is refused (robolearn.output)."""
    check_output(out, "run", resume=resume, overwrite=overwrite)  # before the policy is built
    run = build_run(cfg, store_path)
    claim_output(out, "run", resume=resume, overwrite=overwrite)
    trainer = Trainer(run.policy, run.train_sampler, cfg.train, out, val_sampler=run.val_sampler, extra=run.extra,
                      progress=progress)
    summary = trainer.fit(resume=resume, eval_fn=run.eval_fn, stop_at=stop_at)
    summary.update(run.summary())
    return summary
