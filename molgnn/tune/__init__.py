"""Hyperparameter sweeps with Ray Tune and Optuna (extra ``tune``).

Tune a model on every GPU of a machine or a Ray cluster, or on a CPU-only laptop, and get the
best model back as a molgnn checkpoint:

```python
from molgnn.training import TrainConfig
from molgnn.tune import SweepConfig, run_sweep

base = TrainConfig(model="et-small", target="gap", epochs=10)
result = run_sweep(SweepConfig(train=base, num_samples=16))
print(result.summary())       # trial table, best config, test MAE
model = molgnn.load(result.best_checkpoint)
```

Search spaces are data ([`SEARCH_SPACES`][molgnn.tune.SEARCH_SPACES]); Optuna's seeded multivariate
TPE proposes, ASHA stops weak trials early, failed trials are recorded without stopping the sweep
and a killed sweep resumes with ``SweepConfig(resume=True)``. ``SweepConfig(address=...)`` joins a
Ray cluster, with this machine's Ray auth token when the cluster uses token authentication.
Only this package imports Ray and Optuna, and only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from molgnn.tune.backend import MolgnnBackend, Trial, TrialBackend, trial_config
    from molgnn.tune.cluster import ClusterConnectionError, auth_token_source, prepare_token_auth
    from molgnn.tune.config import METRIC, MODE, SweepConfig
    from molgnn.tune.profiles import ET_PAPER_CONFIG, PROFILES, profile
    from molgnn.tune.reporting import (
        TRIAL_RECORD_KEYS,
        format_trials_table,
        trial_records,
        trials_table,
        write_best_config,
        write_optuna_plots,
    )
    from molgnn.tune.runner import (
        BEST_CHECKPOINT,
        BEST_CONFIG,
        SweepResult,
        resolve_space,
        run_sweep,
        trial_resources,
        trial_workers,
        validate_sweep,
    )
    from molgnn.tune.spaces import (
        ET_SEARCH_SPACE,
        POOLED_SEARCH_SPACE,
        SEARCH_SPACES,
        SPACE_DISTRIBUTIONS,
        TENSORNET_SEARCH_SPACE,
        check_point_in_space,
        parse_space,
        search_space,
        space_to_yaml,
    )
    from molgnn.tune.trainable import (
        CHECKPOINT_FILE,
        DRIVER_RESOURCES,
        DataParallelTrial,
        ReleaseTrainWorkers,
        TrialFailedError,
        assigned_device,
        train_trial,
    )


# Name -> the module that defines it. Submodules are imported on first use, so that
# ``SweepConfig`` and the profiles (which need no Ray) can be read without importing Ray.
_EXPORTS: dict[str, str] = {
    "MolgnnBackend": "molgnn.tune.backend",
    "Trial": "molgnn.tune.backend",
    "TrialBackend": "molgnn.tune.backend",
    "trial_config": "molgnn.tune.backend",
    "ClusterConnectionError": "molgnn.tune.cluster",
    "auth_token_source": "molgnn.tune.cluster",
    "prepare_token_auth": "molgnn.tune.cluster",
    "METRIC": "molgnn.tune.config",
    "MODE": "molgnn.tune.config",
    "SweepConfig": "molgnn.tune.config",
    "ET_PAPER_CONFIG": "molgnn.tune.profiles",
    "PROFILES": "molgnn.tune.profiles",
    "profile": "molgnn.tune.profiles",
    "TRIAL_RECORD_KEYS": "molgnn.tune.reporting",
    "format_trials_table": "molgnn.tune.reporting",
    "trial_records": "molgnn.tune.reporting",
    "trials_table": "molgnn.tune.reporting",
    "write_best_config": "molgnn.tune.reporting",
    "write_optuna_plots": "molgnn.tune.reporting",
    "BEST_CHECKPOINT": "molgnn.tune.runner",
    "BEST_CONFIG": "molgnn.tune.runner",
    "SweepResult": "molgnn.tune.runner",
    "resolve_space": "molgnn.tune.runner",
    "run_sweep": "molgnn.tune.runner",
    "trial_resources": "molgnn.tune.runner",
    "validate_sweep": "molgnn.tune.runner",
    "ET_SEARCH_SPACE": "molgnn.tune.spaces",
    "POOLED_SEARCH_SPACE": "molgnn.tune.spaces",
    "SEARCH_SPACES": "molgnn.tune.spaces",
    "SPACE_DISTRIBUTIONS": "molgnn.tune.spaces",
    "TENSORNET_SEARCH_SPACE": "molgnn.tune.spaces",
    "check_point_in_space": "molgnn.tune.spaces",
    "parse_space": "molgnn.tune.spaces",
    "search_space": "molgnn.tune.spaces",
    "space_to_yaml": "molgnn.tune.spaces",
    "CHECKPOINT_FILE": "molgnn.tune.trainable",
    "trial_workers": "molgnn.tune.runner",
    "ReleaseTrainWorkers": "molgnn.tune.trainable",
    "DataParallelTrial": "molgnn.tune.trainable",
    "DRIVER_RESOURCES": "molgnn.tune.trainable",
    "TrialFailedError": "molgnn.tune.trainable",
    "assigned_device": "molgnn.tune.trainable",
    "train_trial": "molgnn.tune.trainable",
}

# Modules that need Ray Tune and Optuna (the extra ``tune``).
_NEEDS_RAY = ("molgnn.tune.backend", "molgnn.tune.cluster", "molgnn.tune.reporting",
              "molgnn.tune.runner", "molgnn.tune.spaces", "molgnn.tune.trainable")  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'molgnn.tune' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as err:
        if module in _NEEDS_RAY and err.name and err.name.split(".")[0] in ("ray", "optuna"):
            raise ImportError(
                "molgnn.tune needs Ray Tune and Optuna; install them with: "
                "pip install 'molgnn[tune]'"
            ) from err
        raise
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BEST_CHECKPOINT",
    "BEST_CONFIG",
    "CHECKPOINT_FILE",
    "DRIVER_RESOURCES",
    "ET_PAPER_CONFIG",
    "ET_SEARCH_SPACE",
    "METRIC",
    "MODE",
    "POOLED_SEARCH_SPACE",
    "PROFILES",
    "SEARCH_SPACES",
    "SPACE_DISTRIBUTIONS",
    "TENSORNET_SEARCH_SPACE",
    "TRIAL_RECORD_KEYS",
    "ClusterConnectionError",
    "DataParallelTrial",
    "MolgnnBackend",
    "ReleaseTrainWorkers",
    "SweepConfig",
    "SweepResult",
    "Trial",
    "TrialBackend",
    "TrialFailedError",
    "assigned_device",
    "auth_token_source",
    "check_point_in_space",
    "format_trials_table",
    "parse_space",
    "prepare_token_auth",
    "profile",
    "resolve_space",
    "run_sweep",
    "search_space",
    "space_to_yaml",
    "train_trial",
    "trial_config",
    "trial_records",
    "trial_resources",
    "trial_workers",
    "trials_table",
    "validate_sweep",
    "write_best_config",
    "write_optuna_plots",
]
