"""Hyperparameter sweeps with Ray Tune and Optuna (extra ``tune``).

Tune a model on every GPU of a machine or a Ray cluster, or on a CPU-only laptop, and get the
best model back as a molgnn checkpoint::

    from molgnn.tune import SweepConfig, run_sweep

    result = run_sweep(SweepConfig(model="et-small", target="gap", num_samples=16))
    print(result.summary())       # trial table, best config, test MAE
    model = molgnn.load(result.best_checkpoint)

Search spaces are data (:data:`SEARCH_SPACES`); Optuna's seeded multivariate TPE proposes,
ASHA stops weak trials early, failed trials are recorded without stopping the sweep and a
killed sweep resumes with ``SweepConfig(resume=True)``. ``SweepConfig(address=...)`` joins a
Ray cluster, with this machine's Ray auth token when the cluster uses token authentication.
Only this package imports Ray and Optuna.
"""

from __future__ import annotations

try:
    import optuna  # noqa: F401
    import ray.tune  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "molgnn.tune needs Ray Tune and Optuna; install them with: pip install 'molgnn[tune]'"
    ) from err

from molgnn.tune.backend import MolgnnBackend, Trial, TrialBackend, split_overrides
from molgnn.tune.cluster import ClusterConnectionError, auth_token_source, prepare_token_auth
from molgnn.tune.config import METRIC, MODE, SweepConfig, load_sweep_yaml
from molgnn.tune.profiles import PROFILES, profile
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
    validate_sweep,
)
from molgnn.tune.spaces import (
    ET_PAPER_CONFIG,
    ET_SEARCH_SPACE,
    POOLED_SEARCH_SPACE,
    SEARCH_SPACES,
    SPACE_DISTRIBUTIONS,
    check_point_in_space,
    parse_space,
    search_space,
    space_to_yaml,
)
from molgnn.tune.trainable import CHECKPOINT_FILE, TrialFailedError, assigned_device, train_trial

__all__ = [
    "BEST_CHECKPOINT",
    "BEST_CONFIG",
    "CHECKPOINT_FILE",
    "ET_PAPER_CONFIG",
    "ET_SEARCH_SPACE",
    "METRIC",
    "MODE",
    "POOLED_SEARCH_SPACE",
    "PROFILES",
    "SEARCH_SPACES",
    "SPACE_DISTRIBUTIONS",
    "TRIAL_RECORD_KEYS",
    "ClusterConnectionError",
    "MolgnnBackend",
    "SweepConfig",
    "SweepResult",
    "Trial",
    "TrialBackend",
    "TrialFailedError",
    "assigned_device",
    "auth_token_source",
    "check_point_in_space",
    "format_trials_table",
    "load_sweep_yaml",
    "parse_space",
    "prepare_token_auth",
    "profile",
    "resolve_space",
    "run_sweep",
    "search_space",
    "space_to_yaml",
    "split_overrides",
    "train_trial",
    "trial_records",
    "trial_resources",
    "trials_table",
    "validate_sweep",
    "write_best_config",
    "write_optuna_plots",
]
