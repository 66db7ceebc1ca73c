"""The training engine shared by every model."""

from espressivo.train.engine import TrainConfig, Trainer, train

__all__ = ["TrainConfig", "Trainer", "train"]
