"""The sweep configuration: a frozen dataclass, overridden from the command line or YAML."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["METRIC", "MODE", "SweepConfig", "load_sweep_yaml"]

#: The metric every trial reports and the scheduler and searcher optimise: validation MAE in meV.
METRIC = "val_mae_mev"
#: Lower is better.
MODE = "min"


def _is_uri(path: str) -> bool:
    return "://" in path


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep needs: the base model, the search space, the budget and the engine.

    Fields are constructor arguments; :meth:`replace` applies overrides (from the command line
    or a YAML file) with :func:`dataclasses.replace`, so an unknown field fails before Ray starts.

    Args:
        model: Preset name of the base model, e.g. ``"et-small"`` or ``"pooled"``; the
            search space varies fields of this preset. (default: ``"et-small"``)
        space: Field name -> Ray Tune distribution or fixed value (see
            :mod:`molgnn.tune.spaces`); ``None`` uses the model kind's default space.
            (default: :obj:`None`)
        target: QM9 target to fit. (default: ``"gap"``)
        subset: Number of QM9 molecules to use, or ``None`` for all. (default: ``2000``)
        data_root: Absolute directory of the processed dataset cache; ``None`` uses
            :mod:`molgnn.data`'s default. Trials change their working directory, so relative
            paths are made absolute here. (default: :obj:`None`)
        max_epochs: Epochs of the longest trial (ASHA's ``max_t``). (default: ``10``)
        num_samples: Number of trials. (default: ``8``)
        grace_period: ASHA: epochs every trial runs before it can be stopped. (default: ``1``)
        reduction_factor: ASHA: keep the best ``1 / reduction_factor`` at each rung.
            (default: ``2.0``)
        gpus_per_trial: GPUs per trial, fractional to pack trials on one GPU (``0.25`` packs
            four); ``None`` means 1 when the cluster has GPUs and 0 otherwise.
            (default: :obj:`None`)
        cpus_per_trial: CPUs per trial. (default: ``1.0``)
        max_concurrent_trials: Upper limit on running trials; ``None`` derives it from the
            cluster's CPUs and GPUs. (default: :obj:`None`)
        address: ``"auto"`` or ``"HOST:PORT"`` of a running Ray cluster; ``None`` starts a
            local Ray instance. A cluster with token authentication is joined with this
            machine's token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
            ``~/.ray/auth_token``, see :mod:`molgnn.tune.cluster`). (default: :obj:`None`)
        storage_path: Local directory or URI (``s3://``, ``gs://``, NFS path) that every node
            can reach; results go to ``<storage_path>/<name>``.
            (default: ``"~/molgnn-sweeps"``)
        name: Experiment name. (default: ``"et_homo_lumo"``)
        resume: Resume ``<storage_path>/<name>`` with ``Tuner.restore`` instead of starting
            afresh; finished trials are not rerun. (default: :obj:`False`)
        time_budget_s: Stop starting and running trials after this many seconds.
            (default: :obj:`None`)
        seed: Seed of the Optuna sampler and of every trial's training. (default: ``0``)
        points_to_evaluate: Configurations to try first (e.g.
            :data:`~molgnn.tune.spaces.ET_PAPER_CONFIG`). (default: ``()``)
        model_overrides: Fixed model-config fields applied to every trial. (default: ``{}``)
        train_overrides: Fixed :class:`~molgnn.training.TrainConfig` fields applied to every
            trial. (default: ``{}``)
        max_failures: Times a failed trial is retried from its last checkpoint before it is
            recorded as failed: a trial on a node that is lost (a killed raylet, a preempted
            machine) continues elsewhere. A trial whose loss becomes NaN fails again on each
            retry, which reruns only the epoch since its last checkpoint. (default: ``2``)
        num_cpus: CPUs of a local Ray instance (``None``: all). (default: :obj:`None`)
        num_gpus: GPUs of a local Ray instance (``None``: those torch sees).
            (default: :obj:`None`)
        export: Test the best trial and export it, its config and the plots at the end.
            (default: :obj:`True`)
        verbose: Ray Tune verbosity, 0 (silent) to 2. (default: ``1``)
    """

    model: str = "et-small"
    space: Mapping[str, Any] | None = None
    target: str = "gap"
    subset: int | None = 2000
    data_root: str | None = None
    max_epochs: int = 10
    num_samples: int = 8
    grace_period: int = 1
    reduction_factor: float = 2.0
    gpus_per_trial: float | None = None
    cpus_per_trial: float = 1.0
    max_concurrent_trials: int | None = None
    address: str | None = None
    storage_path: str = "~/molgnn-sweeps"
    name: str = "et_homo_lumo"
    resume: bool = False
    time_budget_s: float | None = None
    seed: int = 0
    points_to_evaluate: tuple[Mapping[str, Any], ...] = ()
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    train_overrides: Mapping[str, Any] = field(default_factory=dict)
    max_failures: int = 2
    num_cpus: int | None = None
    num_gpus: int | None = None
    export: bool = True
    verbose: int = 1

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any, minimum: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

        positive_int("max_epochs", self.max_epochs)
        positive_int("num_samples", self.num_samples)
        positive_int("grace_period", self.grace_period)
        positive_int("max_failures", self.max_failures, minimum=0)
        if self.grace_period > self.max_epochs:
            raise ValueError(
                f"grace_period ({self.grace_period}) must not exceed max_epochs ({self.max_epochs})"
            )
        if self.subset is not None:
            positive_int("subset", self.subset, minimum=10)
        if self.max_concurrent_trials is not None:
            positive_int("max_concurrent_trials", self.max_concurrent_trials)
        for name in ("num_cpus", "num_gpus"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name), minimum=0)
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
        if not isinstance(self.points_to_evaluate, tuple):
            object.__setattr__(self, "points_to_evaluate", tuple(self.points_to_evaluate))
        for point in self.points_to_evaluate:
            if not isinstance(point, Mapping):
                raise ValueError(f"points_to_evaluate must hold mappings, got {point!r}")
        # Trials chdir into their own folders: resolve local paths now.
        if not _is_uri(self.storage_path):
            object.__setattr__(
                self, "storage_path", str(Path(self.storage_path).expanduser().resolve())
            )
        if self.data_root is not None and not _is_uri(self.data_root):
            object.__setattr__(self, "data_root", str(Path(self.data_root).expanduser().resolve()))

    @property
    def experiment_path(self) -> str:
        """``<storage_path>/<name>``, where Ray Tune keeps the experiment."""
        if _is_uri(self.storage_path):
            return self.storage_path.rstrip("/") + "/" + self.name
        return os.path.join(self.storage_path, self.name)

    def replace(self, **overrides: Any) -> SweepConfig:
        """A copy with some fields replaced; an unknown field raises :class:`ValueError`.

        Args:
            **overrides: Field name -> new value.
        """
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown sweep setting(s) {unknown}; valid: {sorted(valid)}")
        return dataclasses.replace(self, **overrides)


def load_sweep_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read sweep overrides from a YAML file.

    The file is a mapping of :class:`SweepConfig` field names to values; ``space`` may use the
    YAML distribution syntax of :func:`molgnn.tune.parse_space`. Unknown keys fail when the
    overrides are applied with :meth:`SweepConfig.replace`.

    Args:
        path: The YAML file.

    Returns:
        The overrides.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep config file not found: {path}")
    with path.open() as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sweep settings, got {type(data).__name__}")
    if "points_to_evaluate" in data and data["points_to_evaluate"] is not None:
        data["points_to_evaluate"] = tuple(data["points_to_evaluate"])
    return data
