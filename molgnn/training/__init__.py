"""Training: configuration, the epoch loop, checkpoints, schedules, EMA and losses."""

from molgnn.training.allocator import tune_malloc
from molgnn.training.checkpoint import (
    FORMAT_VERSION,
    file_sha256,
    load,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from molgnn.training.config import ENERGY_TARGETS, TrainConfig
from molgnn.training.data import (
    Splits,
    dataset_from_checkpoint,
    default_data_root,
    load_dataset,
    make_splits,
)
from molgnn.training.ema import WeightEMA
from molgnn.training.evaluate import evaluate_checkpoint
from molgnn.training.fit import FitResult, fit
from molgnn.training.losses import LOSSES, get_loss
from molgnn.training.schedule import WarmupPlateauSchedule
from molgnn.training.trainer import Trainer, TrainingDivergedError, predict_batch, resolve_device

__all__ = [
    "ENERGY_TARGETS",
    "FORMAT_VERSION",
    "LOSSES",
    "FitResult",
    "Splits",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "WarmupPlateauSchedule",
    "WeightEMA",
    "dataset_from_checkpoint",
    "default_data_root",
    "evaluate_checkpoint",
    "file_sha256",
    "fit",
    "get_loss",
    "load",
    "load_checkpoint",
    "load_dataset",
    "make_splits",
    "model_from_checkpoint",
    "predict_batch",
    "resolve_device",
    "save_checkpoint",
    "tune_malloc",
]
