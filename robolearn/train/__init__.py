"""Training: one Trainer for every policy, EMA, checkpoints, curves."""

from robolearn.train.config import TrainConfig
from robolearn.train.trainer import Trainer

__all__ = ["TrainConfig", "Trainer"]
