"""The sweep configuration: a base training config, a search space, a budget and an engine."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from molgnn.config import Config

__all__ = ["METRIC", "MODE", "SweepConfig"]

#: The metric every trial reports and the scheduler and searcher optimise: validation MAE in meV.
METRIC = "val_mae_mev"
#: Lower is better.
MODE = "min"


def _is_uri(path: str) -> bool:
    return "://" in path


def _default_train() -> Any:
    from molgnn.training import TrainConfig

    return TrainConfig(epochs=10)


@dataclass(frozen=True)
class SweepConfig(Config):
    """Everything a sweep needs: the base training config, the search space, the budget and
    the engine. Checked by type like every config ([`molgnn.config`][molgnn.config]), so a typo
    fails before Ray starts.

    A trial trains ``train.replace(**sample)``, where ``sample`` maps the search space's dotted
    names (``"model.hidden_channels"``, ``"lr"``) to the values Optuna chose. The training
    config's keys may be written flat in files and ``--set`` (``FLAT = "train"``), so a YAML
    file written for ``molgnn train`` works unchanged here.

    Args:
        train: The base [`TrainConfig`][molgnn.training.TrainConfig] of every trial; its ``epochs``
            are the epochs of the longest trial (ASHA's ``max_t``), its ``seed`` seeds the
            Optuna sampler and every trial's training. (default: ``TrainConfig(epochs=10)``)
        space: Dotted config name -> Ray Tune distribution or fixed value (see
            [`molgnn.tune.spaces`][molgnn.tune.spaces]); ``None`` uses the model kind's default
            space. (default: ``None``)
        num_samples: Number of trials. (default: ``8``)
        grace_period: ASHA: epochs every trial runs before it can be stopped. (default: ``1``)
        reduction_factor: ASHA: keep the best ``1 / reduction_factor`` at each rung.
            (default: ``2.0``)
        gpus_per_trial: GPUs per trial, fractional to pack trials on one GPU (``0.25`` packs
            four); ``None`` means 1 when the cluster has GPUs and 0 otherwise.
            (default: ``None``)
        cpus_per_trial: CPUs per trial. (default: ``1.0``)
        workers_per_trial: Train each trial data-parallel on this many Ray Train workers
            (the Sweeps guide's "A trial larger than one GPU"): with GPUs one GPU each
            (``gpus_per_trial`` is then 0 or ``workers_per_trial``), else Gloo on CPUs, the
            trial's ``cpus_per_trial`` shared out among them. ``None`` takes
            ``gpus_per_trial`` when that is a whole number above 1, else 1 (one process per
            trial). (default: ``None``)
        max_concurrent_trials: Upper limit on running trials; ``None`` derives it from the
            cluster's CPUs and GPUs. (default: ``None``)
        address: ``"auto"`` or ``"HOST:PORT"`` of a running Ray cluster; ``None`` starts a
            local Ray instance. A cluster with token authentication is joined with this
            machine's token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
            ``~/.ray/auth_token``, see [`molgnn.tune.cluster`][molgnn.tune.cluster]). (default:
            ``None``)
        storage_path: Local directory or URI (``s3://``, ``gs://``, NFS path) that every node
            can reach; results go to ``<storage_path>/<name>``.
            (default: ``"~/molgnn-sweeps"``)
        name: Experiment name. (default: ``"et_homo_lumo"``)
        resume: Resume ``<storage_path>/<name>`` with ``Tuner.restore`` instead of starting
            afresh; finished trials are not rerun. (default: ``False``)
        time_budget_s: Stop starting and running trials after this many seconds.
            (default: ``None``)
        points_to_evaluate: Configurations to try first (e.g.
            ``ET_PAPER_CONFIG``), keyed like the space. (default: ``()``)
        max_failures: Times a failed trial is retried from its last checkpoint before it is
            recorded as failed: a trial on a node that is lost (a killed raylet, a preempted
            machine) continues elsewhere. A trial whose loss becomes NaN fails again on each
            retry, which reruns only the epoch since its last checkpoint. (default: ``2``)
        num_cpus: CPUs of a local Ray instance (``None``: all). (default: ``None``)
        num_gpus: GPUs of a local Ray instance (``None``: those torch sees).
            (default: ``None``)
        export: Test the best trial and export it, its config and the plots at the end.
            (default: ``True``)
        verbose: Ray Tune verbosity, 0 (silent) to 2. (default: ``1``)
        mlflow_uri: Track the sweep on MLflow at this tracking URI (see the Tracking guide):
            a parent run for the sweep and, nested under it, one run per trial, logged from
            the driver by Ray Tune's ``MLflowLoggerCallback``; the best trial is marked and
            its model logged. ``None`` tracks nothing; the command line's ``--mlflow`` sets it.
            (default: ``None``)
        mlflow_experiment: The MLflow experiment of the sweep's runs. (default: ``"molgnn"``)
        registered_model: Register the best trial's model as a new version of this MLflow
            registered model ([`register`][molgnn.tracking.register]); needs ``mlflow_uri``.
            (default: ``None``)
    """

    FLAT: ClassVar[str | None] = "train"
    #: Fields that moved into ``train`` (written flat they reach it, see the class docs).
    RENAMED: ClassVar[dict[str, str]] = {
        "max_epochs": "epochs",
        "model_overrides": "model",
        "train_overrides": "train",
    }

    train: Any = field(default_factory=_default_train)
    space: Mapping[str, Any] | None = None
    num_samples: int = 8
    grace_period: int = 1
    reduction_factor: float = 2.0
    gpus_per_trial: float | None = None
    cpus_per_trial: float = 1.0
    workers_per_trial: int | None = None
    max_concurrent_trials: int | None = None
    address: str | None = None
    storage_path: str = "~/molgnn-sweeps"
    name: str = "et_homo_lumo"
    resume: bool = False
    time_budget_s: float | None = None
    points_to_evaluate: tuple[Mapping[str, Any], ...] = ()
    max_failures: int = 2
    num_cpus: int | None = None
    num_gpus: int | None = None
    export: bool = True
    verbose: int = 1
    mlflow_uri: str | None = None
    mlflow_experiment: str = "molgnn"
    registered_model: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.train, Mapping):
            object.__setattr__(self, "train", _default_train().merged(self.train))
        if not isinstance(self.train, Config) or not hasattr(self.train, "epochs"):
            raise ValueError(
                f"train: expected a TrainConfig (or a mapping of its fields), got "
                f"{type(self.train).__name__}"
            )

        def at_least(name: str, value: int, minimum: int = 1) -> None:
            if value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

        at_least("num_samples", self.num_samples)
        at_least("grace_period", self.grace_period)
        at_least("max_failures", self.max_failures, minimum=0)
        if self.grace_period > self.train.epochs:
            raise ValueError(
                f"grace_period ({self.grace_period}) must not exceed epochs ({self.train.epochs})"
            )
        subset = getattr(self.train, "subset", None)
        if subset is not None:
            at_least("subset", subset, minimum=10)
        if self.max_concurrent_trials is not None:
            at_least("max_concurrent_trials", self.max_concurrent_trials)
        if self.workers_per_trial is not None:
            at_least("workers_per_trial", self.workers_per_trial)
            gpus = self.gpus_per_trial
            if self.workers_per_trial > 1 and gpus and gpus != self.workers_per_trial:
                raise ValueError(
                    f"a data-parallel trial trains on one GPU per worker: with "
                    f"workers_per_trial={self.workers_per_trial}, gpus_per_trial must be 0 or "
                    f"{self.workers_per_trial}, got {gpus!r}"
                )
        for name in ("num_cpus", "num_gpus"):
            if getattr(self, name) is not None:
                at_least(name, getattr(self, name), minimum=0)
        if not self.reduction_factor > 1:
            raise ValueError(f"reduction_factor must be > 1, got {self.reduction_factor!r}")
        if self.gpus_per_trial is not None and not (
            self.gpus_per_trial >= 0 and math.isfinite(self.gpus_per_trial)
        ):
            raise ValueError(f"gpus_per_trial must be >= 0, got {self.gpus_per_trial!r}")
        if (
            self.gpus_per_trial is not None
            and self.gpus_per_trial > 1
            and self.gpus_per_trial != int(self.gpus_per_trial)
        ):
            raise ValueError(
                "gpus_per_trial above 1 must be a whole number (Ray cannot split a trial "
                f"over a fraction of several GPUs), got {self.gpus_per_trial!r}"
            )
        if not self.cpus_per_trial > 0:
            raise ValueError(f"cpus_per_trial must be > 0, got {self.cpus_per_trial!r}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be > 0, got {self.time_budget_s!r}")
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ValueError(f"name must be a plain directory name, got {self.name!r}")
        if self.address is not None and self.address != "auto" and ":" not in self.address:
            raise ValueError(f"address must be 'auto' or 'HOST:PORT', got {self.address!r}")
        if self.registered_model is not None and not self.mlflow_uri:
            raise ValueError(
                f"registered_model={self.registered_model!r} needs MLflow tracking: give "
                "--mlflow (or set MLFLOW_TRACKING_URI)"
            )
        if self.registered_model is not None and not self.export:
            raise ValueError("registered_model needs export: the best model is registered")
        for point in self.points_to_evaluate:
            if not isinstance(point, Mapping):
                raise ValueError(f"points_to_evaluate must hold mappings, got {point!r}")
        # Trials chdir into their own folders: resolve local paths now.
        if not _is_uri(self.storage_path):
            object.__setattr__(
                self, "storage_path", str(Path(self.storage_path).expanduser().resolve())
            )
        data_root = getattr(self.train, "data_root", None)
        if data_root is not None and not _is_uri(data_root):
            absolute = str(Path(data_root).expanduser().resolve())
            if absolute != data_root:
                object.__setattr__(self, "train", self.train.replace(data_root=absolute))

    @property
    def experiment_path(self) -> str:
        """``<storage_path>/<name>``, where Ray Tune keeps the experiment."""
        if _is_uri(self.storage_path):
            return self.storage_path.rstrip("/") + "/" + self.name
        return os.path.join(self.storage_path, self.name)
