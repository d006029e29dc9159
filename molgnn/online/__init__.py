"""Online data: a growing dataset, content-addressed versions, retraining and a model registry."""

from molgnn.online.loop import (
    ListDataset,
    OnlineConfig,
    plot_learning_curve,
    run_online,
    train_on_version,
)
from molgnn.online.store import DamagedStoreError, ModelRecord, Store
from molgnn.online.stream import DataStream, molecule_id
from molgnn.online.triggers import EveryChunkTrigger, GrowthTrigger, RetrainTrigger
from molgnn.online.versions import DataVersion, molecule_hash, version_id

__all__ = [
    "DamagedStoreError",
    "DataStream",
    "DataVersion",
    "EveryChunkTrigger",
    "GrowthTrigger",
    "ListDataset",
    "ModelRecord",
    "OnlineConfig",
    "RetrainTrigger",
    "Store",
    "molecule_hash",
    "molecule_id",
    "plot_learning_curve",
    "run_online",
    "train_on_version",
    "version_id",
]
