"""Per-element reference energies, subtracted from the targets (and added back)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import ELEMENT_SYMBOLS, atom_reference
from molgnn.nn.scatter import scatter_sum
from molgnn.transforms._checks import describe, require

__all__ = ["AtomRef"]


class AtomRef(BaseTransform):
    r"""Subtracts the sum of per-element reference values from ``y``; :meth:`inverse` adds it back.

    .. math::
        y' = y - \sum_{i \in \text{atoms}} E_{\text{ref}}(z_i)

    With QM9's isolated-atom energies this turns the total energy U0 into the atomization
    energy, which is far easier to learn.

    Args:
        reference: Reference value per atomic number, a ``[max_z]`` sequence or a mapping
            ``{z: value}`` (default: QM9's atom energies of ``target``, in eV).
        target: QM9 target whose published references are used when ``reference`` is not
            given (default: ``"U0"``).
        columns: Columns of ``y`` ``[1, T]`` to correct (default: all).
    """

    def __init__(
        self,
        reference: Sequence[float] | Mapping[int, float] | Tensor | None = None,
        target: str = "U0",
        columns: Sequence[int] | None = None,
    ) -> None:
        if reference is None:
            table = torch.tensor(atom_reference(target), dtype=torch.float64)
        elif isinstance(reference, Mapping):
            size = max(int(k) for k in reference) + 1 if reference else 1
            table = torch.zeros(size, dtype=torch.float64)
            for z, value in reference.items():
                table[int(z)] = float(value)
        else:
            table = torch.as_tensor(reference, dtype=torch.float64).flatten()
        if not torch.isfinite(table).all():
            raise ValueError("AtomRef reference values must be finite")
        self.reference = table
        self.target = target if reference is None else None
        self.columns = None if columns is None else [int(c) for c in columns]

    def offsets(
        self, z: Tensor, batch: Tensor | None = None, num_graphs: int | None = None
    ) -> Tensor:
        """Sum of the reference values per molecule.

        Args:
            z: Atomic numbers, ``[N]``.
            batch: Molecule index of each atom, ``[N]`` (default: one molecule).
            num_graphs: Number of molecules ``B`` (default: ``batch.max() + 1``).

        Returns:
            ``[B]`` (float64).
        """
        if z.numel() and int(z.max()) >= self.reference.numel():
            bad = sorted({int(v) for v in z[z >= self.reference.numel()].unique()})
            raise ValueError(
                "AtomRef has no reference value for element(s) "
                + ", ".join(ELEMENT_SYMBOLS[v] if v < len(ELEMENT_SYMBOLS) else str(v) for v in bad)
            )
        per_atom = self.reference.to(z.device)[z]
        if batch is None:
            return per_atom.sum().reshape(1)
        size = num_graphs if num_graphs is not None else (int(batch.max()) + 1 if z.numel() else 0)
        return scatter_sum(per_atom, batch, size)

    def _shift(self, y: Tensor, offset: Tensor, sign: float) -> Tensor:
        if y.dim() != 2:
            raise ValueError(f"AtomRef expects y of shape [B, T], got {list(y.shape)}")
        shift = torch.zeros_like(y)
        cols = self.columns if self.columns is not None else list(range(y.size(1)))
        if any(c >= y.size(1) or c < -y.size(1) for c in cols):
            raise ValueError(f"AtomRef columns {cols} out of range for y with {y.size(1)} columns")
        shift[:, cols] = offset.to(y.dtype)[:, None]
        return y + sign * shift

    def forward(self, data: Data) -> Data:
        require(data, "z", "y", transform="AtomRef")
        try:
            data.y = self._shift(data.y, self.offsets(data.z), -1.0)
        except ValueError as err:
            raise ValueError(f"{describe(data)}: {err}") from None
        return data

    def inverse(self, data: Data) -> Data:
        """Add the reference values back to ``data.y`` (undo :meth:`forward`)."""
        require(data, "z", "y", transform="AtomRef.inverse")
        data.y = self._shift(data.y, self.offsets(data.z), 1.0)
        return data

    def restore(self, y: Tensor, z: Tensor, batch: Tensor | None = None) -> Tensor:
        """Add the reference values back to batched predictions ``y`` ``[B, T]``."""
        return self._shift(y, self.offsets(z, batch, y.size(0)), 1.0)

    def __repr__(self) -> str:
        source = f"target={self.target!r}" if self.target else "custom"
        return f"{self.__class__.__name__}({source}, columns={self.columns})"
