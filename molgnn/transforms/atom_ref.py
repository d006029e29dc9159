"""Per-element reference energies, subtracted from the targets (and added back)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import ATOM_REFERENCE_RAW, atom_reference, get_target
from molgnn.nn.scatter import scatter_sum
from molgnn.transforms._checks import describe, element_name, require

__all__ = ["AtomRef"]


class AtomRef(BaseTransform):
    r"""Subtracts the sum of per-element reference values from ``y``;
    [`inverse`][molgnn.transforms.AtomRef.inverse] adds it back.

    $$
    y' = y - \sum_{i \in \text{atoms}} E_{\text{ref}}(z_i)
    $$

    With QM9's isolated-atom energies this turns the total energy U0 into the atomization
    energy, which is far easier to learn. An atom whose element has no reference value raises a
    ``ValueError`` naming the element (it is never silently counted as 0).

    Args:
        reference: Reference value per atomic number: a ``[max_z]`` sequence or tensor indexed by
            atomic number (NaN marks a missing element), or a mapping ``{z: value}``
            (default: ``None``, QM9's atom references of ``target`` in molgnn's units).
        target: QM9 target whose published references are used when ``reference`` is ``None``;
            one of ``zpve``, ``U0``, ``U``, ``H``, ``G``, ``cv`` (default: ``"U0"``).
        columns: Columns of ``y`` ``[B, T]`` to correct (default: ``None``, all).

    Shapes:
        - **input:** z ``[N]``, y ``[1, T]``
        - **output:** y ``[1, T]``
    """

    def __init__(
        self,
        reference: Sequence[float] | Mapping[int, float] | Tensor | None = None,
        target: str = "U0",
        columns: Sequence[int] | None = None,
    ) -> None:
        if reference is None:
            name = get_target(target).name
            if name not in ATOM_REFERENCE_RAW:
                raise ValueError(
                    f"QM9 target {name!r} has no atom references; targets with references: "
                    + ", ".join(ATOM_REFERENCE_RAW)
                )
            table = torch.tensor(atom_reference(name), dtype=torch.float64)
            known = torch.zeros(table.numel(), dtype=torch.bool)
            known[list(ATOM_REFERENCE_RAW[name])] = True
            table[~known] = float("nan")
        elif isinstance(reference, Mapping):
            if any(int(z) < 1 for z in reference):
                raise ValueError(f"reference keys must be atomic numbers, got {sorted(reference)}")
            size = max(int(k) for k in reference) + 1 if reference else 1
            table = torch.full((size,), float("nan"), dtype=torch.float64)
            for z, value in reference.items():
                table[int(z)] = float(value)
        else:
            table = torch.as_tensor(reference, dtype=torch.float64)
            if table.dim() != 1:
                raise ValueError(
                    f"reference must be a [max_z] table, got shape {list(table.shape)}"
                )
        if torch.isinf(table).any():
            raise ValueError("AtomRef reference values must be finite (NaN marks a missing one)")
        if columns is not None and any(int(c) < 0 for c in columns):
            raise ValueError(f"columns must be non-negative, got {list(columns)}")
        self.reference = table  # [max_z] float64, NaN where an element has no reference
        self.target = target if reference is None else None
        self.columns = None if columns is None else [int(c) for c in columns]

    def offsets(
        self, z: Tensor, batch: Tensor | None = None, num_graphs: int | None = None
    ) -> Tensor:
        """Sum of the reference values of the atoms of each molecule.

        Args:
            z: Atomic numbers, ``[N]``.
            batch: Molecule index of each atom, ``[N]`` (default: ``None``, one molecule).
            num_graphs: Number of molecules ``B`` (default: ``None``, ``batch.max() + 1``).

        Returns:
            ``[B]`` (float64).

        Shapes:
            - **input:** z ``[N]``, batch ``[N]``
            - **output:** ``[B]``
        """
        if z.dim() != 1 or z.is_floating_point():
            raise ValueError(f"z must be an integer [N] tensor, got {z.dtype} {list(z.shape)}")
        size = self.reference.numel()
        if z.numel():
            outside = (z < 0) | (z >= size)
            per_atom = self.reference.to(z.device)[z.clamp(0, size - 1)]  # [N]
            missing = outside | per_atom.isnan()
            if bool(missing.any()):
                names = [element_name(int(v)) for v in z[missing].unique()]
                raise ValueError(
                    f"AtomRef has no reference value for element(s) {', '.join(names)}"
                )
        else:
            per_atom = self.reference.new_zeros(0).to(z.device)
        if batch is None:
            return per_atom.sum().reshape(1)
        if batch.shape != z.shape:
            raise ValueError(f"batch must have shape {list(z.shape)}, got {list(batch.shape)}")
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        elif batch.numel() and int(batch.max()) >= num_graphs:
            raise ValueError(
                f"batch refers to molecule {int(batch.max())} but there are {num_graphs} rows of y"
            )
        return scatter_sum(per_atom, batch, num_graphs)

    def _shift(self, y: Tensor, offset: Tensor, sign: float) -> Tensor:
        if y.dim() != 2:
            raise ValueError(f"AtomRef expects y of shape [B, T], got {list(y.shape)}")
        if offset.numel() != y.size(0):
            raise ValueError(f"y has {y.size(0)} rows but there are {offset.numel()} molecules")
        cols = self.columns if self.columns is not None else list(range(y.size(1)))
        if any(c >= y.size(1) for c in cols):
            raise ValueError(f"AtomRef columns {cols} out of range for y with {y.size(1)} columns")
        shift = torch.zeros(y.shape, dtype=torch.float64, device=y.device)
        shift[:, cols] = sign * offset.to(y.device)[:, None]
        if y.is_floating_point() and y.dtype != torch.float64:
            return (y.to(torch.float64) + shift).to(y.dtype)
        return y + shift

    def forward(self, data: Data) -> Data:
        require(data, "z", "y", transform="AtomRef")
        try:
            data.y = self._shift(data.y, self.offsets(data.z), -1.0)
        except ValueError as err:
            raise ValueError(f"{describe(data)}: {err}") from None
        return data

    def inverse(self, data: Data) -> Data:
        """Add the reference values back to ``data.y`` (undo ``forward``)."""
        require(data, "z", "y", transform="AtomRef.inverse")
        try:
            data.y = self._shift(data.y, self.offsets(data.z), 1.0)
        except ValueError as err:
            raise ValueError(f"{describe(data)}: {err}") from None
        return data

    def restore(self, y: Tensor, z: Tensor, batch: Tensor | None = None) -> Tensor:
        """Add the reference values back to batched predictions, in real units.

        Args:
            y: Predictions of the reference-free quantity, ``[B, T]``.
            z: Atomic numbers, ``[N]``.
            batch: Molecule index of each atom, ``[N]`` (default: ``None``, one molecule).

        Returns:
            ``[B, T]``, in the dtype of ``y``.

        Shapes:
            - **input:** y ``[B, T]``, z ``[N]``, batch ``[N]``
            - **output:** ``[B, T]``
        """
        if y.dim() != 2:
            raise ValueError(f"AtomRef expects y of shape [B, T], got {list(y.shape)}")
        return self._shift(y, self.offsets(z, batch, y.size(0)), 1.0)

    def __repr__(self) -> str:
        if self.target is not None:
            source = f"target={self.target!r}"
        else:
            known = [
                element_name(z) for z in range(self.reference.numel())
                if not math.isnan(float(self.reference[z]))
            ]  # fmt: skip
            source = f"reference=[{', '.join(known)}]"
        return f"{self.__class__.__name__}({source}, columns={self.columns})"
