"""Target standardisation fitted on a training subset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data, Dataset
from torch_geometric.transforms import BaseTransform

from molgnn.transforms._checks import require

__all__ = ["Standardize"]


class Standardize(BaseTransform):
    r"""Standardises ``y``: :math:`y' = (y - \mu) / \sigma` per target column.

    Fit :math:`\mu, \sigma` on the training split only with :meth:`fit`; keep them with the model
    (:meth:`to_dict` / :meth:`from_dict`) and map predictions back with :meth:`inverse`.

    Args:
        mean: Per-target mean, ``[T]``.
        std: Per-target standard deviation, ``[T]`` (all positive).
    """

    def __init__(self, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
        self.std = torch.as_tensor(std, dtype=torch.float64).flatten()
        if self.mean.shape != self.std.shape:
            raise ValueError(
                f"mean and std must have the same length, got {self.mean.numel()} and "
                f"{self.std.numel()}"
            )
        if not (torch.isfinite(self.mean).all() and torch.isfinite(self.std).all()):
            raise ValueError("mean and std must be finite")
        if (self.std <= 0).any():
            raise ValueError(
                f"std must be positive; got {self.std.tolist()} (a constant target cannot be "
                "standardised)"
            )

    @classmethod
    def fit(
        cls,
        source: Dataset | Tensor | Sequence[Data],
        indices: Sequence[int] | Tensor | None = None,
    ) -> Standardize:
        """Fit mean and std on ``source`` (restricted to ``indices``, the training split).

        Args:
            source: A dataset whose items carry ``y`` ``[1, T]``, or the targets ``[M, T]``.
            indices: Rows or items to use (default: all).

        Returns:
            The fitted transform.
        """
        if isinstance(source, Tensor):
            y = source if source.dim() == 2 else source.view(-1, 1)
            if indices is not None:
                y = y[torch.as_tensor(indices, dtype=torch.long)]
        else:
            y_all = getattr(source, "_data", None)
            if (
                y_all is not None
                and getattr(y_all, "y", None) is not None
                and hasattr(source, "_indices")
                and source._indices is None
            ):
                y = y_all.y
                if indices is not None:
                    y = y[torch.as_tensor(indices, dtype=torch.long)]
            else:
                items = range(len(source)) if indices is None else [int(i) for i in indices]
                y = torch.cat([source[i].y.view(1, -1) for i in items])
        if y.size(0) < 2:
            raise ValueError(f"Standardize.fit needs at least 2 molecules, got {y.size(0)}")
        y = y.to(torch.float64)
        return cls(y.mean(dim=0), y.std(dim=0))

    def forward(self, data: Data) -> Data:
        require(data, "y", transform="Standardize")
        data.y = self.transform(data.y)
        return data

    def transform(self, y: Tensor) -> Tensor:
        """Standardise targets ``y`` ``[B, T]``."""
        self._check(y)
        return ((y - self.mean.to(y)) / self.std.to(y)).to(y.dtype)

    def inverse(self, y: Tensor) -> Tensor:
        """Map standardised values ``[B, T]`` back to real units."""
        self._check(y)
        return (y * self.std.to(y) + self.mean.to(y)).to(y.dtype)

    def _check(self, y: Tensor) -> None:
        if y.dim() != 2 or y.size(1) != self.mean.numel():
            raise ValueError(
                f"Standardize was fitted on {self.mean.numel()} target(s); got y of shape "
                f"{list(y.shape)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, safe to store in a checkpoint."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Standardize:
        """Rebuild from :meth:`to_dict`'s output."""
        try:
            return cls(state["mean"], state["std"])
        except KeyError as err:
            raise ValueError(f"Standardize state lacks {err}") from None

    def __repr__(self) -> str:
        mean = ", ".join(f"{v:.4g}" for v in self.mean.tolist())
        std = ", ".join(f"{v:.4g}" for v in self.std.tolist())
        return f"{self.__class__.__name__}(mean=[{mean}], std=[{std}])"
