"""One-hot element features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import ELEMENT_SYMBOLS, QM9_ELEMENTS
from molgnn.transforms._checks import describe, require

__all__ = ["OneHotAtoms"]


class OneHotAtoms(BaseTransform):
    """Sets ``x`` ``[N, K]`` to the one-hot encoding of each atom's element.

    Args:
        elements: Atomic numbers, one column each, in this order (default: H, C, N, O, F).
        cat: Append to an existing ``x`` instead of replacing it (default: ``False``).
    """

    def __init__(self, elements: Sequence[int] = QM9_ELEMENTS, cat: bool = False) -> None:
        elements = tuple(int(e) for e in elements)
        if not elements:
            raise ValueError("OneHotAtoms needs at least one element")
        if len(set(elements)) != len(elements):
            raise ValueError(f"duplicate elements in {list(elements)}")
        if min(elements) < 1 or max(elements) >= len(ELEMENT_SYMBOLS):
            raise ValueError(f"elements must be atomic numbers, got {list(elements)}")
        self.elements = elements
        self.cat = cat
        lookup = torch.full((len(ELEMENT_SYMBOLS),), -1, dtype=torch.long)
        lookup[list(elements)] = torch.arange(len(elements))
        self._lookup = lookup

    def forward(self, data: Data) -> Data:
        require(data, "z", transform="OneHotAtoms")
        z = data.z
        if z.numel() and (int(z.min()) < 0 or int(z.max()) >= len(ELEMENT_SYMBOLS)):
            raise ValueError(f"{describe(data)} has invalid atomic numbers {z.unique().tolist()}")
        column = self._lookup.to(z.device)[z]
        if (column < 0).any():
            unknown = sorted({ELEMENT_SYMBOLS[int(v)] for v in z[column < 0].unique()})
            known = ", ".join(ELEMENT_SYMBOLS[e] for e in self.elements)
            raise ValueError(
                f"{describe(data)} contains element(s) {', '.join(unknown)} that OneHotAtoms "
                f"does not encode (it encodes {known})"
            )
        onehot = torch.nn.functional.one_hot(column, len(self.elements)).to(
            torch.get_default_dtype()
        )
        x = getattr(data, "x", None)
        if self.cat and x is not None:
            onehot = torch.cat([x.view(x.size(0), -1).to(onehot.dtype), onehot], dim=-1)
        data.x = onehot
        return data

    def __repr__(self) -> str:
        symbols = ", ".join(ELEMENT_SYMBOLS[e] for e in self.elements)
        return f"{self.__class__.__name__}(elements=[{symbols}], cat={self.cat})"
