"""Online data: a growing dataset, content-addressed versions, retraining and a model registry."""

from molgnn.online.acquisition import (
    ACQUISITION_STRATEGIES,
    AcquisitionRound,
    AcquisitionStrategy,
    DisagreementAcquisition,
    LargestErrorOracle,
    MCDropoutAcquisition,
    RandomAcquisition,
    acquire_round,
    acquisition_strategy,
)
from molgnn.online.loop import (
    ListDataset,
    OnlineConfig,
    plot_learning_curve,
    run_online,
    train_on_version,
    version_dataset,
)
from molgnn.online.store import AcquisitionRecord, DamagedStoreError, ModelRecord, Store
from molgnn.online.stream import DataStream, molecule_id
from molgnn.online.triggers import EveryChunkTrigger, GrowthTrigger, RetrainTrigger
from molgnn.online.versions import DataVersion, molecule_hash, version_id

__all__ = [
    "ACQUISITION_STRATEGIES",
    "AcquisitionRecord",
    "AcquisitionRound",
    "AcquisitionStrategy",
    "DamagedStoreError",
    "DataStream",
    "DataVersion",
    "DisagreementAcquisition",
    "EveryChunkTrigger",
    "GrowthTrigger",
    "LargestErrorOracle",
    "ListDataset",
    "MCDropoutAcquisition",
    "ModelRecord",
    "OnlineConfig",
    "RandomAcquisition",
    "RetrainTrigger",
    "Store",
    "acquire_round",
    "acquisition_strategy",
    "molecule_hash",
    "molecule_id",
    "plot_learning_curve",
    "run_online",
    "train_on_version",
    "version_dataset",
    "version_id",
]
