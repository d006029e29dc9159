"""Evaluate a saved model on a split of its dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Dataset
from torch_geometric.loader import DataLoader

from molgnn.io.checkpoint import load_checkpoint, model_from_checkpoint
from molgnn.training.data import dataset_from_checkpoint
from molgnn.training.losses import error_metrics, errors_by_size
from molgnn.training.trainer import predict_batch

__all__ = ["evaluate_checkpoint"]

_SPLITS = ("train", "val", "test")


@torch.no_grad()
def evaluate_checkpoint(
    path: str | Path,
    dataset: Dataset | None = None,
    split: str = "test",
    data_root: str | None = None,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Errors of a checkpoint's model on one split of the data it was trained on.

    Args:
        path: A molgnn checkpoint.
        dataset: The dataset (default: the molecules the checkpoint records, see
            [`dataset_from_checkpoint`][molgnn.training.dataset_from_checkpoint]).
        split: ``"train"``, ``"val"`` or ``"test"`` (default: ``"test"``).
        data_root: Where the dataset lives, overriding the checkpoint's.
        batch_size: Inference batch size (default: ``128``).

    Returns:
        ``mae``, ``rmse`` (target units), ``mae_mev``/``rmse_mev`` for eV targets,
        ``by_size`` (atoms -> count and MAE), ``unit``, and the raw ``pred``, ``y``, ``sizes``
        tensors.
    """
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(_SPLITS)}")
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload)
    if dataset is None:  # the very molecules it was trained on (the ids it records)
        dataset = dataset_from_checkpoint(payload, data_root)
    indices = payload["data"]["split"][split]
    if int(indices.max()) >= len(dataset):
        raise ValueError(f"{path}: split indices do not fit a dataset of {len(dataset)} molecules")
    preds, ys, sizes = [], [], []
    for batch in DataLoader(dataset[indices], batch_size=batch_size):
        pred = predict_batch(model, batch)
        preds.append(pred)
        ys.append(batch.y.view_as(pred))
        sizes.append(torch.bincount(batch.batch, minlength=batch.num_graphs))
    pred, y, size = torch.cat(preds), torch.cat(ys), torch.cat(sizes)
    unit = payload["target"]["units"][0]
    out: dict[str, Any] = {
        "split": split,
        "count": int(y.size(0)),
        "unit": unit,
        **error_metrics(pred, y, unit),
        "pred": pred,
        "y": y,
        "sizes": size,
    }
    out["by_size"] = errors_by_size(pred, y, size, unit)
    return out
