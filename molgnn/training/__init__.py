"""Training: configuration, the epoch loop, schedules, EMA, losses and evaluation.

Checkpoints are written and read with [`molgnn.io`][molgnn.io]; a trained model is loaded with
[`molgnn.load`][molgnn.inference.load] ([`molgnn.inference`][molgnn.inference]).
"""

from molgnn.training.allocator import tune_malloc
from molgnn.training.config import TrainConfig
from molgnn.training.data import (
    Splits,
    dataset_from_checkpoint,
    load_dataset,
    make_splits,
)
from molgnn.training.distributed import DataParallel, current_data_parallel
from molgnn.training.ema import WeightEMA
from molgnn.training.evaluate import evaluate_checkpoint
from molgnn.training.fit import FitResult, fit
from molgnn.training.losses import LOSSES, get_loss
from molgnn.training.schedule import WarmupPlateauSchedule
from molgnn.training.trainer import Trainer, TrainingDivergedError, predict_batch, resolve_device

__all__ = [
    "LOSSES",
    "DataParallel",
    "FitResult",
    "Splits",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "WarmupPlateauSchedule",
    "WeightEMA",
    "current_data_parallel",
    "dataset_from_checkpoint",
    "evaluate_checkpoint",
    "fit",
    "get_loss",
    "load_dataset",
    "make_splits",
    "predict_batch",
    "resolve_device",
    "tune_malloc",
]
