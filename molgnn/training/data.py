"""Datasets and splits for training runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Dataset

from molgnn.data.paths import qm9_root
from molgnn.training.config import TrainConfig

__all__ = ["Splits", "dataset_from_checkpoint", "load_dataset", "make_splits"]


def load_dataset(config: TrainConfig) -> Dataset:
    """The QM9 dataset that ``config`` trains on, processed once and cached.

    ``config.subset`` molecules drawn at random from all of QM9 with ``config.subset_seed``
    (see [`QM9`][molgnn.data.QM9]), or all of them for ``subset=None``.
    """
    from molgnn.data import QM9

    return QM9(
        str(qm9_root(config.data_root)),
        target=config.target,
        subset=config.subset,
        subset_seed=config.subset_seed,
    )


def dataset_from_checkpoint(
    checkpoint: str | Path | Mapping[str, Any], data_root: str | None = None
) -> Dataset:
    """The QM9 molecules a checkpoint was trained on, in the order its split indices refer to.

    A checkpoint records the QM9 ids of its dataset (``data["molecule_ids"]``). The dataset is
    rebuilt from the recorded training config (``subset``, ``subset_seed``, ``target``) and
    checked against those ids; where they differ (a dataset passed to ``fit`` directly, or
    another copy of QM9), the recorded molecules are taken from the full set by id. Checkpoints
    written before ids were recorded used the first ``subset`` molecules in file order.

    Args:
        checkpoint: A checkpoint file or its loaded contents.
        data_root: Where QM9 lives, overriding the checkpoint's ``data_root``.

    Raises:
        ValueError: if the checkpoint's molecules were not QM9's (e.g. an online store's data
            version) or some of its ids are not in the QM9 source.
    """
    from molgnn.data import QM9
    from molgnn.io.checkpoint import load_checkpoint

    payload = checkpoint if isinstance(checkpoint, Mapping) else load_checkpoint(checkpoint)
    config = TrainConfig.from_checkpoint(payload)
    if data_root is not None:
        config = config.replace(data_root=data_root)
    record = payload.get("data") or {}
    if "molecule_ids" not in record:  # written before subsets were random draws
        return QM9(str(qm9_root(config.data_root)), target=config.target, first=config.subset)
    if record["molecule_ids"] is None:
        raise ValueError(
            f"the checkpoint's {record.get('dataset')} dataset has no QM9 ids to rebuild it from"
        )
    ids = np.asarray(record["molecule_ids"], dtype=np.int64)
    dataset = load_dataset(config)
    if np.array_equal(dataset.molecule_ids, ids):
        return dataset
    full = QM9(str(qm9_root(config.data_root)), target=config.target)
    position = {int(m): i for i, m in enumerate(full.molecule_ids.tolist())}
    missing = [int(m) for m in ids if int(m) not in position]
    if missing:
        raise ValueError(
            f"{len(missing)} of the checkpoint's {len(ids)} molecules are not in the QM9 source "
            f"(e.g. ids {missing[:5]})"
        )
    return full[torch.tensor([position[int(m)] for m in ids], dtype=torch.long)]


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
