"""Dual-rate deployment of Reactive Diffusion Policy: a slow latent planner and a fast force-reactive decoder.

`RDPSource` is an `ActionSource`. Every `slow_every` ticks (24 Hz control / 6 Hz slow = 4) it samples a
new latent chunk from the slow policy on the last `To` observations; at EVERY tick it runs the tokenizer's
GRU decoder one step on the current latent step and the latest `force` reading. So a contact that starts
inside a chunk changes the very next action, not the next chunk (RDP's `action_command_thread`).

A new latent chunk restarts the decoder at the chunk's tick 0 with a zero GRU state (as in training, where
every window starts from h = 0). With `latency_ticks = L`, a chunk planned from the observation at tick k
is only used from tick k + L, decoding from its tick L on (the ticks the robot spent waiting are skipped, as
RDP's `latency_step` does); the first chunk of an episode is awaited.

Example::

    source = RDPSource(policy, slow_every=4)      # policy: RDPPolicy (robolearn.policies.rdp)
    loop = ControlLoop(env, source, VirtualClock(24.0))
    loop.run_episode(seed=0); print(source.n_slow, source.n_fast)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robolearn.errors import InvalidValueError
from robolearn.runtime.predictor import ObservationHistory
from robolearn.spaces import FORCE

__all__ = ["RDPSource"]


class RDPSource:
    """Runs an RDP policy at two rates (module doc).

    Args:
        policy: an object with `config` (`n_obs_steps`, `horizon`), `input_keys` (must include "force"),
            `sample_latent(obs, generator) -> (1, L, Dz)`, `decode_step(z, k, force, hidden) -> (action (1, Da),
            hidden)` and `reset()`: `robolearn.policies.rdp.RDPPolicy`.
        slow_every: ticks between slow-policy calls (>= 1, at most the horizon T).
        device: torch device for the observation batch.
        latency_ticks: simulated slow-policy latency L in ticks (0 <= L < slow_every).
    """

    force_key = FORCE

    def __init__(self, policy: Any, slow_every: int = 4, device: str | torch.device = "cpu",
                 latency_ticks: int = 0) -> None:
        for name in ("sample_latent", "decode_step", "reset"):
            if not callable(getattr(policy, name, None)):
                raise TypeError(f"RDPSource: {type(policy).__name__} has no method {name}(); expected an RDPPolicy.")
        self.policy = policy
        self.n_obs_steps = int(policy.config.n_obs_steps)
        self.horizon = int(policy.config.horizon)
        if not 1 <= int(slow_every) <= self.horizon:
            raise InvalidValueError(f"RDPSource: slow_every must be in [1, horizon={self.horizon}], got {slow_every}.")
        if not 0 <= int(latency_ticks) < int(slow_every):
            raise InvalidValueError(f"RDPSource: latency_ticks must be in [0, slow_every={slow_every}), got {latency_ticks}.")
        self.input_keys = list(policy.input_keys)
        if self.force_key not in self.input_keys:
            raise ValueError(f"RDPSource: the policy's input_keys {self.input_keys} lack {self.force_key!r}.")
        self.slow_every, self.latency_ticks = int(slow_every), int(latency_ticks)
        self.device = torch.device(device)
        self._generator = torch.Generator(device=self.device)
        self._history = ObservationHistory(self.input_keys, self.n_obs_steps, owner="RDPSource")
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset()
        if seed is not None:
            self._generator.manual_seed(seed)
        self._history.clear()
        self._latent: torch.Tensor | None = None
        self._pending: tuple[int, int, torch.Tensor] | None = None  # (available tick, planned tick, latent)
        self._chunk_start = 0
        self._hidden: torch.Tensor | None = None
        self._next_plan = 0
        self.n_slow = 0
        """Slow-policy calls (latent chunks sampled) since reset()."""
        self.n_fast = 0
        """Decoder steps (one per tick) since reset()."""

    def act(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray:
        self._observe(obs)
        if self._latent is None or tick >= self._next_plan:
            z = self._plan()
            available = tick if self._latent is None else tick + self.latency_ticks
            self._pending = (available, tick, z)
            self._next_plan = tick + self.slow_every
        if self._pending is not None and self._pending[0] <= tick:
            _, planned, self._latent = self._pending
            self._pending, self._chunk_start, self._hidden = None, planned, None
            # Catch the decoder up over the ticks that passed while the chunk was computed (latency).
            for k in range(tick - planned):
                self._hidden = self._decode(k, obs)[1]
        k = tick - self._chunk_start
        if k >= self.horizon:  # missed ticks ran past the chunk: hold its last step
            k = self.horizon - 1
        action, self._hidden = self._decode(k, obs)
        self.n_fast += 1
        return action[0].to("cpu", torch.float32).numpy()

    def _decode(self, k: int, obs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        force = torch.as_tensor(np.asarray(obs[self.force_key], dtype=np.float32), device=self.device)[None]
        with torch.inference_mode():
            return self.policy.decode_step(self._latent, k, force, self._hidden)

    def _observe(self, obs: dict[str, np.ndarray]) -> None:
        self._history.add(obs)

    def _plan(self) -> torch.Tensor:
        batch = self._history.batch(self.device)
        with torch.inference_mode():
            z = self.policy.sample_latent(batch, generator=self._generator)
        self.n_slow += 1
        return z
