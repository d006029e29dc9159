"""``fit(config)``: the whole training run, with checkpoints, logs, resume and a test at the end."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Dataset

from molgnn.io.atomic import write_atomic
from molgnn.io.checkpoint import load_checkpoint, model_from_checkpoint
from molgnn.training.config import TrainConfig
from molgnn.training.data import load_dataset
from molgnn.training.distributed import DataParallel, current_data_parallel, spawn_local
from molgnn.training.logs import write_logs
from molgnn.training.loop import EpochCallback, final_metrics, run_epochs
from molgnn.training.trainer import Trainer, resolve_device

__all__ = ["FitResult", "fit"]


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

    With ``config.devices > 1`` the run is data-parallel
    ([`molgnn.training.distributed`][molgnn.training.distributed]): ``fit`` starts that many local
    processes (one per GPU, or CPU processes with Gloo) on 127.0.0.1, runs the same ``fit`` in each,
    and returns what rank 0 wrote; only rank 0 writes checkpoints and logs. The global batch is
    ``batch_size`` as in one process, so a run can be resumed with another ``devices``. Called
    inside a process group that is already set up (``torchrun``), ``fit`` is one rank of it and
    starts nothing.

    Args:
        config: The run's configuration.
        dataset: A dataset to train on instead of loading ``config``'s.
        resume: Continue from ``out_dir/last.ckpt`` if it exists.
        callbacks: Functions called after every epoch as ``callback(trainer, metrics)``
            (single-process runs only: with ``devices > 1`` they would run in other processes).
        model: A model to train (e.g. a warm start) instead of building ``config.model``.
        verbose: Print one line per epoch and the summary (default: ``True``).

    Returns:
        A [`FitResult`][molgnn.training.FitResult] with the final metrics (``test_mae``,
        ``test_mae_mev``, ...).

    Raises:
        ValueError: for ``devices > 1`` with ``callbacks``, with a ``device`` of ``cuda:N``,
            with more devices than torch sees GPUs or a ``batch_size`` below ``devices``; an
            error in one of the processes is raised again here.
    """
    data_parallel = current_data_parallel()
    if config.devices > 1 and data_parallel is None:
        return _fit_data_parallel(config, dataset, resume, callbacks, model, verbose)
    main = data_parallel is None or data_parallel.is_main  # rank 0 writes and prints
    verbose = verbose and main
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last, best = out / "last.ckpt", out / "best.ckpt"
    if resume and last.is_file():
        trainer = Trainer.resume(str(last), dataset=dataset, progress=verbose)
        stored = trainer.config.replace(out_dir=config.out_dir, devices=config.devices)
        if main and stored != config.resolved().replace(epochs=trainer.config.epochs):
            print(f"resuming {last}: using the configuration stored in the checkpoint")
        # The epoch limit and the number of devices are the caller's (the global batches do
        # not depend on the number of devices).
        trainer.config = trainer.config.replace(epochs=config.epochs, devices=config.devices)
        if verbose:
            print(f"resumed from {last} at epoch {trainer.epoch}")
    else:
        trainer = Trainer(config, dataset=dataset, model=model, progress=verbose)
    unit = trainer.target.unit
    if verbose:
        n = trainer.splits
        params = sum(p.numel() for p in trainer.model.parameters())
        print(
            f"training a {trainer.config.model.kind} model ({params:,} parameters) on "
            f"{config.target} ({unit}): {len(n.train)} train / {len(n.val)} val / "
            f"{len(n.test)} test molecules on {trainer.device}"
        )
    if main:
        write_atomic(out / "config.json", json.dumps(trainer.config.to_dict(), indent=2))

    def checkpoint(trainer: Trainer, metrics: dict[str, Any]) -> None:
        if not main:
            return
        trainer.save(str(last))
        if trainer.best_epoch == trainer.epoch:
            trainer.save_best(str(best), metrics)
        write_logs(out, trainer.history)
        if verbose:
            print(_format_epoch(metrics, unit), flush=True)

    run_epochs(trainer, [checkpoint, *callbacks])
    final = final_metrics(trainer)  # collective in a data-parallel run: every rank tests
    if main:
        trainer.save_best(str(best), final)
        write_atomic(out / "metrics.json", json.dumps(final, indent=2))
    if verbose:
        if "test_mae_mev" in final:
            print(f"test MAE {final['test_mae_mev']:.1f} meV (best epoch {trainer.best_epoch})")
        else:
            print(f"test MAE {final['test_mae']:.4g} {unit} (best epoch {trainer.best_epoch})")
        print(f"best model: {best}")
    return FitResult(final, best, last, out, trainer.history, trainer.model)


def _device_type(config: TrainConfig) -> str:
    """``"cuda"`` or ``"cpu"``: where the ``config.devices`` processes of a run train."""
    if config.device.startswith("cuda:"):
        raise ValueError(
            f"devices={config.devices} trains on GPUs 0 to {config.devices - 1}: set device to "
            f"'cuda' or 'auto', not {config.device!r} (choose the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    kind = resolve_device(config.device).type
    if kind == "cuda" and torch.cuda.device_count() < config.devices:
        raise ValueError(
            f"devices={config.devices} needs one GPU per process, but torch sees "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
    return kind


def _fit_rank(
    config: TrainConfig,
    dataset: Dataset | None,
    resume: bool,
    model: nn.Module | None,
    verbose: bool,
) -> None:
    """One process of a data-parallel [`fit`][molgnn.training.fit.fit] (inside the group
    ``spawn_local`` made)."""
    fit(config, dataset=dataset, resume=resume, model=model, verbose=verbose)


def _fit_data_parallel(
    config: TrainConfig,
    dataset: Dataset | None,
    resume: bool,
    callbacks: Sequence[EpochCallback],
    model: nn.Module | None,
    verbose: bool,
) -> FitResult:
    """Run [`fit`][molgnn.training.fit.fit] in ``config.devices`` local processes; the result is
    rank 0's."""
    if callbacks:
        raise ValueError(
            f"fit(callbacks=...) needs a single-process run; devices={config.devices} trains in "
            f"{config.devices} other processes"
        )
    DataParallel(rank=0, world_size=config.devices).check(config.batch_size)
    device_type = _device_type(config)
    out = Path(config.out_dir)
    last, best = out / "last.ckpt", out / "best.ckpt"
    if dataset is None and not (resume and last.is_file()):
        load_dataset(config)  # process the dataset once, before the processes load it
    spawn_local(_fit_rank, (config, dataset, resume, model, verbose), config.devices, device_type)
    payload = load_checkpoint(last)
    metrics = json.loads((out / "metrics.json").read_text())
    history = list(payload["training_state"]["history"])
    return FitResult(
        metrics, best, last, out, history, model_from_checkpoint(payload, source=str(last))
    )
