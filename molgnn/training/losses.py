"""Losses and error metrics."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["LOSSES", "get_loss", "mae", "rmse"]

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
