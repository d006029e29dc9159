"""Online data: a growing dataset, content-addressed versions, retraining and a model registry."""

from molgnn.online.acquisition import (
    ACQUISITION_STRATEGIES,
    AcquisitionRound,
    AcquisitionStrategy,
    DisagreementAcquisition,
    ExpectedImprovement,
    LargestErrorOracle,
    LowerConfidenceBound,
    MCDropoutAcquisition,
    RandomAcquisition,
    UpperConfidenceBound,
    acquire_round,
    acquisition_strategy,
    expected_improvement,
    top_molecules,
)
from molgnn.online.loop import (
    ListDataset,
    OnlineConfig,
    plot_learning_curve,
    run_online,
    train_on_version,
    version_dataset,
)
from molgnn.online.store import (
    AcquisitionRecord,
    DamagedStoreError,
    MlflowVersion,
    ModelRecord,
    Store,
)
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
    "ExpectedImprovement",
    "GrowthTrigger",
    "LargestErrorOracle",
    "ListDataset",
    "LowerConfidenceBound",
    "MCDropoutAcquisition",
    "MlflowVersion",
    "ModelRecord",
    "OnlineConfig",
    "RandomAcquisition",
    "RetrainTrigger",
    "Store",
    "UpperConfidenceBound",
    "acquire_round",
    "acquisition_strategy",
    "expected_improvement",
    "molecule_hash",
    "molecule_id",
    "plot_learning_curve",
    "run_online",
    "top_molecules",
    "train_on_version",
    "version_dataset",
    "version_id",
]
