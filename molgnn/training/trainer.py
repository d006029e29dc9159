"""The training loop: a [`Trainer`][molgnn.training.Trainer] that runs epoch by epoch and can be
saved and resumed."""

from __future__ import annotations

import copy
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Dataset
from torch_geometric.loader import DataLoader

from molgnn.data.keys import atom_reference, get_target
from molgnn.io.checkpoint import load_checkpoint, save_checkpoint
from molgnn.training.allocator import tune_malloc
from molgnn.training.config import TrainConfig
from molgnn.training.data import Splits, dataset_from_checkpoint, load_dataset, make_splits
from molgnn.training.distributed import DataParallel, current_data_parallel
from molgnn.training.ema import WeightEMA
from molgnn.training.losses import error_metrics, errors_by_size, get_loss
from molgnn.training.schedule import WarmupPlateauSchedule

__all__ = ["Trainer", "TrainingDivergedError", "predict_batch", "resolve_device", "seed_everything"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


def predict_batch(model: nn.Module, batch: Batch) -> Tensor:
    """Run ``model`` on a PyG batch, passing precomputed edges when the batch carries them.

    Returns:
        ``[B, T]`` predictions (the energy part when the model also returns forces).
    """
    kwargs = {
        key: getattr(batch, key)
        for key in ("edge_index", "edge_weight", "edge_vec")
        if getattr(batch, key, None) is not None
    }
    out = model(batch.z, batch.pos, batch.batch, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def _all_targets(dataset: Dataset) -> Tensor:
    data = getattr(dataset, "_data", None)
    if data is not None and getattr(data, "y", None) is not None and dataset._indices is None:
        return data.y.view(len(dataset), -1)
    return torch.cat([dataset[i].y.view(1, -1) for i in range(len(dataset))])


def _atom_offsets(dataset: Dataset, indices: Tensor, table: Tensor) -> Tensor:
    offsets = torch.empty(indices.numel(), dtype=torch.float64)
    for k, i in enumerate(indices.tolist()):
        offsets[k] = table[dataset[i].z].sum()
    return offsets


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    np_state: Any = np.random.get_state()
    return {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
        "loader": generator.get_state(),
    }


def _set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(
        ("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0)
    )
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loader"])


class Trainer:
    """Trains one model on one dataset split, one epoch per
    [`run_epoch`][molgnn.training.Trainer.run_epoch] call.

    Standardisation and atom references are fitted on the training split only and stored in
    the model, so the model always predicts in the target's real units.

    Inside a ``torch.distributed`` process group of several processes, the trainer is one
    rank of a data-parallel run ([`molgnn.training.distributed`][molgnn.training.distributed]):
    ``batch_size`` stays the global batch, each rank trains on its slice of it, and every rank
    computes the metrics of the whole validation and test splits; ``model`` is the unwrapped model
    on every rank.

    Args:
        config: The run's configuration.
        dataset: The dataset (default: [`load_dataset`][molgnn.training.load_dataset] of
            ``config``).
        model: A model to train instead of building ``config.model`` (e.g. a warm start).
        splits: Split indices (default: [`make_splits`][molgnn.training.make_splits]).
        progress: Show a per-batch progress bar on a terminal (default: ``True``).
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset | None = None,
        model: nn.Module | None = None,
        splits: Splits | None = None,
        progress: bool = True,
    ) -> None:
        config = config.resolved()  # the model's "auto" prior resolved for the target
        self.config = config
        self.progress = progress
        seed_everything(config.seed)
        self.device = resolve_device(config.device)
        # Data parallelism: None in a single process (nothing below changes then).
        self.data_parallel: DataParallel | None = current_data_parallel()
        if self.data_parallel is not None:
            self.data_parallel.check(config.batch_size)
            self.device = self.data_parallel.local_device(self.device)
        if config.tune_malloc and self.device.type == "cpu":
            tune_malloc()
        self.dataset = dataset if dataset is not None else load_dataset(config)
        self.splits = splits if splits is not None else make_splits(len(self.dataset), config)
        self.target = get_target(config.target)
        if model is None:
            self.model: Any = config.model.build()
            self._fit_normalization()
        else:
            self.model = model
        self.model.to(self.device)
        if config.compile:
            self.model.compile()
        # In a data-parallel run the training step runs the model's DistributedDataParallel
        # wrapper, which all-reduces the gradients.
        self._ddp: nn.Module | None = (
            None if self.data_parallel is None else self.data_parallel.wrap(self.model, self.device)
        )
        # The fused AdamW kernel (one pass over every parameter) where torch has one: on a CPU
        # it takes about a quarter of the time of the default per-parameter loop.
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=True if self.device.type in ("cpu", "cuda") else None,
        )
        self.schedule = WarmupPlateauSchedule(
            self.optimizer,
            config.lr,
            self.warmup_steps,
            config.lr_factor,
            config.lr_patience,
            config.lr_min,
        )
        self.ema = WeightEMA(self.model, config.ema_decay) if config.ema_decay else None
        self.loss_fn = get_loss(config.loss)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epoch = 0
        self.best_val = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, Tensor] = copy.deepcopy(self.model.state_dict())

    # -- set-up ---------------------------------------------------------------------------------
    @property
    def warmup_steps(self) -> int:
        """``config.warmup_steps``, or for ``None`` a quarter of the run's optimiser steps
        (``epochs * train molecules // batch_size // 4``), at least 1 and at most 200."""
        cfg = self.config
        if cfg.warmup_steps is not None:
            return cfg.warmup_steps
        steps = cfg.epochs * len(self.splits.train) // cfg.batch_size // 4
        return min(200, max(1, steps))

    def _fit_normalization(self) -> None:
        """Atom references and mean/std from the training split only."""
        y = _all_targets(self.dataset)[self.splits.train].to(torch.float64)  # [M, T]
        self.atomref_table: Tensor | None = None
        if self.config.uses_atom_reference:
            prior = self.model.prior
            if prior is None:
                raise ValueError(
                    f"model.prior={self.config.model.prior!r} but the model has no prior"  # type: ignore[attr-defined]
                )
            table = torch.tensor(
                atom_reference(self.config.target, max_z=prior.weight.numel()),
                dtype=torch.float64,
            )
            self.atomref_table = table
            with torch.no_grad():
                prior.weight.copy_(table[: prior.weight.numel()].to(prior.weight))
                prior.initial.copy_(prior.weight)
            y = y - _atom_offsets(self.dataset, self.splits.train, table)[:, None]
        if self.config.use_standardize:
            if y.size(0) < 2:
                raise ValueError("standardisation needs at least 2 training molecules")
            self.model.set_standardization(y.mean(0), y.std(0))

    def loaders(self) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Training (shuffled with the trainer's generator), validation and test loaders.

        In a data-parallel run, this rank's share of each (see
        [`molgnn.training.distributed`][molgnn.training.distributed]).
        """
        cfg = self.config
        if self.data_parallel is not None:
            dp = self.data_parallel
            return (
                dp.train_loader(self.dataset[self.splits.train], cfg.batch_size, self.generator),
                dp.eval_loader(self.dataset[self.splits.val], cfg.inference_batch_size),
                dp.eval_loader(self.dataset[self.splits.test], cfg.inference_batch_size),
            )
        train = DataLoader(
            self.dataset[self.splits.train],
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=self.generator,
        )
        val = DataLoader(self.dataset[self.splits.val], batch_size=cfg.inference_batch_size)
        test = DataLoader(self.dataset[self.splits.test], batch_size=cfg.inference_batch_size)
        return train, val, test

    # -- epochs ---------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        enabled = self.config.bf16 and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_epoch(self, loader: DataLoader) -> float:
        """One pass over the training loader; returns the mean training loss."""
        from tqdm.auto import tqdm

        self.model.train()
        total, count = 0.0, 0
        dp = self.data_parallel
        main = dp is None or dp.is_main
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=not (self.progress and main and sys.stderr.isatty()),
        )
        shares = iter(dp.step_shares(len(loader.dataset), self.config.batch_size) if dp else ())
        for batch in bar:
            batch = batch.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                pred = predict_batch(self.model if self._ddp is None else self._ddp, batch)
            loss = self.loss_fn(pred.float(), batch.y.view_as(pred).float())
            step_loss, num_graphs = loss, batch.num_graphs
            if dp is not None:  # this rank's share of the global batch's loss
                local, num_graphs = next(shares)
                loss, step_loss = dp.weigh(loss, local, num_graphs)
            if not torch.isfinite(step_loss):
                raise TrainingDivergedError(
                    f"loss became {step_loss.item()} at epoch {self.epoch + 1}; try a lower lr "
                    f"(now {self.schedule.current_lr:.3g}) or gradient_clip"
                )
            loss.backward()
            if self.config.gradient_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.gradient_clip)
            self.optimizer.step()
            self.schedule.step_batch()
            if self.ema is not None:
                self.ema.update(self.model)
            total += step_loss.item() * num_graphs
            count += num_graphs
            bar.set_postfix(loss=f"{step_loss.item():.4g}", lr=f"{self.schedule.current_lr:.2e}")
        return total / max(count, 1)

    @torch.no_grad()
    def predict(self, loader: DataLoader) -> tuple[Tensor, Tensor, Tensor]:
        """Predictions, targets ``[M, T]`` and atom counts ``[M]`` over a loader (eval mode).

        Uses the EMA weights when EMA is on.
        """
        self.model.eval()
        if self.ema is not None:
            self.ema.swap(self.model)
        try:
            preds, ys, sizes = [], [], []
            for batch in loader:
                batch = batch.to(self.device)
                with self._autocast():
                    pred = predict_batch(self.model, batch)
                preds.append(pred.float().cpu())
                ys.append(batch.y.view_as(pred).float().cpu())
                sizes.append(torch.bincount(batch.batch, minlength=batch.num_graphs).cpu())
        finally:
            if self.ema is not None:
                self.ema.swap(self.model)
        return torch.cat(preds), torch.cat(ys), torch.cat(sizes)

    def _predict_split(self, loader: DataLoader) -> tuple[Tensor, Tensor, Tensor]:
        """[`predict`][molgnn.training.Trainer.predict] over a whole split; in a data-parallel run,
        every rank's block of the split gathered in order, on every rank."""
        dp = self.data_parallel
        if dp is None:
            return self.predict(loader)
        rows = loader.batch_sampler.rows()
        width = int(self.dataset[int(self.splits.train[0])].y.numel())  # targets T
        if rows[dp.rank]:
            pred, y, sizes = self.predict(loader)
        else:  # fewer batches than ranks: this rank has none
            pred, y, sizes = torch.empty(0, width), torch.empty(0, width), torch.empty(0)
        table = dp.gather([pred, y, sizes[:, None]], rows, self.device)  # [M, 2T + 1]
        return (
            table[:, :width].float(),
            table[:, width : 2 * width].float(),
            table[:, 2 * width].long(),
        )

    def _metrics(self, prefix: str, pred: Tensor, y: Tensor) -> dict[str, float]:
        out = error_metrics(pred, y, self.target.unit, prefix=f"{prefix}_")
        out[f"{prefix}_loss"] = float(self.loss_fn(pred, y))
        return out

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, validate, step the schedule and track the best weights.

        Returns:
            The epoch's metrics: ``epoch``, ``train_loss``, ``val_mae`` (target units),
            ``val_mae_mev`` (eV targets), ``val_rmse``, ``lr``, ``time``.
        """
        train_loader, val_loader, _ = self.loaders()
        start = time.perf_counter()
        train_loss = self.train_epoch(train_loader)
        pred, y, _ = self._predict_split(val_loader)
        metrics: dict[str, Any] = {"epoch": self.epoch + 1, "train_loss": train_loss}
        metrics.update(self._metrics("val", pred, y))
        self.schedule.step_epoch(metrics["val_loss"])
        self.epoch += 1
        seconds = time.perf_counter() - start
        if self.data_parallel is not None:  # the slowest rank's, so max_time stops all at once
            seconds = self.data_parallel.max(seconds, self.device)
        self.elapsed += seconds
        metrics["lr"] = self.schedule.current_lr
        metrics["time"] = self.elapsed
        if metrics["val_mae"] < self.best_val:
            self.best_val = metrics["val_mae"]
            self.best_epoch = self.epoch
            self.bad_epochs = 0
            if self.ema is not None:
                self.ema.swap(self.model)
            self.best_state = copy.deepcopy(self.model.state_dict())
            if self.ema is not None:
                self.ema.swap(self.model)
        else:
            self.bad_epochs += 1
        metrics["best_val_mae"] = self.best_val
        self.history.append(metrics)
        return metrics

    @property
    def should_stop(self) -> bool:
        """Whether early stopping, the epoch limit or the time limit has been reached."""
        cfg = self.config
        return (
            self.epoch >= cfg.epochs
            or self.bad_epochs >= cfg.early_stopping_patience
            or (cfg.max_time is not None and self.elapsed >= cfg.max_time)
        )

    def test(self) -> dict[str, Any]:
        """Test-split metrics with the best weights, overall and by molecule size."""
        current = copy.deepcopy(self.model.state_dict())
        ema, self.ema = self.ema, None  # best_state already holds the averaged weights
        self.model.load_state_dict(self.best_state)
        try:
            pred, y, sizes = self._predict_split(self.loaders()[2])
        finally:
            self.model.load_state_dict(current)
            self.ema = ema
        metrics: dict[str, Any] = self._metrics("test", pred, y)
        by_size = {str(n): v for n, v in errors_by_size(pred, y, sizes, self.target.unit).items()}
        metrics["test_mae_by_size"] = by_size
        return metrics

    # -- persistence ----------------------------------------------------------------------------
    def _model_payload(self, state: dict[str, Tensor], metrics: dict[str, Any]) -> dict[str, Any]:
        config: Any = getattr(self.model, "config", None)
        if not callable(getattr(config, "to_dict", None)):
            raise ValueError(
                f"a checkpoint needs a molgnn model, which carries a model config to rebuild it "
                f"from; this {type(self.model).__name__} has none: keep its weights with "
                "torch.save(model.state_dict(), path)"
            )
        model_config = config.to_dict()
        return {
            "model_config": model_config,
            "state_dict": state,
            "target": {"names": [self.target.name], "units": [self.target.unit]},
            "normalization": {
                "standardize": self.config.use_standardize,
                "atomref": self.config.uses_atom_reference,
            },
            "data": {
                "dataset": type(self.dataset).__name__,
                "subset": self.config.subset,
                "subset_seed": self.config.subset_seed,
                # QM9 ids in dataset order, so the run's molecules can be rebuilt exactly
                # (molgnn.training.data.dataset_from_checkpoint); None for datasets without them.
                "molecule_ids": self._molecule_ids(),
                "split": self.splits.to_dict(),
                "version": getattr(self.dataset, "version", None),
                "elements": self._elements(),
                # Atoms of the largest training molecule: molgnn.predict warns beyond it. Read
                # from the collated sizes of an in-memory dataset, else molecule by molecule.
                "max_atoms": int(
                    torch.diff(self.dataset.slices["z"])[
                        torch.as_tensor(list(self.dataset.indices()))[self.splits.train]
                    ].max()
                    if "z" in (getattr(self.dataset, "slices", None) or {})
                    else max(int(self.dataset[i].z.numel()) for i in self.splits.train.tolist())
                ),
            },
            "metrics": metrics,
            "train_config": self.config.to_dict(),
        }

    def _molecule_ids(self) -> Tensor | None:
        ids = getattr(self.dataset, "molecule_ids", None)
        return None if ids is None else torch.as_tensor(np.asarray(ids), dtype=torch.long)

    def _elements(self) -> list[int]:
        """Elements present in the training data (prediction refuses others)."""
        data = getattr(self.dataset, "_data", None)
        if data is not None and getattr(data, "z", None) is not None:
            return sorted(int(v) for v in data.z.unique())
        found: set[int] = set()
        for i in self.splits.train.tolist():
            found.update(int(v) for v in self.dataset[i].z.unique())
        return sorted(found)

    def save(self, path: str | Path, include_training_state: bool = True) -> None:
        """Write a checkpoint of the current weights (atomically); resumable by default."""
        payload = self._model_payload(
            self.model.state_dict(), self.history[-1] if self.history else {}
        )
        if include_training_state:
            payload["training_state"] = {
                "epoch": self.epoch,
                "best_val": self.best_val,
                "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs,
                "elapsed": self.elapsed,
                "history": self.history,
                "best_state": self.best_state,
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "rng": _rng_state(self.generator),
            }
        save_checkpoint(payload, path)

    def save_best(
        self, path: str | Path, metrics: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> None:
        """Write the best weights (no training state) with ``metrics``.

        ``extra`` adds top-level keys (for example the online registry's record of the model);
        it may not replace the checkpoint's own keys.
        """
        payload = self._model_payload(self.best_state, metrics)
        clash = sorted(set(extra or {}) & set(payload))
        if clash:
            raise ValueError(f"extra checkpoint keys {clash} would replace the checkpoint's own")
        save_checkpoint({**payload, **(extra or {})}, path)

    def load(self, path: str | Path) -> None:
        """Restore, in place, the state [`save`][molgnn.training.Trainer.save] wrote (weights,
        optimiser, schedule, EMA, early stopping, history and random states)."""
        payload = load_checkpoint(path)
        state = payload.get("training_state")
        if state is None:
            raise ValueError(f"{path} has no training state; only last.ckpt files can be resumed")
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.epoch = int(state["epoch"])
        self.best_val = float(state["best_val"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.elapsed = float(state["elapsed"])
        self.history = list(state["history"])
        self.best_state = state["best_state"]
        _set_rng_state(state["rng"], self.generator)

    @classmethod
    def resume(
        cls, path: str | Path, dataset: Dataset | None = None, progress: bool = True
    ) -> Trainer:
        """Rebuild a trainer from a resumable checkpoint written by
        [`save`][molgnn.training.Trainer.save]."""
        payload = load_checkpoint(path)
        if payload.get("training_state") is None:
            raise ValueError(f"{path} has no training state; only last.ckpt files can be resumed")
        config = TrainConfig.from_checkpoint(payload)
        split = payload["data"]["split"]
        splits = Splits(split["train"], split["val"], split["test"])
        if dataset is None:
            dataset = dataset_from_checkpoint(payload)
        trainer = cls(config, dataset=dataset, splits=splits, progress=progress)
        trainer.load(path)
        return trainer
