"""Target standardisation fitted on a training subset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data, Dataset, InMemoryDataset
from torch_geometric.transforms import BaseTransform

from molgnn.transforms._checks import describe, require

__all__ = ["Standardize"]


def _stored_targets(source: Any) -> Tensor | None:
    """All targets of an untransformed in-memory dataset ``[M, T]`` without building items."""
    if getattr(source, "transform", None) is not None:
        return None  # the items' y may differ from the stored one
    values = getattr(source, "target_values", None)
    if callable(values):
        y = values()
        return y if isinstance(y, Tensor) else None
    if not isinstance(source, InMemoryDataset):
        return None
    y = getattr(source._data, "y", None)
    if not isinstance(y, Tensor) or y.dim() == 0 or y.size(0) != source.len():
        return None  # not one row per molecule
    y = y.reshape(y.size(0), -1)
    if source._indices is not None:
        y = y[torch.as_tensor(list(source.indices()), dtype=torch.long)]
    return y


class Standardize(BaseTransform):
    r"""Standardises the targets per column: $y' = (y - \mu) / \sigma$.

    Fit $\mu, \sigma$ on the training split only with [`fit`][molgnn.transforms.Standardize.fit];
    keep them with the model ([`to_dict`][molgnn.transforms.Standardize.to_dict] /
    [`from_dict`][molgnn.transforms.Standardize.from_dict], or
    [`state_dict`][molgnn.transforms.Standardize.state_dict]) and map predictions back to real units
    with [`inverse`][molgnn.transforms.Standardize.inverse]. Statistics are stored in float64;
    results keep the dtype of ``y``.

    Args:
        mean: Per-target mean $\mu$, ``[T]``.
        std: Per-target standard deviation $\sigma$, ``[T]`` (all positive).

    Shapes:
        - **input:** y ``[1, T]`` (in a ``Data``) or ``[B, T]``
          ([`transform`][molgnn.transforms.Standardize.transform],
          [`inverse`][molgnn.transforms.Standardize.inverse])
        - **output:** the same shape
    """

    def __init__(self, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
        self.std = torch.as_tensor(std, dtype=torch.float64).flatten()
        if self.mean.shape != self.std.shape or self.mean.numel() == 0:
            raise ValueError(
                f"mean and std must have the same non-zero length, got {self.mean.numel()} and "
                f"{self.std.numel()}"
            )
        if not (torch.isfinite(self.mean).all() and torch.isfinite(self.std).all()):
            raise ValueError(
                f"mean and std must be finite, got mean={self.mean.tolist()}, "
                f"std={self.std.tolist()}"
            )
        if (self.std <= 0).any():
            bad = (self.std <= 0).nonzero().flatten().tolist()
            raise ValueError(
                f"std must be positive, but column(s) {bad} have std {self.std[bad].tolist()} "
                "(a constant target cannot be standardised)"
            )

    @classmethod
    def fit(
        cls,
        source: Dataset | Tensor | Sequence[Data],
        indices: Sequence[int] | Tensor | None = None,
    ) -> Standardize:
        """Fit the mean and the (unbiased) standard deviation of each target column.

        Pass the training indices so that no validation or test value leaks into the
        statistics. An untransformed in-memory dataset (such as
        [`molgnn.data.QM9`][molgnn.data.QM9]) is read from its storage in one step; other datasets
        are read item by item, with their ``transform`` applied (so ``y`` is fitted as the model
        will see it).

        Args:
            source: A dataset or list whose items carry ``y`` ``[1, T]``, or the targets
                ``[M, T]`` (or ``[M]``) themselves.
            indices: Rows or items to use (default: ``None``, all).

        Returns:
            The fitted transform.

        Raises:
            ValueError: for fewer than 2 molecules, non-finite targets or a constant column.
        """
        if isinstance(source, Tensor):
            y = source if source.dim() == 2 else source.reshape(-1, 1)
        else:
            stored = _stored_targets(source)
            if stored is not None:
                y = stored
            else:
                items = range(len(source)) if indices is None else [int(i) for i in indices]
                rows = []
                for i in items:
                    item = source[i]
                    if getattr(item, "y", None) is None:
                        raise ValueError(f"Standardize.fit: item {i} has no y")
                    rows.append(item.y.reshape(1, -1))
                y = torch.cat(rows) if rows else torch.zeros(0, 1)
                indices = None  # already applied
        if indices is not None:
            index = torch.as_tensor(indices, dtype=torch.long)
            if index.numel() and (int(index.min()) < -y.size(0) or int(index.max()) >= y.size(0)):
                raise ValueError(f"indices out of range for {y.size(0)} molecules")
            y = y[index]
        if y.size(0) < 2:
            raise ValueError(f"Standardize.fit needs at least 2 molecules, got {y.size(0)}")
        y = y.to(torch.float64)
        if not bool(torch.isfinite(y).all()):
            rows = (~torch.isfinite(y)).any(dim=1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"Standardize.fit: targets are NaN or infinite in rows {rows}")
        return cls(y.mean(dim=0), y.std(dim=0))

    def forward(self, data: Data) -> Data:
        require(data, "y", transform="Standardize")
        try:
            data.y = self.transform(data.y)
        except ValueError as err:
            raise ValueError(f"{describe(data)}: {err}") from None
        return data

    def transform(self, y: Tensor) -> Tensor:
        """Standardise targets ``y`` ``[B, T]``."""
        self._check(y)
        return ((y.to(torch.float64) - self.mean.to(y.device)) / self.std.to(y.device)).to(y.dtype)

    def inverse(self, y: Tensor) -> Tensor:
        """Map standardised values ``[B, T]`` (such as predictions) back to real units."""
        self._check(y)
        return (y.to(torch.float64) * self.std.to(y.device) + self.mean.to(y.device)).to(y.dtype)

    def _check(self, y: Tensor) -> None:
        if not y.is_floating_point():
            raise ValueError(f"Standardize needs floating-point y, got {y.dtype}")
        if y.dim() != 2 or y.size(1) != self.mean.numel():
            raise ValueError(
                f"Standardize was fitted on {self.mean.numel()} target(s); got y of shape "
                f"{list(y.shape)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """``{"mean": [...], "std": [...]}`` as plain lists, safe to store in a checkpoint."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def state_dict(self) -> dict[str, Any]:
        """The same as [`to_dict`][molgnn.transforms.Standardize.to_dict], under PyTorch's name
        for it."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Standardize:
        """Rebuild from the output of [`to_dict`][molgnn.transforms.Standardize.to_dict] or
        [`state_dict`][molgnn.transforms.Standardize.state_dict]."""
        try:
            return cls(state["mean"], state["std"])
        except KeyError as err:
            raise ValueError(f"Standardize state lacks {err}; it has {sorted(state)}") from None

    def __repr__(self) -> str:
        mean = ", ".join(f"{v:.4g}" for v in self.mean.tolist())
        std = ", ".join(f"{v:.4g}" for v in self.std.tolist())
        return f"{self.__class__.__name__}(mean=[{mean}], std=[{std}])"
