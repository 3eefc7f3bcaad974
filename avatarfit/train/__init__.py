"""Training of the LiP-Flow variants: configs, data, objective, checkpoints, the loop."""

from .config import DataConfig, LossConfig, ScheduleConfig, TrainConfig, load_train_config
from .loop import TrainResult, train

__all__ = ["DataConfig", "LossConfig", "ScheduleConfig", "TrainConfig", "TrainResult", "load_train_config", "train"]
