"""The online loop on MLflow: one run per retrain, one registered version per store model.

The order of the steps of one retrain, and what a crash between two of them leaves:

1. the run starts, tagged with the store (`molgnn.store`) and the data version; a crash
   while training leaves a `RUNNING` run, which the next start marks `KILLED`;
2. the checkpoint is renamed into ``models/`` and the run tagged with its SHA-256
   (`molgnn.checkpoint_sha256`), then [`FitTracker.finish`][molgnn.tracking.FitTracker.finish]
   logs the model; a crash here leaves no store model, so the version is trained again;
3. the store registers the model (one transaction);
4. MLflow registers a version tagged with the checkpoint's SHA-256;
5. the store records the MLflow version ([`Store.link_mlflow_version`][molgnn.online.Store.link_mlflow_version]).

[`reconcile`][molgnn.tracking.reconcile], run at every start, finds the version of a
store model by that tag, so a crash after 3 registers it then (from its run, or a recovered
run when the run never logged the model), and a crash after 4 only rewrites the link.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molgnn.tracking.registry import (
    DECISION_TAG,
    SOURCE_TAG,
    _check_name,
    _client,
    _ensure_registered_model,
    _model_versions,
    register,
)

if TYPE_CHECKING:
    from molgnn.online import DataVersion, ModelRecord, Store
    from molgnn.tracking.runs import DataRef, FitTracker, TrackedRun

#: The MLflow experiment of the online loop's runs.
EXPERIMENT = "molgnn-online"

STORE_TAG = "molgnn.store"
DATA_VERSION_TAG = "molgnn.data_version"
DATA_SIZE_TAG = "molgnn.data_size"
STORE_MODEL_TAG = "molgnn.store_model"
CHECKPOINT_TAG = "molgnn.checkpoint_sha256"
MODEL_URI_TAG = "molgnn.model_uri"  # set by FitTracker.finish once the model is logged


def store_tag(store: Store) -> str:
    """The value of the `molgnn.store` tag: the store's absolute path."""
    return str(Path(store.root).resolve())


def data_ref(store: Store, version: DataVersion) -> DataRef:
    """A data version as a run's dataset input (digest: the version id; source: the store)."""
    from molgnn.tracking.runs import DataRef

    return DataRef(
        name=f"online-v{version.seq}-{version.id[:12]}",
        digest=version.id,
        source=store_tag(store),
        molecules=version.size,
    )


def heldout_ref(store: Store) -> DataRef:
    """The store's fixed test molecules as a run's `testing` dataset input."""
    from molgnn.tracking.runs import DataRef

    digest = store.heldout_digest("test")
    return DataRef(
        name=f"online-test-{digest[:12]}",
        digest=digest,
        source=store_tag(store),
        molecules=len(store.molecules("test")),
    )


def run_tags(store: Store, version: DataVersion) -> dict[str, str]:
    """The tags of a retrain's run."""
    return {
        STORE_TAG: store_tag(store),
        DATA_VERSION_TAG: version.id,
        DATA_SIZE_TAG: str(version.size),
    }


def model_name(config: Any) -> str:
    """The registered model of an [`OnlineConfig`][molgnn.online.OnlineConfig]: its
    `registered_model`, else `online-<target>`."""
    return str(config.registered_model or f"online-{config.train.target}")


def start_retrain(
    uri: str, store: Store, version: DataVersion, train_config: Any, experiment: str = EXPERIMENT
) -> FitTracker:
    """Start the run of a retrain on `version` (step 1 of the module's list)."""
    from molgnn.tracking.runs import FitTracker

    tracker = FitTracker(
        uri, experiment, run_name=f"v{version.seq} {version.id[:12]}", tags=run_tags(store, version)
    )
    tracker.start(train_config, data_ref(store, version), heldout_ref(store))
    return tracker


def publish(uri: str, name: str, store: Store, model: ModelRecord, tracked: TrackedRun) -> int:
    """Register a store model as a version of `name` and record the link in the store
    (steps 4 and 5 of the module's list); returns the version number."""
    if model.test_mae is None or not math.isfinite(model.test_mae):
        raise ValueError(f"model {model.id} has no finite test MAE, so it cannot be registered")
    version = store.get_version(model.data_version)
    tags = {
        STORE_TAG: store_tag(store),
        STORE_MODEL_TAG: str(model.id),
        DATA_VERSION_TAG: version.id,
        DATA_SIZE_TAG: str(version.size),
        CHECKPOINT_TAG: model.checkpoint_sha256,
    }
    number = register(uri, name, tracked, model.test_mae, store.heldout_digest("test"), tags)
    store.link_mlflow_version(model.id, uri, name, number, tracked.run_id)
    return number


def _runs(client: Any, filter_string: str) -> list[Any]:
    """Every run (of every experiment) matching `filter_string`."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    found: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiments, filter_string, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def _finished_run(client: Any, model: ModelRecord) -> TrackedRun | None:
    """The run that trained `model` and logged it, if it got that far."""
    from molgnn.tracking.runs import TrackedRun

    for run in _runs(client, f"tags.`{CHECKPOINT_TAG}` = '{model.checkpoint_sha256}'"):
        model_uri = run.data.tags.get(MODEL_URI_TAG)
        if model_uri:
            metrics = {k: float(v) for k, v in run.data.metrics.items() if k.startswith("test_")}
            return TrackedRun(run.info.run_id, model_uri, metrics)
    return None


def _recovered_run(uri: str, store: Store, model: ModelRecord, experiment: str) -> TrackedRun:
    """A new run that logs a store model whose own run is lost (or never existed, for a
    model trained before tracking was on): its settings, metrics and checkpoint."""
    from molgnn.online.loop import version_dataset
    from molgnn.tracking.runs import FitTracker
    from molgnn.training import FitResult, TrainConfig

    version = store.get_version(model.data_version)
    checkpoint = store.root / model.checkpoint
    config = TrainConfig.from_dict(model.hyperparameters)
    tags = {
        **run_tags(store, version),
        STORE_MODEL_TAG: str(model.id),
        CHECKPOINT_TAG: model.checkpoint_sha256,
    }
    try:
        dataset: Any = version_dataset(store, version)[0]
    except ValueError:  # a version recreated by `molgnn registry repair` has no molecules
        dataset = None
    with FitTracker(
        uri, experiment, run_name=f"store model {model.id} (recovered)", tags=tags
    ) as tracker:
        tracker.start(config, data_ref(store, version), heldout_ref(store))
        result = FitResult(
            metrics=dict(model.metrics),
            best_checkpoint=checkpoint,
            last_checkpoint=checkpoint,
            out_dir=checkpoint.parent,
        )
        return tracker.finish(result, dataset=dataset)


def close_killed_runs(client: Any, store: Store) -> list[str]:
    """End the runs of `store` that a killed process left `RUNNING` (hold the store's lock)."""
    done = []
    mine = store_tag(store)  # compared here: a path may hold quotes that a filter cannot
    for run in _runs(client, "attributes.status = 'RUNNING'"):
        if run.data.tags.get(STORE_TAG) != mine:
            continue
        status = "FINISHED" if run.data.tags.get(MODEL_URI_TAG) else "KILLED"
        client.set_terminated(run.info.run_id, status)
        done.append(f"marked run {run.info.run_id} of an interrupted retrain {status}")
    return done


def reconcile(uri: str, name: str, store: Store, experiment: str = EXPERIMENT) -> list[str]:
    """See [`molgnn.tracking.reconcile`][molgnn.tracking.reconcile]."""
    from molgnn.tracking.runs import TrackedRun

    _check_name(name)
    client = _client(uri)
    done = close_killed_runs(client, store)
    models = store.models()
    if not models:
        return done
    _ensure_registered_model(client, name)
    by_checkpoint = {
        mv.tags.get(CHECKPOINT_TAG): mv
        for mv in _model_versions(client, name)
        if mv.tags.get(CHECKPOINT_TAG)
    }
    links = {link.model: link for link in store.mlflow_versions(uri, name)}
    for model in models:
        mv = by_checkpoint.get(model.checkpoint_sha256)
        if model.test_mae is None:
            done.append(f"left model {model.id} unregistered: it has no test MAE")
            continue
        if mv is None:
            tracked = _finished_run(client, model)
            how = "from its run"
            if tracked is None:
                tracked = _recovered_run(uri, store, model, experiment)
                how = f"from a recovered run {tracked.run_id} (its own run did not log it)"
            number = publish(uri, name, store, model, tracked)
            done.append(f"registered store model {model.id} as {name} v{number} {how}")
            continue
        number = int(mv.version)
        if mv.tags.get(STORE_MODEL_TAG) != str(model.id):  # renumbered by a store repair
            client.set_model_version_tag(name, str(number), STORE_MODEL_TAG, str(model.id))
        tracked = TrackedRun(mv.run_id, mv.tags.get(SOURCE_TAG, mv.source), {})
        if DECISION_TAG not in mv.tags:
            publish(uri, name, store, model, tracked)
            done.append(f"made the interrupted champion decision of {name} v{number}")
            continue
        link = links.get(model.id)
        if link is None or link.version != number:
            store.link_mlflow_version(model.id, uri, name, number, mv.run_id)
            done.append(f"recorded that store model {model.id} is {name} v{number}")
    return done
