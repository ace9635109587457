"""Reactive Diffusion Policy (RDP): slow latent diffusion over an asymmetric tokenizer's latents, with a
fast GRU decoder that reacts to force every control tick.

Two policies, both trained by the one Trainer:

- ``rdp_tokenizer`` (stage 1, `ActionTokenizer`): ``robolearn train policy=rdp_tokenizer ...``;
- ``rdp`` (stage 2, `RDPPolicy`): ``robolearn train policy=rdp model.tokenizer=<stage-1 run> ...``.

Deployment runs them at their own rates through `robolearn.runtime.rdp.RDPSource`.
"""

from robolearn.policies.rdp.config import RDPConfig, RDPTokenizerConfig
from robolearn.policies.rdp.policy import RDPPolicy
from robolearn.policies.rdp.tokenizer import ActionTokenizer

__all__ = ["ActionTokenizer", "RDPConfig", "RDPPolicy", "RDPTokenizerConfig"]
