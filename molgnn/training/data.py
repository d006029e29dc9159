"""Datasets and splits for training runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import Dataset

from molgnn.training.config import TrainConfig

__all__ = ["Splits", "default_data_root", "load_dataset", "make_splits"]


def default_data_root() -> Path:
    """``$MOLGNN_DATA`` if set, else ``~/.cache/molgnn``; QM9 lives in its ``qm9`` folder."""
    return Path(os.environ.get("MOLGNN_DATA", Path.home() / ".cache" / "molgnn")).expanduser()


def load_dataset(config: TrainConfig) -> Dataset:
    """The QM9 dataset (or subset) that ``config`` trains on, processed once and cached."""
    from molgnn.data import QM9

    root = Path(config.data_root).expanduser() if config.data_root else default_data_root() / "qm9"
    return QM9(str(root.resolve()), target=config.target, limit=config.subset)


@dataclass(frozen=True)
class Splits:
    """Indices of the training, validation and test molecules (int64 tensors)."""

    train: Tensor
    val: Tensor
    test: Tensor

    def to_dict(self) -> dict[str, Tensor]:
        """For checkpoints."""
        return {"train": self.train, "val": self.val, "test": self.test}


def _count(size: float | None, n: int, name: str) -> int | None:
    if size is None:
        return None
    count = round(size * n) if isinstance(size, float) and size <= 1.0 else int(size)
    if count < 0 or count > n:
        raise ValueError(f"{name} = {size} does not fit a dataset of {n} molecules")
    return count


def make_splits(n: int, config: TrainConfig) -> Splits:
    """Split ``n`` molecules as ``config`` says (sizes as counts or fractions)."""
    from molgnn.data import split_indices

    train = _count(config.train_size, n, "train_size")
    val = _count(config.val_size, n, "val_size")
    test = _count(config.test_size, n, "test_size")
    if train is None or val is None or train < 1 or val < 1:
        raise ValueError(f"need at least one training and one validation molecule (n={n})")
    parts = split_indices(n, train, val, test, seed=config.split_seed)
    tensors = [torch.as_tensor(p, dtype=torch.long) for p in parts]
    if tensors[2].numel() == 0:
        raise ValueError(f"no test molecules left: {n} molecules, train {train}, val {val}")
    return Splits(*tensors)
