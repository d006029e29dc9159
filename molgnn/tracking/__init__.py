"""Experiment tracking on MLflow: training runs, sweeps and the model registry.

MLflow is the ``track`` extra (``pip install 'molgnn[track]'``). It is imported only when a
tracked run starts, so ``import molgnn`` and ``import molgnn.tracking`` stay fast and work
without it.
"""

from molgnn.tracking.registry import (
    CHAMPION,
    RegisteredVersion,
    champion,
    promote,
    reconcile,
    register,
    versions,
)
from molgnn.tracking.runs import (
    PARENT_TAG,
    DataRef,
    FitTracker,
    TrackedRun,
    ensure_experiment,
    flat_params,
    flat_test_metrics,
    log_checkpoint_model,
    log_dataset,
    qm9_data,
    tracking_uri,
)

__all__ = [
    "CHAMPION",
    "PARENT_TAG",
    "DataRef",
    "FitTracker",
    "RegisteredVersion",
    "TrackedRun",
    "champion",
    "ensure_experiment",
    "flat_params",
    "flat_test_metrics",
    "log_checkpoint_model",
    "log_dataset",
    "promote",
    "qm9_data",
    "reconcile",
    "register",
    "tracking_uri",
    "versions",
]
