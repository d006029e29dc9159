"""Track a sweep on MLflow: a parent run, one nested run per trial, the best one marked.

[`run_sweep`][molgnn.tune.run_sweep] uses this when its config has an ``mlflow_uri``. The
trials' runs are made by Ray Tune's own ``MLflowLoggerCallback``, which logs from the driver
process (so an embedded SQLite store works on a multi-node cluster, the trials never open it);
each trial run carries the ``mlflow.parentRunId`` tag of the sweep's parent run, which nests it
in the MLflow UI.

This module imports Ray; ``import molgnn.tracking`` does not import it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback

from molgnn.tracking.runs import (
    PARENT_TAG,
    DataRef,
    TrackedRun,
    _client,
    _now_ms,
    _tracking_uri_set,
    ensure_experiment,
    flat_params,
    log_checkpoint_model,
    log_dataset,
)

__all__ = ["BEST_TAG", "PARENT_RUN_FILE", "SweepTracking", "TrialRuns"]

#: The tag (``"true"``) on the best trial's run; the parent run holds its id in
#: ``molgnn.best_run_id``.
BEST_TAG = "molgnn.best_trial"
#: The parent run's id, kept beside a local sweep so that ``--resume`` continues that run.
PARENT_RUN_FILE = "mlflow_parent_run_id"


class TrialRuns(MLflowLoggerCallback):
    """Ray Tune's MLflow logger, with each trial's whole training config tree as params.

    Ray's callback logs the sampled values (``lr``, ``model.hidden_channels``); this one adds
    every other field of the trial's config, with the same dotted keys as
    [`FitTracker`][molgnn.tracking.FitTracker] uses, so a trial run reads like a training run.

    Args:
        uri: The tracking URI.
        experiment: The MLflow experiment.
        parent_run_id: The sweep's parent run.
        base: The sweep's base training config.
        sweep: The sweep's name (the ``molgnn.sweep`` tag).
    """

    def __init__(
        self, uri: str, experiment: str, parent_run_id: str, base: Any, sweep: str
    ) -> None:
        super().__init__(
            tracking_uri=uri,
            experiment_name=experiment,
            tags={PARENT_TAG: parent_run_id, "molgnn.sweep": sweep},
            save_artifact=False,
        )
        self.base = base

    def log_trial_start(self, trial: Any) -> None:
        """Start (or continue) the trial's run and log its params."""
        from mlflow.entities import Param

        from molgnn.tune.backend import trial_config

        new = trial not in self._trial_runs
        super().log_trial_start(trial)
        if not new:
            return
        sampled = {str(k) for k in trial.config}
        tree = flat_params(trial_config(self.base, dict(trial.config)).to_dict())
        params = [Param(k, v) for k, v in tree.items() if k not in sampled]
        client = _client(self.tracking_uri)
        for i in range(0, len(params), 100):
            client.log_batch(self._trial_runs[trial], params=params[i : i + 100])


class SweepTracking:
    """The MLflow side of one sweep: the parent run, the trials' callback and the best trial.

    Args:
        uri: The tracking URI; a URI MLflow cannot use raises ``ValueError`` here, before Ray
            starts.
        experiment: The MLflow experiment (default: ``"molgnn"``).
    """

    def __init__(self, uri: str, experiment: str = "molgnn") -> None:
        self.uri = uri
        self.experiment = experiment
        self.client = _client(uri)
        self.experiment_id = ensure_experiment(self.client, uri, experiment)
        self.parent_run_id: str | None = None

    def start(
        self,
        name: str,
        params: Mapping[str, Any],
        data: DataRef | None,
        folder: Path | None,
        resume: bool = False,
    ) -> str:
        """Start the parent run, or continue the one recorded in ``folder`` (a resumed sweep).

        Args:
            name: The sweep's name (the run's name).
            params: The sweep config as a mapping (logged flat, ``train.lr``, ...).
            data: The data the trials train on.
            folder: The sweep's local folder, where the parent run's id is kept; ``None`` for
                a sweep on remote storage.
            resume: Continue the parent run kept in ``folder``, if any (default: ``False``).

        Returns:
            The parent run's id.
        """
        from mlflow.entities import Param

        record = folder / PARENT_RUN_FILE if folder is not None else None
        if resume and record is not None and record.is_file():
            run_id = record.read_text().strip()
            self.client.update_run(run_id, status="RUNNING")
            self.parent_run_id = run_id
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags={"molgnn.sweep": name})
        run_id = run.info.run_id
        self.parent_run_id = run_id
        flat = [Param(k, v[:6000]) for k, v in flat_params(params).items()]
        for i in range(0, len(flat), 100):
            self.client.log_batch(run_id, params=flat[i : i + 100])
        if data is not None:
            log_dataset(self.client, run_id, data, "training")
        if record is not None:
            from molgnn.io.atomic import write_atomic

            write_atomic(record, run_id + "\n")
        return run_id

    def callback(self, base: Any, sweep: str) -> TrialRuns:
        """Ray Tune's callback that makes the trials' runs, nested under the parent."""
        if self.parent_run_id is None:
            raise RuntimeError("SweepTracking.start() has not been called")
        return TrialRuns(self.uri, self.experiment, self.parent_run_id, base, sweep)

    @contextmanager
    def fitting(self) -> Iterator[None]:
        """Around ``Tuner.fit``: Ray's callback sets MLflow's process-wide tracking URI and
        experiment (and their environment variables), which are put back afterwards."""
        experiment_env = os.environ.get("MLFLOW_EXPERIMENT_ID")
        try:
            with _tracking_uri_set(self.uri):
                yield
        finally:
            if experiment_env is None:
                os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
            else:
                os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_env

    def trial_run_id(self, trial_name: str) -> str | None:
        """The id of the run of the trial called ``trial_name`` (``trial_<id>``)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.trial_name = '{trial_name}'"
            ),
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def mark_best(
        self,
        trial_name: str,
        best_val_mae_mev: float,
        checkpoint: Path | None,
        test_metrics: Mapping[str, float],
        data: DataRef | None = None,
        heldout: DataRef | None = None,
    ) -> TrackedRun | None:
        """Tag the best trial's run and record it on the parent; log its model.

        Args:
            trial_name: The best trial.
            best_val_mae_mev: Its best validation MAE (meV).
            checkpoint: Its exported checkpoint (``best.ckpt``), logged as its run's model.
            test_metrics: Its test metrics (``test_mae``, ``test_mae_mev``).
            data: Its training data (a dataset input of its run).
            heldout: Its test data.

        Returns:
            The best trial's run and logged model, or ``None`` without a checkpoint or a run.
        """
        from mlflow.entities import Metric

        parent = self.parent_run_id
        if parent is None:
            raise RuntimeError("SweepTracking.start() has not been called")
        run_id = self.trial_run_id(trial_name)
        self.client.set_tag(parent, "molgnn.best_trial_name", trial_name)
        self.client.log_metric(parent, "best_val_mae_mev", best_val_mae_mev)
        for key, value in test_metrics.items():
            self.client.log_metric(parent, key, value)
        if run_id is None:
            return None
        self.client.set_tag(run_id, BEST_TAG, "true")
        self.client.set_tag(parent, "molgnn.best_run_id", run_id)
        for ref, context in ((data, "training"), (heldout, "testing")):
            if ref is not None:
                log_dataset(self.client, run_id, ref, context)
        if checkpoint is None:
            return None
        model_uri = log_checkpoint_model(self.uri, run_id, checkpoint)
        model_id = model_uri.removeprefix("models:/")
        now = _now_ms()
        self.client.log_batch(
            run_id,
            metrics=[
                Metric(k, float(v), now, 0, model_id=model_id) for k, v in test_metrics.items()
            ],
        )
        self.client.set_tag(run_id, "molgnn.model_uri", model_uri)
        self.client.set_tag(parent, "molgnn.model_uri", model_uri)
        return TrackedRun(run_id, model_uri, dict(test_metrics))

    def log_files(self, folder: Path) -> None:
        """Log the sweep's exports (``best_config.yaml``, the Optuna plots) on the parent run;
        the checkpoint is the best trial's logged model instead."""
        parent = self.parent_run_id
        if parent is None:
            raise RuntimeError("SweepTracking.start() has not been called")
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix != ".ckpt":
                self.client.log_artifact(parent, str(path))

    def end(self, status: str = "FINISHED") -> None:
        """End the parent run."""
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status)
