"""Losses and error metrics."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from molgnn.data.keys import MEV_PER_EV, ev_to_mev

__all__ = ["LOSSES", "error_metrics", "errors_by_size", "get_loss", "mae", "rmse"]

#: Loss name -> function of (prediction, target).
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": torch.nn.functional.mse_loss,
    "l1": torch.nn.functional.l1_loss,
}


def get_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss called ``name``; unknown names raise ValueError listing the valid ones."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}") from None


def mae(pred: Tensor, target: Tensor) -> float:
    """Mean absolute error."""
    return float((pred - target).abs().mean())


def rmse(pred: Tensor, target: Tensor) -> float:
    """Root mean squared error."""
    return float((pred - target).pow(2).mean().sqrt())


def error_metrics(pred: Tensor, target: Tensor, unit: str, prefix: str = "") -> dict[str, float]:
    """MAE and RMSE of ``pred`` against ``target`` (any equal shapes), and for a target in eV
    also in meV (``mae_mev``, ``rmse_mev``); keys start with ``prefix`` (e.g. ``"val_"``)."""
    out = {f"{prefix}mae": mae(pred, target), f"{prefix}rmse": rmse(pred, target)}
    if unit == "eV":
        out[f"{prefix}mae_mev"] = ev_to_mev(out[f"{prefix}mae"])
        out[f"{prefix}rmse_mev"] = ev_to_mev(out[f"{prefix}rmse"])
    return out


def errors_by_size(
    pred: Tensor, target: Tensor, sizes: Tensor, unit: str
) -> dict[int, dict[str, float]]:
    """The MAE by molecule size (meV for a target in eV, else its unit) and the count.

    Args:
        pred: ``[M, T]`` predictions.
        target: ``[M, T]`` targets.
        sizes: ``[M]`` atoms per molecule.
        unit: The target's unit.

    Returns:
        Atom count -> ``{"count": ..., "mae": ...}``, smallest molecules first.
    """
    scale = MEV_PER_EV if unit == "eV" else 1.0
    out = {}
    for n in sizes.unique().tolist():
        mask = sizes == n
        out[int(n)] = {"count": int(mask.sum()), "mae": mae(pred[mask], target[mask]) * scale}
    return out
