"""Run a sweep: OptunaSearch (TPE) proposes, ASHA stops early, the best model is exported."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import ray
from ray import tune
from ray.exceptions import RayError
from ray.tune.search.sample import Domain

from molgnn.data.keys import ev_to_mev
from molgnn.io.atomic import write_atomic
from molgnn.tune.backend import MolgnnBackend, TrialBackend, trial_config
from molgnn.tune.cluster import join_error, prepare_token_auth
from molgnn.tune.config import METRIC, MODE, SweepConfig, _is_uri
from molgnn.tune.reporting import (
    format_trials_table,
    trial_records,
    trials_table,
    write_best_config,
    write_optuna_plots,
)
from molgnn.tune.spaces import check_point_in_space, parse_space
from molgnn.tune.trainable import (
    CHECKPOINT_FILE,
    DRIVER_RESOURCES,
    DataParallelTrial,
    ReleaseTrainWorkers,
    train_trial,
)

if TYPE_CHECKING:
    from molgnn.tracking.sweeps import SweepTracking

__all__ = [
    "BEST_CHECKPOINT",
    "BEST_CONFIG",
    "SweepResult",
    "resolve_space",
    "run_sweep",
    "trial_resources",
    "trial_workers",
    "validate_sweep",
]

#: The best model, in molgnn's checkpoint format, at ``<storage_path>/<name>/best.ckpt``.
BEST_CHECKPOINT = "best.ckpt"
#: The best trial's configuration, at ``<storage_path>/<name>/best_config.yaml``.
BEST_CONFIG = "best_config.yaml"


@dataclass
class SweepResult:
    """What [`run_sweep`][molgnn.tune.run_sweep] returns.

    Args:
        config: The sweep configuration.
        experiment_path: ``<storage_path>/<name>``.
        results: Ray Tune's result grid.
        table: One row per trial (see [`molgnn.tune.trials_table`][molgnn.tune.trials_table]).
        records: Where and when each trial ran (see
            [`molgnn.tune.trial_records`][molgnn.tune.trial_records]).
        best_config: The best trial's tuned values, or ``None`` when no trial reported.
        best_val_mae_mev: Its best validation MAE in meV.
        test_mae_mev: Its test MAE in meV, re-evaluated from the exported checkpoint.
        best_checkpoint: Path or URI of the exported ``best.ckpt``.
        plots: The PNG files written.
        elapsed_s: Wall-clock seconds of the sweep.
        mlflow_run_id: The sweep's MLflow parent run, when tracked.
        best_run_id: The best trial's MLflow run, when tracked.
        model_uri: The best model's MLflow logged model (``models:/m-...``), when tracked.
        registered_version: The best model's version of ``config.registered_model``.
    """

    config: SweepConfig
    experiment_path: str
    results: Any
    table: pd.DataFrame
    records: list[dict[str, Any]] = field(default_factory=list)
    best_config: dict[str, Any] | None = None
    best_val_mae_mev: float | None = None
    test_mae_mev: float | None = None
    best_checkpoint: str | None = None
    plots: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    mlflow_run_id: str | None = None
    best_run_id: str | None = None
    model_uri: str | None = None
    registered_version: int | None = None

    def summary(self) -> str:
        """A text summary: the trial table, the best trial and where the exports are."""
        lines = [
            f"Sweep {self.config.name!r}: {len(self.table)} trials in {self.elapsed_s:.0f} s "
            f"({self.experiment_path})",
            format_trials_table(self.table),
        ]
        if self.best_config is not None:
            lines.append(f"Best config: {self.best_config}")
            lines.append(f"Best validation MAE: {self.best_val_mae_mev:.2f} meV")
        if self.test_mae_mev is not None:
            lines.append(f"Test MAE of the best trial: {self.test_mae_mev:.2f} meV")
        if self.best_checkpoint is not None:
            lines.append(f"Best model: {self.best_checkpoint} (open it with molgnn.load)")
        lines.extend(f"Plot: {p}" for p in self.plots)
        if self.mlflow_run_id is not None:
            lines.append(
                f"MLflow: parent run {self.mlflow_run_id} at {self.config.mlflow_uri}, best trial "
                f"run {self.best_run_id}, model {self.model_uri}"
            )
        if self.registered_version is not None:
            lines.append(
                f"Registered: {self.config.registered_model} version {self.registered_version}"
            )
        return "\n".join(lines)


def resolve_space(config: SweepConfig, backend: TrialBackend | None = None) -> dict[str, Any]:
    """The sweep's search space: ``config.space`` or the model kind's default.

    Args:
        config: The sweep configuration.
        backend: Knows the model presets. (default: [`MolgnnBackend`][molgnn.tune.MolgnnBackend])

    Returns:
        Field name -> Ray Tune distribution or fixed value.
    """
    if config.space is not None:
        return parse_space(config.space)
    backend = backend or MolgnnBackend()
    return backend.default_space(config.train)


def validate_sweep(config: SweepConfig, backend: TrialBackend | None = None) -> dict[str, Any]:
    """Check a sweep before Ray starts; returns its search space.

    Every name of the space must be a (dotted) field of the base config, such as ``"lr"`` or
    ``"model.hidden_channels"``; a sample of the space and each point to evaluate are applied
    with the base config's ``replace``, so a typo or a value the config rejects fails here
    with a ``ValueError`` that names it.

    Args:
        config: The sweep configuration.
        backend: Checks the trial configurations. (default:
            [`MolgnnBackend`][molgnn.tune.MolgnnBackend])

    Returns:
        The search space.
    """
    backend = backend or MolgnnBackend()
    space = resolve_space(config, backend)
    if not any(isinstance(v, Domain) for v in space.values()):
        raise ValueError(f"the search space tunes nothing: {space}")
    sample = {k: (v.sample() if isinstance(v, Domain) else v) for k, v in space.items()}
    trial_config(config.train, sample)
    for point in config.points_to_evaluate:
        check_point_in_space(point, space)
        trial_config(config.train, {**sample, **point})
    return space


def trial_workers(config: SweepConfig) -> int:
    """Processes that train each trial: ``workers_per_trial``, else ``gpus_per_trial`` when
    that is a whole number above 1 (one worker per GPU), else 1."""
    if config.workers_per_trial is not None:
        return config.workers_per_trial
    gpus = config.gpus_per_trial
    return int(gpus) if gpus is not None and gpus > 1 else 1


def trial_resources(config: SweepConfig, cluster: Mapping[str, float]) -> tuple[dict, int]:
    """Resources of one trial and how many trials can run at once.

    A data-parallel trial (``trial_workers`` above 1) holds the same totals, shared out
    among its Ray Train workers: each worker gets ``cpus_per_trial / workers`` CPUs and one
    GPU (``gpus_per_trial`` is 0 or the number of workers; ``None`` means one GPU per worker
    when the cluster has GPUs). The Tune trial that starts the workers holds no CPU or GPU
    itself (``molgnn.tune.trainable.DRIVER_RESOURCES``), so the returned concurrency counts
    whole trials.

    Args:
        config: The sweep configuration.
        cluster: ``ray.cluster_resources`` (``"CPU"``, ``"GPU"``).

    Returns:
        ``({"cpu": ..., "gpu": ...}, max_concurrent_trials)``: all of one trial's CPUs and GPUs.
    """
    total_cpus = float(cluster.get("CPU", 0.0))
    total_gpus = float(cluster.get("GPU", 0.0))
    workers = trial_workers(config)
    gpus = config.gpus_per_trial
    if gpus is None:
        gpus = float(workers) if total_gpus > 0 else 0.0
    if workers > 1 and gpus not in (0, workers):
        raise ValueError(
            f"a data-parallel trial of {workers} workers trains on one GPU per worker: "
            f"gpus_per_trial must be 0 or {workers}, got {gpus:g}"
        )
    if gpus > 0 and total_gpus == 0:
        raise ValueError(
            f"gpus_per_trial={gpus} but the Ray cluster has no GPUs; use --gpus-per-trial 0"
        )
    if gpus > total_gpus:
        raise ValueError(f"gpus_per_trial={gpus} exceeds the cluster's {total_gpus:g} GPUs")
    if config.cpus_per_trial > total_cpus:
        raise ValueError(
            f"cpus_per_trial={config.cpus_per_trial:g} exceeds the cluster's {total_cpus:g} CPUs"
        )
    limit = math.floor(total_cpus / config.cpus_per_trial + 1e-9)
    if gpus > 0:
        limit = min(limit, math.floor(total_gpus / gpus + 1e-9))
    if config.max_concurrent_trials is not None:
        limit = min(limit, config.max_concurrent_trials)
    return {"cpu": config.cpus_per_trial, "gpu": gpus}, max(1, limit)


def _data_parallel(config: SweepConfig, resources: Mapping[str, float]) -> DataParallelTrial | None:
    """How each trial shares out ``resources`` over its workers; ``None`` for one process."""
    workers = trial_workers(config)
    if workers < 2:
        return None
    return DataParallelTrial(
        num_workers=workers,
        cpus_per_worker=resources["cpu"] / workers,
        gpus_per_worker=resources["gpu"] / workers,
        # Next to the trials: the Ray Train runs' checkpoints, each kept until reported.
        storage_path=config.experiment_path.rstrip("/") + "/data_parallel",
    )


def _trial_dirname(trial: Any) -> str:
    """Short trial folder names (Ray's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


def _init_ray(config: SweepConfig) -> bool:
    """Start or join Ray unless already connected; returns whether this call connected.

    Joining (``config.address``) uses this machine's Ray auth token when it has one (see
    [`molgnn.tune.cluster`][molgnn.tune.cluster]) and turns a failed join into a
    [`ClusterConnectionError`][molgnn.tune.ClusterConnectionError] that says what to set. A local
    Ray instance keeps Ray's defaults (token authentication on).
    """
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": config.verbose > 0}
    if config.address is None:
        ray.init(**kwargs, num_cpus=config.num_cpus, num_gpus=config.num_gpus)
        return True
    source = prepare_token_auth()
    try:
        ray.init(**kwargs, address=config.address)
    except (ConnectionError, RuntimeError, RayError) as err:
        ray.shutdown()
        raise join_error(config.address, err, source) from err
    return True


def _export_best(
    config: SweepConfig,
    results: Any,
    table: pd.DataFrame,
    space: Mapping[str, Any],
    dataset: Any,
    backend: TrialBackend,
    out: SweepResult,
    tracking: SweepTracking | None = None,
) -> None:
    finished = table.dropna(subset=["best_val_mae_mev"])
    if not len(finished):
        print("No trial reported a validation MAE: nothing to export.")
        return
    best_row = finished.iloc[0]
    best = next(r for r in results if r.path == best_row["path"])
    checkpoint = best.get_best_checkpoint(METRIC, MODE)
    tuned = {k: best.config[k] for k, v in space.items() if isinstance(v, Domain)}
    out.best_config = tuned
    out.best_val_mae_mev = float(best_row["best_val_mae_mev"])
    with tempfile.TemporaryDirectory(prefix="molgnn-export-") as tmp:
        export_dir = Path(tmp) / "export"
        export_dir.mkdir()
        test_mae = None
        if checkpoint is not None:
            checkpoint.to_directory(str(Path(tmp) / "ckpt"))
            best_ckpt = export_dir / BEST_CHECKPOINT
            shutil.copyfile(Path(tmp) / "ckpt" / CHECKPOINT_FILE, best_ckpt)
            test_mae = backend.evaluate_checkpoint(best_ckpt, config.train, dataset, split="test")
            out.test_mae_mev = ev_to_mev(test_mae)
        best_config = trial_config(config.train, dict(best.config))
        best_train = best_config.to_dict()
        write_best_config(
            export_dir / BEST_CONFIG,
            {
                "trial": best_row["trial"],
                "tuned": tuned,
                "best_val_mae_mev": out.best_val_mae_mev,
                "test_mae_mev": out.test_mae_mev,
                "train": best_train,
            },
        )
        plots = write_optuna_plots(table, space, export_dir, seed=config.train.seed)
        names = [p.name for p in plots]
        if tracking is not None:
            _track_best(config, tracking, backend, best_row, best_config, export_dir, out, test_mae)
        if _is_uri(config.experiment_path):
            import pyarrow.fs

            pyarrow.fs.copy_files(str(export_dir), config.experiment_path)
            target = config.experiment_path.rstrip("/") + "/"
        else:
            dest = Path(config.experiment_path)
            dest.mkdir(parents=True, exist_ok=True)
            for item in export_dir.iterdir():
                write_atomic(dest / item.name, item.read_bytes())
            target = str(dest) + "/"
    if checkpoint is not None:
        out.best_checkpoint = target + BEST_CHECKPOINT
    out.plots = [target + n for n in names]


def _describe(value: Any) -> Any:
    """A search-space entry as text: ``loguniform (0.0001, 0.01)``, ``choice [8, 16]``."""
    if not isinstance(value, Domain):
        return value
    if isinstance(value, tune.search.sample.Categorical):
        return f"choice {value.domain_str}"
    sampler = type(value.get_sampler()).__name__.strip("_").lower()
    kind = "randint" if isinstance(value, tune.search.sample.Integer) else sampler
    return f"{kind} {value.domain_str}"


def _track_best(
    config: SweepConfig,
    tracking: SweepTracking,
    backend: TrialBackend,
    best_row: Any,
    best_config: Any,
    export_dir: Path,
    out: SweepResult,
    test_mae: float | None,
) -> None:
    """Mark the best trial on MLflow, log its model and the exports; register it if asked."""
    data = heldout = None
    if isinstance(backend, MolgnnBackend):  # QM9 as molgnn draws it: its content hashes
        from molgnn.tracking import qm9_data

        data, heldout = qm9_data(best_config), qm9_data(best_config, "test")
    metrics = {}
    if test_mae is not None:  # the backends' test MAE is in eV (see out.test_mae_mev)
        metrics = {"test_mae": float(test_mae), "test_mae_mev": ev_to_mev(test_mae)}
    checkpoint = export_dir / BEST_CHECKPOINT
    tracked = tracking.mark_best(
        str(best_row["trial"]),
        float(best_row["best_val_mae_mev"]),
        checkpoint if checkpoint.is_file() else None,
        metrics,
        data,
        heldout,
    )
    tracking.log_files(export_dir)
    if tracked is None:
        return
    out.best_run_id, out.model_uri = tracked.run_id, tracked.model_uri
    if config.registered_model is not None:
        from molgnn.tracking import register

        if heldout is None:
            raise ValueError(
                "registered_model: registering needs the held-out set's content hash, which "
                "molgnn's own backend (QM9) gives"
            )
        out.registered_version = register(
            tracking.uri,
            config.registered_model,
            tracked,
            metrics["test_mae"],
            heldout.digest,
            tags={"molgnn.sweep": config.name},
        )


def run_sweep(config: SweepConfig, backend: TrialBackend | None = None) -> SweepResult:
    """Run (or resume) a sweep and export its best model.

    Starts a local Ray instance, or joins the cluster at ``config.address`` (with this
    machine's Ray auth token, see [`molgnn.tune.cluster`][molgnn.tune.cluster]); prepares the
    dataset once and hands it to the trials through Ray's object store; samples configurations with
    Optuna's seeded, multivariate TPE (after ``points_to_evaluate``); stops weak trials with ASHA on
    the validation MAE; retries a failed trial (a lost node, say) from its last checkpoint up
    to ``config.max_failures`` times and then records it as failed without stopping the
    sweep; and with ``config.resume`` continues a killed sweep with ``Tuner.restore``
    without rerunning finished trials. At the end it writes ``best.ckpt`` (open it with
    ``molgnn.load``), ``best_config.yaml`` and the Optuna plots next to the experiment.

    Args:
        config: The sweep configuration.
        backend: Builds and evaluates the trials' training runs; the default,
            [`MolgnnBackend`][molgnn.tune.MolgnnBackend], trains molgnn models with
            [`molgnn.training`][molgnn.training]. (default: ``None``)

    Returns:
        The trial table, the best configuration and where the exports are.

    Raises:
        ClusterConnectionError: ``config.address`` could not be joined (for example the
            cluster uses token authentication and this machine has no token); the message
            says what to set.
    """
    from optuna.samplers import TPESampler
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    backend = backend or MolgnnBackend()
    space = validate_sweep(config, backend)
    path = config.experiment_path
    if not _is_uri(path):
        Path(config.storage_path).mkdir(parents=True, exist_ok=True)
    exists = tune.Tuner.can_restore(path)
    if config.resume and not exists:
        raise ValueError(f"--resume: no sweep to resume at {path}")
    if not config.resume and exists:
        raise ValueError(
            f"a sweep already exists at {path}; resume it with --resume or pick another --name"
        )

    tracking = None
    if config.mlflow_uri:  # a URI MLflow cannot use fails here, before Ray starts
        from molgnn.tracking.sweeps import SweepTracking

        tracking = SweepTracking(config.mlflow_uri, config.mlflow_experiment)

    started = time.time()
    connected = _init_ray(config)
    status = "FAILED"
    try:
        resources, concurrency = trial_resources(config, ray.cluster_resources())
        data_parallel = _data_parallel(config, resources)
        dataset = backend.prepare_dataset(config.train)
        callbacks: list[Any] = [ReleaseTrainWorkers()] if data_parallel is not None else []
        if tracking is not None:
            data = None
            if isinstance(backend, MolgnnBackend):
                from molgnn.tracking import qm9_data

                data = qm9_data(config.train)
            folder = None if _is_uri(path) else Path(path)
            params = {**config.to_dict(), "space": {k: _describe(v) for k, v in space.items()}}
            tracking.start(config.name, params, data, folder, resume=config.resume)
            callbacks.append(tracking.callback(config.train, config.name))
        trainable = tune.with_resources(
            tune.with_parameters(
                train_trial,
                base=config.train,
                backend=backend,
                dataset=dataset,
                data_parallel=data_parallel,
            ),
            resources if data_parallel is None else DRIVER_RESOURCES,
        )
        if config.resume:
            tuner = tune.Tuner.restore(
                path, trainable=trainable, resume_unfinished=True, resume_errored=False
            )
        else:
            searcher = OptunaSearch(
                metric=METRIC,
                mode=MODE,
                points_to_evaluate=[dict(p) for p in config.points_to_evaluate] or None,
                sampler=TPESampler(seed=config.train.seed, multivariate=True),
            )
            scheduler = ASHAScheduler(
                time_attr="epoch",
                metric=METRIC,
                mode=MODE,
                max_t=config.train.epochs,
                grace_period=config.grace_period,
                reduction_factor=config.reduction_factor,
            )
            tuner = tune.Tuner(
                trainable,
                param_space=space,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=scheduler,
                    num_samples=config.num_samples,
                    max_concurrent_trials=concurrency,
                    time_budget_s=config.time_budget_s,
                    trial_dirname_creator=_trial_dirname,
                    trial_name_creator=_trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=config.name,
                    storage_path=config.storage_path,
                    failure_config=tune.FailureConfig(
                        max_failures=config.max_failures, fail_fast=False
                    ),
                    checkpoint_config=tune.CheckpointConfig(
                        num_to_keep=1,
                        checkpoint_score_attribute=METRIC,
                        checkpoint_score_order=MODE,
                    ),
                    verbose=config.verbose,
                    callbacks=callbacks or None,
                ),
            )
        with tracking.fitting() if tracking is not None else nullcontext():
            results = tuner.fit()
        table = trials_table(results, space, config.train.epochs)
        out = SweepResult(
            config=config,
            experiment_path=path,
            results=results,
            table=table,
            records=trial_records(results),
        )
        if tracking is not None:
            out.mlflow_run_id = tracking.parent_run_id
        if config.export:
            _export_best(config, results, table, space, dataset, backend, out, tracking)
        out.elapsed_s = time.time() - started
        status = "FINISHED"
        return out
    finally:
        if tracking is not None:
            tracking.end(status)
        if connected:
            ray.shutdown()
