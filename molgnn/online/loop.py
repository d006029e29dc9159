"""The online loop: ingest chunks, retrain when the data has grown enough, register models."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data, InMemoryDataset

from molgnn.online.store import ModelRecord, Store
from molgnn.online.stream import DataStream
from molgnn.online.triggers import GrowthTrigger, RetrainTrigger
from molgnn.online.versions import DataVersion

__all__ = ["ListDataset", "OnlineConfig", "plot_learning_curve", "run_online", "train_on_version"]


class ListDataset(InMemoryDataset):
    """An in-memory PyG dataset made from a list of ``Data`` objects."""

    def __init__(self, data_list: list[Data]) -> None:
        super().__init__(None)
        self.data, self.slices = self.collate(data_list)


@dataclass(frozen=True)
class OnlineConfig:
    """Settings of ``molgnn online``.

    Args:
        store: The store's folder.
        model: Model preset (default: ``"et-small"``).
        model_overrides: Changes to the preset's fields.
        target: QM9 target (default: ``"gap"``).
        subset: QM9 molecules the simulated source holds (default: ``2000``).
        initial: Molecules in the first version (default: ``200``).
        chunk: Molecules per later chunk (default: ``100``).
        growth: Retrain when the data has grown by this fraction (default: ``0.25``).
        val: Held-out validation molecules, fixed across versions (default: ``100``).
        test: Held-out test molecules, fixed across versions (default: ``200``).
        epochs: Epochs per retrain (default: ``5``).
        warm_start: Start each retrain from the previous model (default: ``True``).
        seed: Seed of the release order and of training (default: ``0``).
        batch_size: Training batch size (default: ``32``).
        lr: Learning rate (default: ``5e-4``).
        data_root: QM9 folder (default: molgnn's cache).
        max_chunks: Stop after ingesting this many chunks in this run (default: all).
    """

    store: str
    model: str = "et-small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    target: str = "gap"
    subset: int = 2000
    initial: int = 200
    chunk: int = 100
    growth: float = 0.25
    val: int = 100
    test: int = 200
    epochs: int = 5
    warm_start: bool = True
    seed: int = 0
    batch_size: int = 32
    lr: float = 5e-4
    data_root: str | None = None
    max_chunks: int | None = None

    def __post_init__(self) -> None:
        for name in ("initial", "chunk", "val", "test", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.val + self.test + self.initial > self.subset:
            raise ValueError(
                f"val ({self.val}) + test ({self.test}) + initial ({self.initial}) exceed the "
                f"subset of {self.subset} molecules"
            )

    def data_settings(self) -> dict[str, Any]:
        """The settings that fix the data; a store refuses to continue with others."""
        return {k: getattr(self, k) for k in ("target", "subset", "initial", "val", "test", "seed")}


def train_on_version(
    store: Store,
    version: DataVersion,
    config: OnlineConfig,
    parent: ModelRecord | None,
    verbose: bool = True,
) -> ModelRecord:
    """Train a model on one data version and register it.

    The checkpoint is written atomically, renamed to ``models/<sha256>.ckpt``, and only then
    registered in one transaction.
    """
    from molgnn.training import TrainConfig, Trainer, file_sha256, load
    from molgnn.training.data import Splits

    train = store.molecules("train", version)
    val, test = store.molecules("val"), store.molecules("test")
    dataset = ListDataset(train + val + test)
    n_train, n_val = len(train), len(val)
    splits = Splits(
        torch.arange(n_train),
        torch.arange(n_train, n_train + n_val),
        torch.arange(n_train + n_val, len(dataset)),
    )
    with tempfile.TemporaryDirectory(dir=store.root) as work:
        train_config = TrainConfig(
            model=config.model,
            model_overrides=dict(config.model_overrides),
            target=config.target,
            subset=None,
            epochs=config.epochs,
            seed=config.seed,
            batch_size=config.batch_size,
            lr=config.lr,
            warmup_steps=min(200, max(1, config.epochs * n_train // config.batch_size // 4)),
            out_dir=work,
        )
        warm = config.warm_start and parent is not None
        model = load(store.root / parent.checkpoint) if warm and parent is not None else None
        if model is not None:
            model.train()
        trainer = Trainer(
            train_config, dataset=dataset, model=model, splits=splits, progress=verbose
        )
        while not trainer.should_stop:
            metrics = trainer.run_epoch()
            if verbose:
                print(
                    f"  version {version.id[:12]} ({version.size} molecules) "
                    f"epoch {metrics['epoch']}: val MAE {metrics['val_mae']:.4g}",
                    flush=True,
                )
        final = {**trainer.history[trainer.best_epoch - 1], **trainer.test()}
        final["data_size"] = version.size
        tmp_path = Path(work) / "model.ckpt"
        trainer.save_best(str(tmp_path), final)
        digest = file_sha256(tmp_path)
        target = store.root / "models" / f"{digest}.ckpt"
        os.replace(tmp_path, target)
    hyper = {
        k: v
        for k, v in dataclasses.asdict(train_config).items()
        if k not in ("out_dir", "data_root")
    }
    return store.register_model(
        data_version=version.id,
        checkpoint=target,
        checkpoint_sha256=digest,
        parent_model=parent.id if warm and parent is not None else None,
        warm_start=warm,
        config=trainer.model.config.to_dict(),
        hyperparameters=hyper,
        metrics={k: v for k, v in final.items() if not isinstance(v, dict)},
    )


def plot_learning_curve(store: Store, path: Path) -> Path | None:
    """Test MAE against data size of the registered models, as PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("the learning-curve plot needs matplotlib: pip install 'molgnn[plot]'")
        return None
    models = store.models()
    sizes = {v.id: v.size for v in store.versions()}
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([sizes[m.data_version] for m in models], [m.test_mae for m in models], marker="o")
    ax.set(xlabel="training molecules", ylabel="test MAE", title="learning curve")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_online(
    config: OnlineConfig,
    source: Any = None,
    trigger: RetrainTrigger | None = None,
    verbose: bool = True,
) -> Store:
    """Run (or continue) the online loop until the source is exhausted.

    Each chunk is ingested as a new data version; whenever ``trigger`` says so, a model is
    trained on the newest version and registered. The loop can be killed at any moment and
    started again with the same settings: it resumes from the store's committed state.

    Args:
        config: The loop's settings.
        source: The dataset to stream (default: the QM9 subset of ``config``).
        trigger: Retraining policy (default: ``GrowthTrigger(config.growth)``).
        verbose: Print progress (default: ``True``).

    Returns:
        The store.
    """
    store = Store(config.store)
    store.check_settings(config.data_settings())
    removed = store.clean_orphans()
    if removed and verbose:
        print(f"removed {len(removed)} unregistered checkpoint(s) left by an interrupted run")
    trigger = trigger or GrowthTrigger(config.growth)
    if source is None:
        from molgnn.data import QM9
        from molgnn.training.data import default_data_root

        root = Path(config.data_root) if config.data_root else default_data_root() / "qm9"
        source = QM9(str(root.resolve()), target=config.target, limit=config.subset)
    held = DataStream.order_of(len(source), config.seed)[: config.val + config.test]
    if not store.get_state("held_out"):
        val = [(_mid(source, i), source[i]) for i in held[: config.val]]
        test = [(_mid(source, i), source[i]) for i in held[config.val :]]
        store.hold_out(val, test)
    stream = DataStream(source, chunk_size=config.chunk, seed=config.seed, exclude=held)
    stream.skip(int(store.get_state("cursor", 0)))
    chunks = 0
    while True:
        latest = store.latest_version()
        size = 0 if latest is None else latest.size
        model = store.latest_model()
        trained_size = None
        if model is not None:
            trained_size = store.get_version(model.data_version).size
        if latest is not None and model is not None and model.data_version == latest.id:
            trained_size = size
        if latest is not None and trigger.should_retrain(size, trained_size):
            if verbose:
                print(f"retraining on version {latest.id[:12]} ({size} molecules)", flush=True)
            record = train_on_version(store, latest, config, model, verbose)
            if verbose:
                print(f"registered model {record.id}: test MAE {record.test_mae:.4g}", flush=True)
            continue
        if config.max_chunks is not None and chunks >= config.max_chunks:
            break
        chunk = stream.next_chunk(config.initial if latest is None else None)
        if not chunk:
            break
        version = store.ingest(chunk, stream.position)
        chunks += 1
        if verbose and version is not None:
            print(
                f"ingested {len(chunk)} molecules: version {version.id[:12]} ({version.size})",
                flush=True,
            )
    plot_learning_curve(store, store.root / "learning_curve.png")
    return store


def _mid(source: Any, index: int) -> str:
    from molgnn.online.stream import molecule_id

    return molecule_id(source[index], index)
