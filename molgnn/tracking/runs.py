"""Track a training run on MLflow: params, per-epoch metrics, test metrics, plots, model, data.

One [`FitTracker`][molgnn.tracking.FitTracker] is one MLflow run for one (re)training:

```python
from molgnn.tracking import FitTracker, qm9_data, tracking_uri
from molgnn.training import TrainConfig, fit

config = TrainConfig(subset=200, epochs=3)
with FitTracker(tracking_uri(None, config.out_dir)) as tracker:
    tracker.start(config, qm9_data(config))
    result = fit(config, callbacks=[tracker.on_epoch])
    tracked = tracker.finish(result)
print(tracked.model_uri)  # models:/m-...
```

MLflow is imported when a tracker starts, never when this module is imported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from torch_geometric.data import Dataset

    from molgnn.training import FitResult, TrainConfig, Trainer

__all__ = [
    "PARENT_TAG",
    "DataRef",
    "FitTracker",
    "TrackedRun",
    "ensure_experiment",
    "flat_params",
    "flat_test_metrics",
    "log_checkpoint_model",
    "log_dataset",
    "qm9_data",
    "tracking_uri",
]

_log = logging.getLogger(__name__)

#: The MLflow run tag that nests a run under another (what the MLflow UI reads).
PARENT_TAG = "mlflow.parentRunId"
#: MLflow keeps at most this many characters of a dataset digest (its database column).
_MLFLOW_DIGEST_CHARS = 36
_BATCH = 100  # MLflow's limit of params per log_batch call
_PARAM_CHARS = 6000  # MLflow's limit of a param value
_PLOTS_NEED = "plots skipped: they need matplotlib (pip install 'molgnn[plot]')"


def tracking_uri(uri: str | None, out_dir: str | Path) -> str:
    """The MLflow tracking URI of a run.

    Args:
        uri: The URI the user gave (``--mlflow URI``), or ``None``.
        out_dir: The run's output folder.

    Returns:
        ``uri`` if given, else ``$MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store
        ``sqlite:///<out_dir>/mlflow.db`` (an absolute path), beside the run's output.
    """
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(out_dir).resolve() / 'mlflow.db').as_posix()}"


@dataclass(frozen=True)
class DataRef:
    """The data a run trained on, logged as the run's MLflow dataset input.

    Args:
        name: The dataset's name, e.g. ``"qm9-gap-2000"`` or a data version id.
        digest: molgnn's content hash of the data (64 hexadecimal digits for the hashes molgnn
            makes). MLflow stores the first 36 characters as the dataset's digest; the whole
            hash is in the dataset's profile and the run's ``molgnn.data.digest`` tag.
        source: Where the data lives: the store or data folder.
        molecules: How many molecules (default: ``None``, unknown).
    """

    name: str
    digest: str
    source: str
    molecules: int | None = None


@dataclass(frozen=True)
class TrackedRun:
    """A finished tracked run.

    Args:
        run_id: The MLflow run id.
        model_uri: The logged model's URI (``models:/m-...``); its artifacts hold the molgnn
            checkpoint at ``artifacts/best.ckpt``.
        test_metrics: The test metrics logged (``test_mae``, ``test_mae_mev``, ...,
            ``test_mae_mev_by_size.9``, ...).
    """

    run_id: str
    model_uri: str
    test_metrics: dict[str, float]


def flat_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config mapping as MLflow params: dotted keys, values as text.

    Args:
        tree: E.g. [`TrainConfig.to_dict`][molgnn.config.Config.to_dict]'s output.
        prefix: Put before every key (default: ``""``).

    Returns:
        ``{"model.hidden_channels": "128", "lr": "0.0005", ...}``; ``None`` becomes ``"None"``
        and lists their JSON text.
    """
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, name + "."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(list(value), default=str)
        else:
            out[name] = str(value)
    return out


def _ids_digest(label: str, ids: Any) -> str:
    digest = hashlib.sha256(f"{label}\n".encode())
    for mol_id in sorted(int(i) for i in ids):
        digest.update(f"{mol_id}\n".encode())
    return digest.hexdigest()


def qm9_data(config: TrainConfig, split: str = "train") -> DataRef:
    """The QM9 molecules of one split of ``config``'s run, as a [`DataRef`][molgnn.tracking.DataRef].

    The dataset and split are made exactly as [`fit`][molgnn.training.fit] makes them (the
    processed dataset is cached, so this costs a read). The digest is the SHA-256 of the
    target's name and the split's QM9 ids, sorted: the same molecules give the same digest on
    every machine, whatever the subset draw that picked them.

    Args:
        config: The training config.
        split: ``"train"``, ``"val"`` or ``"test"`` (default: ``"train"``).

    Returns:
        The split's name (``qm9-gap-2000-train``), digest, QM9 folder and molecule count.

    Raises:
        ValueError: for an unknown split.
    """
    from molgnn.data.paths import qm9_root
    from molgnn.training.data import load_dataset, make_splits

    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; valid splits: train, val, test")
    dataset = load_dataset(config)
    indices = getattr(make_splits(len(dataset), config), split)
    ids = dataset.molecule_ids[indices.numpy()]
    size = "all" if config.subset is None else str(config.subset)
    return DataRef(
        name=f"qm9-{config.target}-{size}-{split}",
        digest=_ids_digest(f"qm9/{config.target}", ids),
        source=str(qm9_root(config.data_root).resolve()),
        molecules=len(ids),
    )


@contextmanager
def _tracking_uri_set(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI at ``uri`` for a block, then restore it.

    ``mlflow.set_tracking_uri`` also sets ``$MLFLOW_TRACKING_URI``, which would make every later
    run of this process tracked; the environment variable is put back too.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None unsets it


def _client(uri: str) -> MlflowClient:
    """An MLflow client of ``uri`` that has answered once; a bad URI raises ``ValueError``."""
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ImportError("experiment tracking needs MLflow: pip install 'molgnn[track]'") from None
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as err:  # MLflow raises its own, SQLAlchemy's and requests' errors
        raise ValueError(
            f"cannot use the MLflow tracking URI {uri!r}: {_first_line(err)}"
        ) from None
    return client


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _check_server(uri: str, timeout: float = 10.0) -> None:
    """Fail at once, naming ``uri``, when no MLflow server answers there (MLflow itself retries
    a refused connection for minutes)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # something answers: MLflow's own requests will say more
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ValueError(
            f"cannot reach the MLflow tracking server at {uri}: {reason} (is 'mlflow server' "
            "running there?)"
        ) from None


def _sqlite_folder(uri: str) -> Path | None:
    """The folder of a ``sqlite:///`` store's database file, else ``None``."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :]).parent


def ensure_experiment(client: MlflowClient, uri: str, name: str) -> str:
    """The id of the experiment ``name``, created if needed.

    For a SQLite store the artifacts go beside the database, in
    ``<folder>/mlartifacts/<name>`` (MLflow's default would be ``./mlruns`` in the current
    folder).
    """
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    folder = _sqlite_folder(uri)
    location = None
    if folder is not None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        location = (folder.resolve() / "mlartifacts" / safe).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def log_dataset(client: MlflowClient, run_id: str, data: DataRef, context: str) -> None:
    """Log ``data`` as a dataset input of the run (``context``: ``training``, ``testing``)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    # MLflow's own JSON for a local folder (its LocalArtifactDatasetSource) or another URI.
    source = json.dumps({"uri": data.source})
    profile = {"sha256": data.digest, "molecules": data.molecules}
    entity = Dataset(
        name=data.name,
        digest=data.digest[:_MLFLOW_DIGEST_CHARS],
        source_type="local" if "://" not in data.source else "external",
        source=source,
        profile=json.dumps(profile),
    )
    client.log_inputs(
        run_id,
        datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])],
    )


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "epoch"
    }


def log_checkpoint_model(uri: str, run_id: str, checkpoint: str | Path, name: str = "model") -> str:
    """Log a molgnn checkpoint as an MLflow logged model of the run; returns its URI.

    The model is an MLflow ``pyfunc`` model written from code
    ([`MolgnnPyfunc`][molgnn.tracking.pyfunc.MolgnnPyfunc]; nothing is pickled) whose one artifact
    is the checkpoint, at ``artifacts/<checkpoint file name>`` under the model's artifacts:
    ``mlflow.artifacts.download_artifacts(model_uri)`` gives a folder with that one ``.ckpt``
    file, which [`molgnn.load`][molgnn.inference.load] reads (``weights_only=True``).

    Args:
        uri: The tracking URI.
        run_id: The run that made the model.
        checkpoint: The molgnn checkpoint (``best.ckpt``).
        name: The logged model's name (default: ``"model"``).

    Returns:
        ``models:/m-...``.
    """
    import mlflow
    from mlflow.models import Model

    from molgnn import __version__

    code = Path(__file__).with_name("_model_code.py")
    client = _client(uri)
    run = client.get_run(run_id)
    # Made here, in the run's experiment: Model.log alone would put it in the process's
    # current experiment (MLflow's "Default", whose artifacts go to ./mlruns).
    logged = client.create_logged_model(
        run.info.experiment_id,
        name=name,
        source_run_id=run_id,
        tags={"molgnn.checkpoint": Path(checkpoint).name},
        params=dict(run.data.params),
        model_type="molgnn",
    )
    with _tracking_uri_set(uri):
        info = Model.log(
            artifact_path=None,
            name=name,
            flavor=mlflow.pyfunc,
            python_model=str(code),
            artifacts={"checkpoint": str(Path(checkpoint).resolve())},
            run_id=run_id,
            model_id=logged.model_id,
            pip_requirements=[f"molgnn=={__version__}", f"mlflow=={mlflow.__version__}"],
        )
    return str(info.model_uri)


class FitTracker:
    """One MLflow run for one (re)training.

    Use it as a context manager: leaving the block ends the run, ``FINISHED``, or ``FAILED``
    when an exception left it.

    Args:
        uri: The tracking URI (see [`tracking_uri`][molgnn.tracking.tracking_uri]).
        experiment: The MLflow experiment, created if needed (default: ``"molgnn"``).
        run_name: The run's name (default: MLflow's).
        parent_run_id: Nest the run under this one (the ``mlflow.parentRunId`` tag).
        tags: More run tags.

    Raises:
        ValueError: on entering the block (or [`connect`][molgnn.tracking.FitTracker.connect],
            [`start`][molgnn.tracking.FitTracker.start]), one line naming a tracking URI that
            MLflow cannot use or a server that does not answer.
        ImportError: likewise, when MLflow is not installed.
    """

    def __init__(
        self,
        uri: str,
        experiment: str = "molgnn",
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self._client: MlflowClient | None = None
        self._logged_epochs: set[int] = set()
        self._status: str | None = None

    def __enter__(self) -> FitTracker:
        self.connect()
        return self

    def connect(self) -> MlflowClient:
        """Connect to the tracking store (once); a URI MLflow cannot use raises ``ValueError``
        here, before any training. Entering the ``with`` block connects."""
        if self._client is None:
            self._client = _client(self.uri)
        return self._client

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end("FINISHED" if exc_type is None else "FAILED")

    def _run_id(self) -> str:
        if self.run_id is None:
            raise RuntimeError("FitTracker.start() has not been called")
        return self.run_id

    @property
    def client(self) -> MlflowClient:
        """The MLflow client (after [`start`][molgnn.tracking.FitTracker.start])."""
        if self._client is None or self.run_id is None:
            raise RuntimeError("FitTracker.start() has not been called")
        return self._client

    def start(
        self, config: TrainConfig, data: DataRef | None = None, heldout: DataRef | None = None
    ) -> str:
        """Start the run: the whole config tree as params, and the data as dataset inputs.

        Args:
            config: The training config; every field of the config that trains
                ([`resolved`][molgnn.training.TrainConfig.resolved], as ``config.json`` holds it)
                becomes a param with a dotted key (``model.hidden_channels``, ``lr``).
            data: The training data, logged with context ``training``.
            heldout: The test data, logged with context ``testing``.

        Returns:
            The run id.
        """
        from mlflow.entities import Param

        from molgnn import __version__

        client = self.connect()
        experiment = ensure_experiment(client, self.uri, self.experiment)
        tags = {"molgnn.version": __version__, "molgnn.target": config.target, **self.tags}
        if self.parent_run_id is not None:
            tags[PARENT_TAG] = self.parent_run_id
        if data is not None:
            tags["molgnn.data.digest"] = data.digest
        run = client.create_run(experiment, tags=tags, run_name=self.run_name)
        self.run_id = run.info.run_id
        tree = flat_params(config.resolved().to_dict())
        params = [Param(k, v[:_PARAM_CHARS]) for k, v in tree.items()]
        for i in range(0, len(params), _BATCH):
            client.log_batch(self.run_id, params=params[i : i + _BATCH])
        if data is not None:
            log_dataset(client, self.run_id, data, "training")
        if heldout is not None:
            log_dataset(client, self.run_id, heldout, "testing")
        return self.run_id

    def on_epoch(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Log one epoch's metrics with ``step`` = the epoch (a [`fit`][molgnn.training.fit]
        callback): ``train_loss``, ``val_mae``, ``val_mae_mev`` (eV targets), ``val_rmse``,
        ``lr``, ``best_val_mae``, ``time``, ...; a resumed run's earlier epochs (from
        ``trainer.history``) are logged first."""
        for past in getattr(trainer, "history", [])[:-1]:
            if int(past["epoch"]) not in self._logged_epochs:
                self._log_epoch(past)
        self._log_epoch(metrics)

    def _log_epoch(self, metrics: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        step = int(metrics["epoch"])
        now = _now_ms()
        batch = [Metric(k, v, now, step) for k, v in _numeric(metrics).items()]
        self.client.log_batch(self._run_id(), metrics=batch)
        self._logged_epochs.add(step)

    def finish(self, result: FitResult, dataset: Dataset | None = None) -> TrackedRun:
        """Log what the finished training produced.

        The test metrics (overall and ``test_mae[_mev]_by_size.<atoms>``, with
        ``test_count_by_size.<atoms>``), linked to the logged model; the epochs of the history
        that [`on_epoch`][molgnn.tracking.FitTracker.on_epoch] did not log (all of them after
        a data-parallel fit, which takes no callbacks, and those before a resume);
        ``config.json`` and ``metrics.json``; the parity, error and learning-curve plots
        under ``plots/`` (skipped with a note and the tag
        ``molgnn.plots`` when matplotlib is missing, or when the test molecules cannot be
        rebuilt); and ``best.ckpt`` as a logged model
        ([`log_checkpoint_model`][molgnn.tracking.log_checkpoint_model]).

        Args:
            result: What [`fit`][molgnn.training.fit] returned.
            dataset: The dataset the run trained on, for the plots, if it was not QM9 as
                ``config`` draws it (default: rebuilt from the checkpoint).

        Returns:
            The run id, the logged model's URI and the test metrics.
        """
        from mlflow.entities import Metric

        client, run_id = self.client, self._run_id()
        for epoch in result.history:  # all, after a data-parallel fit; the resumed-over ones
            if int(epoch["epoch"]) not in self._logged_epochs:
                self._log_epoch(epoch)
        for name in ("config.json", "metrics.json"):
            if (result.out_dir / name).is_file():
                client.log_artifact(run_id, str(result.out_dir / name))
        self._log_plots(result, dataset)
        model_uri = log_checkpoint_model(self.uri, run_id, result.best_checkpoint)
        model_id = model_uri.removeprefix("models:/")
        test = flat_test_metrics(result.metrics)
        step = int(result.metrics.get("epochs_run", 0))
        now = _now_ms()
        batch = [Metric(k, v, now, step, model_id=model_id) for k, v in test.items()]
        for k in ("best_epoch", "epochs_run"):
            if k in result.metrics:
                batch.append(Metric(k, float(result.metrics[k]), now, step))
        client.log_batch(run_id, metrics=batch)
        by_size = result.metrics.get("test_mae_by_size")
        if by_size:
            client.log_dict(run_id, by_size, "test_mae_by_size.json")
        client.set_tag(run_id, "molgnn.model_uri", model_uri)
        return TrackedRun(run_id, model_uri, test)

    def _log_plots(self, result: FitResult, dataset: Dataset | None) -> None:
        from molgnn.cli.evaluate import write_plots
        from molgnn.training import evaluate_checkpoint

        client, run_id = self.client, self._run_id()
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            client.set_tag(run_id, "molgnn.plots", _PLOTS_NEED)
            _log.warning(_PLOTS_NEED)
            return
        try:
            evaluation = evaluate_checkpoint(result.best_checkpoint, dataset=dataset)
        except (ValueError, OSError) as err:  # e.g. an online store's molecules, not QM9's
            note = f"plots skipped: the test molecules cannot be rebuilt ({err})"
            client.set_tag(run_id, "molgnn.plots", note[:5000])
            _log.warning(note)
            return
        with tempfile.TemporaryDirectory(prefix="molgnn-plots-") as tmp:
            write_plots(evaluation, result.history, Path(tmp))
            client.log_artifacts(run_id, tmp, "plots")

    def end(self, status: str = "FINISHED") -> None:
        """End the run (``FINISHED``, ``FAILED`` or ``KILLED``); a second call does nothing."""
        if self.run_id is None or self._client is None or self._status is not None:
            return
        self._client.set_terminated(self.run_id, status)
        self._status = status


def flat_test_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The test metrics of a [`FitResult`][molgnn.training.FitResult]'s ``metrics``, flat.

    Args:
        metrics: ``FitResult.metrics``.

    Returns:
        ``test_mae``, ``test_rmse``, ``test_loss``, ``test_mae_mev`` and ``test_rmse_mev`` (eV
        targets), and per molecule size ``test_mae_mev_by_size.<atoms>`` (``test_mae_by_size``
        for targets not in eV) and ``test_count_by_size.<atoms>``.
    """
    out = {k: v for k, v in _numeric(metrics).items() if k.startswith("test_")}
    key = "test_mae_mev_by_size" if "test_mae_mev" in metrics else "test_mae_by_size"
    for atoms, row in sorted((metrics.get("test_mae_by_size") or {}).items(), key=_by_atoms):
        out[f"{key}.{atoms}"] = float(row["mae"])
        out[f"test_count_by_size.{atoms}"] = float(row["count"])
    return out


def _by_atoms(item: tuple[Any, Any]) -> int:
    return int(item[0])


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
