"""The experiment config every subcommand reads: which task, how to collect, train and evaluate.

Presets compose like `robolearn train policy=diffusion task=mujoco-push train.steps=2000`:
`policy=NAME` loads configs/policy/NAME.yaml, `task=NAME` configs/task/NAME.yaml, `demo=NAME`
configs/demo/NAME.yaml, and every other `a.b=value` overrides one field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robolearn.config import ConfigError, from_dict, load_preset, merge, parse_override, set_dotted
from robolearn.sampling.interventions import DataConfig
from robolearn.train.config import TrainConfig


@dataclass
class TaskConfig:
    env: str = "robolearn/mujoco-push"
    """gymnasium id of the environment (see `robolearn envs`)."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments for gymnasium.make, e.g. image_size, cameras."""
    max_steps: int | None = None
    """Control steps per episode; None keeps the env's own limit."""


@dataclass
class CollectConfig:
    episodes: int = 100
    """Expert episodes to record."""
    seed: int = 0
    """Episode i is reset with seed + i."""
    only_success: bool = True
    """Keep only episodes where the expert succeeded."""


@dataclass
class EvalConfig:
    episodes: int = 50
    """Evaluation rollouts."""
    seed: int = 100_000
    """Episode i is reset with seed + i; far from the collection seeds so eval states are unseen."""
    video_episodes: int = 4
    """How many rollouts go into the mp4."""
    workers: int = 1
    """Ray actors for rollouts (1 = in process)."""
    threads: int = 1
    """torch threads for inference at batch 1 (more threads only add sync overhead at this size)."""
    latency_ticks: int = 0
    """Simulated inference latency in control ticks: a chunk computed from the observation at tick k
    starts acting at tick k + latency_ticks, as on a robot whose policy takes that long (< n_action_steps)."""
    compile: bool = False
    """Compile the policy for inference first (robolearn.policies.compile: ~2x faster chunks on CPU,
    a one-off compile of ~20-80 s; diffusion and flow policies)."""


@dataclass
class ExperimentConfig:
    policy: str = "diffusion"
    """Policy name in robolearn.policies.POLICIES."""
    model: dict = field(default_factory=dict)
    """Fields of that policy's config dataclass (checked by the policy)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    """Which windows training draws, and how often: ``data.intervention_weight=W`` (windows overlapping a
    person's takeover W times as often), ``data.select=interventions`` (only those)."""
    eval: EvalConfig = field(default_factory=EvalConfig)


PRESET_GROUPS = {"policy": "policy", "task": "task", "demo": "demo", "train": "train"}


def model_overrides(args: list[str], cfg: ExperimentConfig) -> dict:
    """The policy config fields named by ``model.<field>=value`` in `args` (not those a preset filled), with their
    values in `cfg`: what eval and deploy apply to a trained checkpoint."""
    named = [parse_override(arg)[0] for arg in args if "=" in arg]
    return {keys[1]: cfg.model[keys[1]] for keys in named if len(keys) >= 2 and keys[0] == "model"}


def build_config(args: list[str], base: dict | None = None) -> ExperimentConfig:
    """Presets first (in the order given), then dotted overrides, into a typed ExperimentConfig."""
    data: dict = dict(base or {})
    overrides = []
    for arg in args:
        keys, value = parse_override(arg)
        if len(keys) == 1 and keys[0] in PRESET_GROUPS and isinstance(value, str) and keys[0] != "policy":
            data = merge(data, load_preset(PRESET_GROUPS[keys[0]], value))
        elif keys == ["policy"] and isinstance(value, str):
            preset = load_preset("policy", value)
            data = merge(data, {"policy": value, **preset})
        else:
            overrides.append((keys, value))
    for keys, value in overrides:
        set_dotted(data, keys, value)
    try:
        return from_dict(ExperimentConfig, data)
    except ConfigError:
        raise
    except TypeError as e:
        raise ConfigError(str(e)) from e
