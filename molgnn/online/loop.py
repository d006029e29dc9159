"""The online loop: ingest chunks, retrain when the data has grown enough, register models."""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch_geometric.data import Data, InMemoryDataset

from molgnn.config import Config
from molgnn.io.atomic import fsync_dir, write_atomic_with
from molgnn.online.store import REGISTRY_RECORD, ModelRecord, Store
from molgnn.online.stream import DataStream, molecule_id
from molgnn.online.triggers import GrowthTrigger, RetrainTrigger
from molgnn.online.versions import DataVersion

__all__ = [
    "ListDataset",
    "OnlineConfig",
    "plot_learning_curve",
    "run_online",
    "train_on_version",
    "version_dataset",
]


class ListDataset(InMemoryDataset):
    """An in-memory PyG dataset made from a list of ``Data`` objects.

    Args:
        data_list: The molecules.
        version: The data version they come from, recorded in checkpoints (default: ``None``).
    """

    def __init__(self, data_list: list[Data], version: str | None = None) -> None:
        if not data_list:
            raise ValueError("a ListDataset needs at least one molecule")
        super().__init__(None)
        self.data, self.slices = self.collate(data_list)
        self.version = version


def _default_train() -> Any:
    from molgnn.training import TrainConfig

    return TrainConfig(epochs=5, warmup_steps=None, out_dir="runs/online")


@dataclass(frozen=True)
class OnlineConfig(Config):
    """Settings of ``molgnn online``: one [`TrainConfig`][molgnn.training.TrainConfig] for every
    retrain, plus the fields of the online loop. Checked by type like every config
    ([`molgnn.config`][molgnn.config]).

    The training config's keys may be written flat (``FLAT = "train"``): in a YAML file or a
    ``--set``, ``lr: 1e-3`` sets ``train.lr``, so a file written for ``molgnn train`` works
    unchanged here. The source is ``train.subset`` QM9 molecules drawn with
    ``train.subset_seed`` from all of QM9 (``train.target`` is learned); ``train.seed`` seeds the
    release order and training. Each retrain trains ``train.epochs`` epochs on the newest data
    version and validates and tests on the fixed held-out molecules.

    Args:
        store: The store's folder.
        train: The training config of every retrain (default: ``TrainConfig(epochs=5,
            warmup_steps=None)``: five epochs, the warm-up a quarter of each retrain's steps).
        initial: Molecules in the first version (default: ``200``).
        chunk: Molecules per later chunk (default: ``100``).
        growth: Retrain when the data has grown by this fraction (default: ``0.25``).
        val: Held-out validation molecules, fixed across versions (default: ``100``).
        test: Held-out test molecules, fixed across versions (default: ``200``).
        warm_start: Start each retrain from the previous model (default: ``True``).
        max_chunks: Stop after ingesting this many chunks in this run (default: all); an
            acquisition round counts as a chunk.
        mlflow: Track every retrain as a run in this MLflow tracking URI, and register every
            model as a version of `registered_model`
            ([`register`][molgnn.tracking.register]); `None` tracks nothing
            (default: `None`).
        registered_model: The MLflow registered model the loop's models become versions of
            (default: `None`: `"online-<target>"`, e.g. `"online-gap"`).
        mlflow_experiment: The MLflow experiment of the retrains' runs (default:
            `"molgnn-online"`).
        acquire: Active learning: each round after the first version offers `pool`
            unlabelled candidates and this strategy picks the `batch` to compute, `"random"`,
            `"disagreement"`, `"mc-dropout"`, `"largest-error-oracle"`, or, for a targeted
            search, `"lcb"`, `"ucb"` or `"ei"` (see
            [`acquire_round`][molgnn.online.acquire_round]); `None` streams chunks
            in arrival order (default: `None`).
        pool: Candidates offered per acquisition round (default: `100`).
        batch: Candidates acquired per round, at most `pool` (default: `20`).
        committee: Models of the `disagreement` committee, at least 2 (default: `3`).
        mc_dropout_samples: MC-dropout passes of the `mc-dropout` strategy, at least 2
            (default: `20`).
        objective: The targeted search's direction, `"minimize"` (e.g. the smallest gap) or
            `"maximize"` the first target: what `lcb`, `ucb` and `ei` look for and what
            every round's top-molecule count measures (default: `"minimize"`).
        kappa: The weight of the std in `lcb` (mean - kappa * std) and `ucb`, at least 0
            (default: `1.0`).
        uncertainty: Where `lcb`, `ucb` and `ei` get their mean and std: `"committee"`
            (a committee of `committee` models) or `"mc-dropout"` (`mc_dropout_samples`
            passes of the latest model, which needs dropout) (default: `"committee"`).
        top_fraction: Each acquisition round records how many of the source's best
            `top_fraction` molecules (by label, in the `objective`'s direction) the training
            data holds, in (0, 1]; `None` records nothing and reads no labels (default:
            `0.01`, the top 1%).
    """

    FLAT: ClassVar[str | None] = "train"
    #: Fields that moved into ``train``.
    RENAMED: ClassVar[dict[str, str]] = {"model_overrides": "model"}

    store: str
    train: Any = field(default_factory=_default_train)
    initial: int = 200
    chunk: int = 100
    growth: float = 0.25
    val: int = 100
    test: int = 200
    warm_start: bool = True
    max_chunks: int | None = None
    mlflow: str | None = None
    registered_model: str | None = None
    mlflow_experiment: str = "molgnn-online"
    acquire: str | None = None
    pool: int = 100
    batch: int = 20
    committee: int = 3
    mc_dropout_samples: int = 20
    objective: str = "minimize"
    kappa: float = 1.0
    uncertainty: str = "committee"
    top_fraction: float | None = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        from molgnn.training import TrainConfig

        if isinstance(self.train, dict):
            object.__setattr__(self, "train", _default_train().merged(self.train))
        if not isinstance(self.train, TrainConfig):
            raise ValueError(
                f"train: expected a TrainConfig or a mapping of its fields, got "
                f"{type(self.train).__name__}"
            )
        for name in ("initial", "chunk", "val", "test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.growth > 0 and math.isfinite(self.growth)):
            raise ValueError(f"growth must be a positive fraction, got {self.growth}")
        if self.max_chunks is not None and self.max_chunks < 0:
            raise ValueError(f"max_chunks must be non-negative, got {self.max_chunks}")
        self._check_acquisition()
        subset = self.train.subset
        if subset is not None and self.val + self.test + self.initial > subset:
            raise ValueError(
                f"val ({self.val}) + test ({self.test}) + initial ({self.initial}) exceed the "
                f"subset of {subset} molecules"
            )

    def _check_acquisition(self) -> None:
        from molgnn.online.acquisition import (
            ACQUISITION_STRATEGIES,
            OBJECTIVES,
            TARGETED,
            UNCERTAINTIES,
        )

        if self.acquire is not None and self.acquire not in ACQUISITION_STRATEGIES:
            raise ValueError(
                f"acquire: unknown strategy {self.acquire!r}; valid: {', '.join(ACQUISITION_STRATEGIES)}"
            )
        for name, least in (("pool", 1), ("batch", 1), ("committee", 2), ("mc_dropout_samples", 2)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}, got {getattr(self, name)}")
        if self.batch > self.pool:
            raise ValueError(f"batch ({self.batch}) must not exceed pool ({self.pool})")
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"objective: unknown direction {self.objective!r}; valid: {', '.join(OBJECTIVES)}"
            )
        if self.uncertainty not in UNCERTAINTIES:
            raise ValueError(
                f"uncertainty: unknown source {self.uncertainty!r}; valid: "
                f"{', '.join(UNCERTAINTIES)}"
            )
        if not (self.kappa >= 0 and math.isfinite(self.kappa)):
            raise ValueError(f"kappa must be a finite number of at least 0, got {self.kappa}")
        if self.top_fraction is not None and not 0 < self.top_fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1] or None, got {self.top_fraction}")
        needs = ACQUISITION_STRATEGIES[self.acquire].objective if self.acquire else None
        if needs is not None and self.objective != needs:
            other = next(
                n for n, c in ACQUISITION_STRATEGIES.items() if c.objective == self.objective
            )
            raise ValueError(
                f"acquire {self.acquire} searches with objective {needs!r}, but objective is "
                f"{self.objective!r}; use acquire {other} (or ei) to {self.objective}"
            )
        dropout = getattr(self.train.model, "dropout", 0.0)
        by_dropout = self.acquire == "mc-dropout" or (
            self.acquire in TARGETED and self.uncertainty == "mc-dropout"
        )
        if by_dropout and not dropout > 0:
            how = "" if self.acquire == "mc-dropout" else " with uncertainty mc-dropout"
            raise ValueError(
                f"acquire {self.acquire}{how} needs a model with dropout, and this "
                f"{self.train.model.kind!r} model has {'none' if dropout is None else dropout}; "
                "use the pooled GNN with model.dropout > 0 (e.g. --set model=pooled "
                "--set model.dropout=0.1)"
            )

    def data_settings(self) -> dict[str, Any]:
        """The settings that fix the data; a store refuses to continue with others."""
        t = self.train
        return {
            "target": t.target,
            "subset": t.subset,
            "subset_seed": t.subset_seed,
            "initial": self.initial,
            "val": self.val,
            "test": self.test,
            "seed": t.seed,
        }


def version_dataset(store: Store, version: DataVersion) -> tuple[ListDataset, Any]:
    """The molecules a model of `version` trains on, with the store's fixed held-out sets.

    Returns:
        The dataset (the version's training molecules, then the validation and test
        molecules) and its [`Splits`][molgnn.training.data.Splits].
    """
    from molgnn.training.data import Splits

    train = store.molecules("train", version)
    val, test = store.molecules("val"), store.molecules("test")
    dataset = ListDataset(train + val + test, version=version.id)
    n_train, n_val = len(train), len(val)
    splits = Splits(
        torch.arange(n_train),
        torch.arange(n_train, n_train + n_val),
        torch.arange(n_train + n_val, len(dataset)),
    )
    return dataset, splits


def train_on_version(
    store: Store,
    version: DataVersion,
    config: OnlineConfig,
    parent: ModelRecord | None,
    verbose: bool = True,
) -> ModelRecord:
    """Train a model on one data version and register it.

    Trains on the version's molecules and validates and tests on the store's fixed held-out
    molecules. With ``config.warm_start`` and a ``parent``, training starts from the parent's
    weights (and keeps its standardisation); otherwise from a fresh model. The checkpoint is
    written atomically, renamed to ``models/<sha256>.ckpt``, and only then registered, in one
    transaction.

    With ``config.mlflow``, the retrain is one MLflow run (the data version as its dataset
    input), and the registered model becomes a version of ``config.registered_model`` in
    MLflow's registry, linked in the store
    ([`Store.mlflow_versions`][molgnn.online.Store.mlflow_versions]). After a crash between
    these steps, [`reconcile`][molgnn.tracking.reconcile] (which
    [`run_online`][molgnn.online.run_online] runs first) makes the two registries agree.

    Args:
        store: The store (hold its [`lock`][molgnn.online.Store.lock]).
        version: The data version to train on.
        config: The loop's settings.
        parent: The latest registered model, or ``None``.
        verbose: Print one line per epoch (default: ``True``).

    Returns:
        The registered model.
    """
    from molgnn.inference import load
    from molgnn.io.checkpoint import file_sha256
    from molgnn.training import FitResult, Trainer
    from molgnn.training.loop import final_metrics, run_epochs

    dataset, splits = version_dataset(store, version)
    work = store.work_dir()
    tracker = tracked = None
    try:
        # The store's molecules, not a QM9 subset, are this run's data (subset=None).
        train_config = config.train.replace(subset=None, out_dir=str(work))
        warm = config.warm_start and parent is not None
        model = load(store.root / parent.checkpoint) if warm and parent is not None else None
        if model is not None:
            model.train()
        trainer = Trainer(
            train_config, dataset=dataset, model=model, splits=splits, progress=verbose
        )
        tracker = _retrain_tracker(store, version, config, train_config)

        def report(trainer: Any, metrics: dict[str, Any]) -> None:
            if verbose:
                print(
                    f"  version {version.id[:12]} ({version.size} molecules) "
                    f"epoch {metrics['epoch']}: val MAE {metrics['val_mae']:.4g}",
                    flush=True,
                )

        run_epochs(trainer, [report, *([tracker.on_epoch] if tracker else [])])
        final = final_metrics(trainer)
        final["data_size"] = version.size
        final["train_seconds"] = trainer.elapsed
        hyper = {
            k: v for k, v in trainer.config.to_dict().items() if k not in ("out_dir", "data_root")
        }
        registration = dict(
            parent_model=parent.id if warm and parent is not None else None,
            warm_start=warm,
            config=trainer.model.config.to_dict(),
            hyperparameters=hyper,
            metrics={k: v for k, v in final.items() if not isinstance(v, dict)},
        )
        # What `molgnn registry repair` needs to register this checkpoint again if the
        # database is lost: everything the registry row holds, plus the data version.
        record = {
            **{k: v for k, v in registration.items() if k != "parent_model"},
            "data_version": dict(version.__dict__),
            "parent_checkpoint_sha256": parent.checkpoint_sha256 if warm and parent else None,
            "created": time.time(),
        }
        tmp_path = Path(work) / "model.ckpt"
        trainer.save_best(str(tmp_path), final, extra={REGISTRY_RECORD: record})
        digest = file_sha256(tmp_path)
        target = store.root / "models" / f"{digest}.ckpt"
        store.journal(target)  # before the write, so a crash here leaves a known orphan
        os.replace(tmp_path, target)
        fsync_dir(target.parent)
        if tracker is not None:
            from molgnn.tracking._online import CHECKPOINT_TAG

            tracker.client.set_tag(tracker.run_id, CHECKPOINT_TAG, digest)
            result = FitResult(final, target, target, work, list(trainer.history))
            tracked = tracker.finish(result, dataset=dataset)
            tracker.end("FINISHED")
    except BaseException:
        if tracker is not None:
            tracker.end("FAILED")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)  # its journal entry goes with the registration
    registered = store.register_model(
        data_version=version.id,
        checkpoint=target,
        checkpoint_sha256=digest,
        done=[work],
        **registration,
    )
    if tracked is not None and config.mlflow:
        from molgnn.tracking._online import model_name, publish

        publish(config.mlflow, model_name(config), store, registered, tracked)
    return registered


def _retrain_tracker(
    store: Store, version: DataVersion, config: OnlineConfig, train_config: Any
) -> Any:
    """The started [`FitTracker`][molgnn.tracking.FitTracker] of a retrain, or ``None``
    without ``config.mlflow``."""
    if not config.mlflow:
        return None
    from molgnn.tracking._online import start_retrain

    return start_retrain(config.mlflow, store, version, train_config, config.mlflow_experiment)


def plot_learning_curve(store: Store, path: str | Path, verbose: bool = True) -> Path | None:
    """Plot test MAE against training-set size of the registered models as a PNG.

    Warm-started and from-scratch models are drawn as two series. The file is written
    atomically. Needs matplotlib (``pip install 'molgnn[plot]'``).

    Args:
        store: The store whose registry to plot.
        path: The PNG to write.
        verbose: Say so when matplotlib is missing (default: ``True``).

    Returns:
        The path written, or ``None`` without matplotlib or without registered models.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if verbose:
            print("skipping the learning-curve plot: it needs matplotlib (pip install matplotlib)")
        return None
    models = [m for m in store.models() if m.test_mae is not None]
    if not models:
        return None
    path = Path(path)
    sizes = {v.id: v.size for v in store.versions()}
    unit = _unit(str(models[-1].hyperparameters.get("target", "")))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for warm, label, marker in ((False, "from scratch", "s"), (True, "warm start", "o")):
        series = [m for m in models if m.warm_start == warm]
        if series:
            ax.plot(
                [sizes[m.data_version] for m in series],
                [m.test_mae for m in series],
                marker=marker,
                label=label,
            )
    ax.set(
        xlabel="training molecules",
        ylabel=f"test MAE ({unit})" if unit else "test MAE",
        title="learning curve",
    )
    ax.legend()
    fig.tight_layout()
    write_atomic_with(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)
    return path


def _unit(target: str) -> str:
    from molgnn.data.keys import get_target

    try:
        return get_target(target).unit
    except ValueError:
        return ""


def run_online(
    config: OnlineConfig,
    source: Sequence[Data] | Iterable[Data] | None = None,
    trigger: RetrainTrigger | None = None,
    verbose: bool = True,
) -> Store:
    """Run (or continue) the online loop until the source is exhausted.

    Each chunk is ingested as a new data version; whenever ``trigger`` says so, a model is
    trained on the newest version and registered. The loop can be killed at any moment and
    started again with the same settings: it resumes from the store's committed state.

    The first ``config.val + config.test`` molecules of the seeded order (for an iterator
    source: the first ones it yields) are held out once as fixed validation and test sets.
    An iterator source must yield the same molecules again from the start when the loop is
    restarted (e.g. by re-reading a workflow's output folder); the molecules already
    ingested are skipped.

    Args:
        config: The loop's settings.
        source: The molecules to stream: a dataset or an iterable of labelled ``Data``
            (default: the QM9 subset of ``config``).
        trigger: Retraining policy (default: ``GrowthTrigger(config.growth)``).
        verbose: Print progress (default: ``True``).

    Returns:
        The store.

    Raises:
        ValueError: if the store was made with other data settings, another process is
            writing to it, or the source holds too few molecules.
    """
    store = Store(config.store)
    with store.lock():
        store.check_settings(config.data_settings())
        removed = store.clean_orphans()
        if removed and verbose:
            print(f"removed {len(removed)} leftover file(s) of an interrupted run", flush=True)
        if config.mlflow:
            from molgnn.tracking._online import model_name
            from molgnn.tracking.registry import reconcile

            name, experiment = model_name(config), config.mlflow_experiment
            for line in reconcile(config.mlflow, name, store, experiment):
                if verbose:
                    print(f"MLflow: {line}", flush=True)
        trigger = trigger or GrowthTrigger(config.growth)
        if source is None:
            from molgnn.training.data import load_dataset

            source = load_dataset(config.train)
        if config.acquire is not None and not (
            hasattr(source, "__len__") and hasattr(source, "__getitem__")
        ):
            raise ValueError(
                f"acquire {config.acquire!r} needs an indexable source (a dataset) to keep a pool "
                "of candidates, not an iterator"
            )
        stream = _open_stream(store, config, source)
        _loop(store, stream, config, trigger, verbose)
        plot_learning_curve(store, store.root / "learning_curve.png", verbose=verbose)
    return store


def _open_stream(store: Store, config: OnlineConfig, source: Any) -> DataStream:
    """The stream positioned after the store's committed cursor, with the held-out sets stored."""
    n_held = config.val + config.test
    cursor = store.get_state("cursor")
    if hasattr(source, "__len__") and hasattr(source, "__getitem__"):
        if len(source) < n_held + config.initial:
            raise ValueError(
                f"the source holds {len(source)} molecules; val + test + initial need "
                f"{n_held + config.initial}"
            )
        held = DataStream.order_of(len(source), config.train.seed)[:n_held]
        if not store.get_state("held_out"):
            pairs = [(molecule_id(source[i], i), source[i]) for i in held]
            store.hold_out(pairs[: config.val], pairs[config.val :])
        stream = DataStream(source, chunk_size=config.chunk, seed=config.train.seed, exclude=held)
        stream.skip(int(cursor or 0))
        return stream
    stream = DataStream(source, chunk_size=config.chunk)
    if store.get_state("held_out"):
        stream.skip(int(cursor) if cursor is not None else n_held)
    else:
        pairs = stream.next_chunk(n_held)
        if len(pairs) < n_held:
            raise ValueError(
                f"the source ended after {len(pairs)} molecules; val + test need {n_held}"
            )
        store.hold_out(pairs[: config.val], pairs[config.val :])
        if cursor is not None:
            stream.skip(int(cursor) - n_held)
    return stream


def _due(
    store: Store, trigger: RetrainTrigger, latest: DataVersion, model: ModelRecord | None
) -> bool:
    """Whether ``trigger`` asks for a model on ``latest`` (never twice for one version)."""
    if model is None:
        return trigger.should_retrain(latest.size, None)
    if model.data_version == latest.id:
        return False
    return trigger.should_retrain(latest.size, store.get_version(model.data_version).size)


def _loop(
    store: Store,
    stream: DataStream,
    config: OnlineConfig,
    trigger: RetrainTrigger,
    verbose: bool,
) -> None:
    chunks = 0
    strategy = None
    if config.acquire is not None:
        from molgnn.online.acquisition import acquisition_strategy

        strategy = acquisition_strategy(config)
    while True:
        latest = store.latest_version()
        model = store.latest_model()
        if latest is not None and _due(store, trigger, latest, model):
            if verbose:
                print(
                    f"retraining on version {latest.id[:12]} ({latest.size} molecules)", flush=True
                )
            record = train_on_version(store, latest, config, model, verbose)
            plot_learning_curve(store, store.root / "learning_curve.png", verbose=False)
            if verbose:
                print(
                    f"registered model {record.id}: val MAE {record.val_mae:.4g}, "
                    f"test MAE {record.test_mae:.4g}",
                    flush=True,
                )
            continue
        if config.max_chunks is not None and chunks >= config.max_chunks:
            if verbose:
                print(f"stopping after {chunks} chunk(s) (--max-chunks)", flush=True)
            return
        if strategy is not None and latest is not None:
            from molgnn.online.acquisition import acquire_round

            if acquire_round(store, stream, config, strategy, model, verbose) is None:
                if verbose:
                    print("no candidates are left to acquire", flush=True)
                return
            chunks += 1
            continue
        chunk = stream.next_chunk(config.initial if latest is None else None)
        if not chunk:
            if verbose:
                print("the source is exhausted", flush=True)
            return
        version = store.ingest(chunk, stream.position)
        chunks += 1
        if verbose and version is not None:
            print(
                f"ingested {len(chunk)} molecules: version {version.id[:12]} "
                f"({version.size} molecules)",
                flush=True,
            )
