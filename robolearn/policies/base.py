"""The two interfaces of robolearn's learned components: `Model` (what the one `Trainer` fits) and
`Policy` (a Model that also acts).

Models that only train (the latent autoencoder, RDP's action tokenizer) subclass `Model`; every policy
subclasses `Policy`. The hooks the trainer, sampler and control loop rely on are declared here with
defaults (`data_requirements`, `uses_language`, `make_action_source`, `reset`), so callers never probe
a policy with ``hasattr``. Policies know tensors, not stores: what a model needs from the data is a
`DataRequirements` in key terms, which `robolearn.train` turns into window samplers.

A policy is a `torch.nn.Module` with a dataclass `config`, a fitted `normalizer` (part of its state
dict) and two methods the rest of the stack calls:

- ``compute_loss(batch) -> {"loss": scalar, ...}`` — used by the single `Trainer`.
- ``predict_action_chunk(obs, generator=None) -> (B, T, Da)`` — used by the control loop; returns
  actions in env units (unnormalized). The chunk starts at the current step t; the loop executes
  the first `Ta` (``config.n_action_steps``) of them.

Batch contract (torch tensors, produced by `robolearn.sampling`):

- ``"state"``: (B, To, Do) float32; ``"images/<camera>"``: (B, To, H, W, 3) uint8
  (obs steps t-To+1 .. t); either may be absent (image-only or state-only policies).
- ``"action"``: (B, T, Da) float32 in env units (steps t .. t+T-1);
  ``"action_is_pad"``: (B, T) bool, True where the step lies past the episode end.
- Optionally ``"<obskey>_is_pad"``: (B, To) bool.

Inference observations carry the same obs keys with the same shapes and dtypes.

Example::

    from robolearn.policies import make_policy, save_policy, load

    policy = make_policy("diffusion", features, stats, down_dims=(64, 128, 256))
    loss = policy.compute_loss(batch)["loss"]          # train
    save_policy(policy, "runs/ckpt", extra={"env_id": "PushT-v0"})
    policy = load("runs/ckpt")                          # eval mode, EMA weights if saved
    actions = policy.predict_action_chunk(obs)          # (B, T, Da), env units
"""

from __future__ import annotations

import abc
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from robolearn.errors import ConfigError, InvalidValueError
from robolearn.policies.normalize import Normalizer
from robolearn.spaces import ACTION as ACTION_KEY
from robolearn.spaces import STATE as STATE_KEY
from robolearn.spaces import is_image_key


@dataclasses.dataclass
class PolicyConfig:
    """Fields every policy shares. Subclasses add their own, each with a comment."""

    n_obs_steps: int = 2
    """To: observation steps the policy conditions on (t-To+1 .. t)."""
    horizon: int = 16
    """T: action steps predicted per chunk, starting at the current step t."""
    n_action_steps: int = 8
    """Ta: actions the control loop executes from each chunk before asking again (Ta <= T)."""
    normalization: dict[str, str] = dataclasses.field(
        default_factory=lambda: {STATE_KEY: "min_max", ACTION_KEY: "min_max"}
    )
    """Per-key mode ("min_max" | "mean_std" | "identity"); unlisted low-dim keys use "min_max"."""
    lowdim_keys: tuple[str, ...] = ()
    """More 1-D observation features to condition on besides ``state``, e.g. ``("force",)`` (a wrench): each is
    normalized by its own stats and concatenated after the state at every observation step. Policies that
    take them say so (`Model.conditions_on_lowdim`: diffusion, flow); the others refuse a non-empty tuple."""
    features: dict[str, dict] = dataclasses.field(default_factory=dict)
    """Features the policy was built for (key -> {"shape", "dtype"}); set by `make_policy`,
    saved as the top-level "features" of config.json rather than inside "config"."""

    def __post_init__(self) -> None:
        if min(self.n_obs_steps, self.horizon, self.n_action_steps) < 1:
            raise ConfigError("n_obs_steps, horizon and n_action_steps must all be >= 1.")
        if self.n_action_steps > self.horizon:
            raise ConfigError(f"n_action_steps ({self.n_action_steps}) must not exceed horizon ({self.horizon}).")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field except `features` (stored beside it in config.json)."""
        out = dataclasses.asdict(self)
        out.pop("features")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], features: Mapping | None = None) -> "PolicyConfig":
        """Inverse of `to_dict`; JSON lists become tuples where the field is a tuple; unknown keys raise."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"{cls.__name__} has no field(s) {sorted(unknown)}; known fields: {sorted(names)}.")
        kwargs = {k: _as_tuple_if_needed(hints[k], v) for k, v in data.items()}
        if features is not None:
            kwargs["features"] = {k: dict(v) for k, v in features.items()}
        return cls(**kwargs)


def _as_tuple_if_needed(hint: Any, value: Any) -> Any:
    if not isinstance(value, list):
        return value
    is_union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    options = typing.get_args(hint) if is_union else (hint,)
    if any(typing.get_origin(o) is tuple or o is tuple for o in options):
        return tuple(value)
    return value


@dataclasses.dataclass(frozen=True)
class DataRequirements:
    """What a model needs in each training batch, in key terms (the sampler reads them from a store).

    Windows anchored at a frame t: `obs_keys` at t-To+1 .. t, ``"action"`` at t .. t+T-1, plus
    ``future/<key>`` frames and per-window episode columns, and the task embedding when `language`.
    """

    obs_keys: tuple[str, ...]
    """Keys read at the To observation steps (e.g. "state", "images/front" or a cached "latents/front")."""
    n_obs_steps: int
    """To."""
    horizon: int
    """T: action steps per window."""
    future_keys: Mapping[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    """key -> (K frames, stride): ``future/<key>`` at t+stride .. t+K*stride."""
    episode_columns: tuple[str, ...] = ()
    """Per-episode table columns added to every window (e.g. "has_actions")."""
    language: bool = False
    """Whether batches carry the episode's ``task_embedding`` (B, 384)."""


class Model(nn.Module, abc.ABC):
    """What the one `Trainer` fits: holds `config`, `features`, `stats` and the fitted `normalizer`.

    Subclasses set the class attribute `name` (the registry key) and implement `compute_loss`. Input
    keys are ``"state"`` (if present), the config's ``lowdim_keys`` and every ``"images/<camera>"`` feature;
    other observation features are not consumed. A model that also acts is a `Policy`.
    """

    name: ClassVar[str]
    config: PolicyConfig
    conditions_on_lowdim: ClassVar[bool] = False
    """Whether the model concatenates ``config.lowdim_keys`` to its state input (else a non-empty tuple is refused)."""

    def __init__(self, config: PolicyConfig, stats: Mapping[str, Mapping]):
        super().__init__()
        if ACTION_KEY not in config.features:
            raise KeyError(f"features has no {ACTION_KEY!r} key (features: {sorted(config.features)}).")
        self.config = config
        # Plain lists, so stats.json can be written whatever array type the stats came in.
        self.stats = {k: {n: np.asarray(v).tolist() for n, v in d.items()} for k, d in stats.items()}
        self.image_keys: list[str] = sorted(k for k in config.features if is_image_key(k))
        self.lowdim_keys: list[str] = list(config.lowdim_keys)
        if self.lowdim_keys and not self.conditions_on_lowdim:
            raise InvalidValueError(f"{type(self).__name__} does not condition on lowdim_keys {self.lowdim_keys}; "
                                    "use the diffusion or flow policy, or leave model.lowdim_keys empty")
        for key in self.lowdim_keys:
            shape = config.features.get(key, {}).get("shape")
            if key in (STATE_KEY, ACTION_KEY) or is_image_key(key) or shape is None or len(shape) != 1:
                have = sorted(k for k, f in config.features.items() if len(f.get("shape", ())) == 1
                              and k not in (STATE_KEY, ACTION_KEY))
                raise InvalidValueError(f"lowdim_keys names {key!r}, which is not a 1-D observation feature besides "
                                        f"state and action; the features have: {have or 'none'}")
        self.input_keys: list[str] = (([STATE_KEY] if STATE_KEY in config.features else []) + self.lowdim_keys
                                      + self.image_keys)
        if not self.input_keys:
            raise InvalidValueError(
                f"features has neither {STATE_KEY!r} nor any 'images/<camera>' key: nothing to condition on."
            )
        used = {k: config.features[k] for k in [*self.input_keys, ACTION_KEY]}
        self.normalizer = Normalizer(used, self.stats, {k: m for k, m in config.normalization.items() if k in used})

    @property
    def features(self) -> dict[str, dict]:
        return self.config.features

    @property
    def action_dim(self) -> int:
        """Da."""
        return int(self.config.features[ACTION_KEY]["shape"][0])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @abc.abstractmethod
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training loss on a batch (see the module docstring); the dict holds a scalar "loss"."""

    # ---- hooks (defaults; subclasses override what differs) ----

    @property
    def uses_language(self) -> bool:
        """Whether batches and observations must carry ``task_embedding`` (B, 384). Default: no."""
        return False

    def data_requirements(self, cached_latents: Mapping[str, Mapping] | None = None) -> DataRequirements:
        """What each training batch must hold. Default: `input_keys` at To steps, T actions.

        `cached_latents` maps the ``latents/<camera>`` keys a store has cached (and can read) to their
        attrs (``fingerprint``, ...), so a model may ask for them instead of frames.
        """
        cfg = self.config
        return DataRequirements(tuple(self.input_keys), int(cfg.n_obs_steps), int(cfg.horizon),
                                language=self.uses_language)

    def train(self, mode: bool = True) -> "Policy":
        if mode:  # compiled functions hold frozen weights: training must run the real modules
            from robolearn.policies.compile import uncompile

            uncompile(self)
        return super().train(mode)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        from robolearn.policies.compile import uncompile

        uncompile(self)  # new weights: compiled functions would keep the old ones
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def init_pretrained(self) -> None:
        """Load pretrained weights the config names; `make_policy` calls it, `load` does not
        (a checkpoint already holds every weight)."""



class Policy(Model):
    """A `Model` that acts: `predict_action_chunk` for the control loop, plus its acting hooks."""

    @abc.abstractmethod
    def predict_action_chunk(
        self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, T, Da) float32 actions in env units for obs with keys (B, To, ...).

        A seeded `generator` makes the sampling noise reproducible. Call `.eval()` first (`load`
        returns eval mode): in training mode, image augmentation (random crops) stays on.
        """

    def reset(self) -> None:
        """Forget any per-episode state (called by the control loop at episode start)."""

    @property
    def supports_inpainting(self) -> bool:
        """Whether `predict_action_chunk` takes ``inpaint=`` (Real-Time Chunking's guided prefix,
        `robolearn.policies.rtc.Inpainting`). Default: no; the flow and diffusion policies do."""
        return False

    @property
    def rtc_variant(self) -> str | None:
        """How `predict_action_chunk` follows an ``inpaint=`` prefix: ``"guided"`` (inference-time RTC:
        guidance toward the prefix at every denoising step), ``"trained"`` (training-time RTC: trained with
        frozen prefixes, the first d actions are fixed to the prefix, no guidance) or None (no prefix)."""
        return "guided" if self.supports_inpainting else None

    def make_action_source(self, device: str | torch.device = "cpu") -> Any:
        """The `robolearn.runtime.sources.ActionSource` that runs this policy, or None (the default) for the
        standard chunking `PolicySource`. A policy that runs at its own rates (RDP) returns its own."""
        return None

    def check_obs(self, obs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Input keys of `obs` as tensors on the policy's device; raises naming a missing or misshapen key."""
        device, To = self.device, self.config.n_obs_steps
        out = {}
        for key in self.input_keys:
            if key not in obs:
                raise KeyError(
                    f"observation has no key {key!r} (it has: {sorted(obs)}); the policy needs {self.input_keys}."
                )
            x = torch.as_tensor(obs[key], device=device)
            shape = tuple(self.config.features[key]["shape"])
            if x.dim() != 2 + len(shape) or x.shape[1] != To or tuple(x.shape[2:]) != shape:
                dims = ", ".join(map(str, shape))
                raise ValueError(f"observation {key!r} has shape {tuple(x.shape)}, expected (B, {To}, {dims}).")
            out[key] = x
        return out
