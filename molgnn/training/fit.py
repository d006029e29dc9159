"""``fit(config)``: the whole training run, with checkpoints, logs, resume and a test at the end."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch_geometric.data import Dataset

from molgnn.training.config import TrainConfig
from molgnn.training.logs import write_atomic, write_logs
from molgnn.training.trainer import Trainer

__all__ = ["EpochCallback", "FitResult", "fit"]

#: Called after every epoch with the trainer and the epoch's metrics.
EpochCallback = Callable[[Trainer, dict[str, Any]], None]


@dataclass
class FitResult:
    """What a training run produced."""

    metrics: dict[str, Any]
    best_checkpoint: Path
    last_checkpoint: Path
    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    model: nn.Module | None = None


def _format_epoch(m: dict[str, Any], unit: str) -> str:
    mev = "val_mae_mev" in m
    val = f"val MAE {m['val_mae_mev']:.1f} meV" if mev else f"val MAE {m['val_mae']:.4g} {unit}"
    return (
        f"epoch {m['epoch']:>3}  train loss {m['train_loss']:.4g}  {val}  "
        f"lr {m['lr']:.2e}  {m['time']:.0f}s"
    )


def fit(
    config: TrainConfig,
    dataset: Dataset | None = None,
    resume: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    model: nn.Module | None = None,
    verbose: bool = True,
) -> FitResult:
    """Train as ``config`` says; write ``last.ckpt``, ``best.ckpt`` and logs to ``out_dir``.

    ``last.ckpt`` is written after every epoch, so a run killed at any moment loses at most the
    epoch in progress, and ``resume=True`` continues from it with the optimiser, schedule, EMA,
    early-stopping and random states. At the end the best weights are tested on the test split.

    Args:
        config: The run's configuration.
        dataset: A dataset to train on instead of loading ``config``'s.
        resume: Continue from ``out_dir/last.ckpt`` if it exists.
        callbacks: Functions called after every epoch as ``callback(trainer, metrics)``.
        model: A model to train (e.g. a warm start) instead of building ``config.model``.
        verbose: Print one line per epoch and the summary (default: ``True``).

    Returns:
        A :class:`FitResult` with the final metrics (``test_mae``, ``test_mae_mev``, ...).
    """
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last, best = out / "last.ckpt", out / "best.ckpt"
    if resume and last.is_file():
        trainer = Trainer.resume(str(last), dataset=dataset, progress=verbose)
        if trainer.config.replace(out_dir=config.out_dir) != config.replace(
            out_dir=config.out_dir, epochs=trainer.config.epochs
        ):
            print(f"resuming {last}: using the configuration stored in the checkpoint")
        trainer.config = trainer.config.replace(epochs=config.epochs)
        if verbose:
            print(f"resumed from {last} at epoch {trainer.epoch}")
    else:
        trainer = Trainer(config, dataset=dataset, model=model, progress=verbose)
    unit = trainer.target.unit
    if verbose:
        n = trainer.splits
        print(
            f"training {config.model} on {config.target} ({unit}): {len(n.train)} train / "
            f"{len(n.val)} val / {len(n.test)} test molecules on {trainer.device}"
        )
    write_atomic(out / "config.json", json.dumps(trainer.config.to_dict(), indent=2))
    while not trainer.should_stop:
        metrics = trainer.run_epoch()
        trainer.save(str(last))
        if trainer.best_epoch == trainer.epoch:
            trainer.save_best(str(best), metrics)
        write_logs(out, trainer.history)
        if verbose:
            print(_format_epoch(metrics, unit), flush=True)
        for callback in callbacks:
            callback(trainer, metrics)
    test = trainer.test()
    final = {**(trainer.history[trainer.best_epoch - 1] if trainer.best_epoch > 0 else {}), **test}
    final["best_epoch"] = trainer.best_epoch
    final["epochs_run"] = trainer.epoch
    trainer.save_best(str(best), final)
    write_atomic(out / "metrics.json", json.dumps(final, indent=2))
    if verbose:
        if "test_mae_mev" in final:
            print(f"test MAE {final['test_mae_mev']:.1f} meV (best epoch {trainer.best_epoch})")
        else:
            print(f"test MAE {final['test_mae']:.4g} {unit} (best epoch {trainer.best_epoch})")
        print(f"best model: {best}")
    return FitResult(final, best, last, out, trainer.history, trainer.model)
