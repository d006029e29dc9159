"""One-hot element features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import ELEMENT_SYMBOLS, QM9_ELEMENTS
from molgnn.transforms._checks import check_z, describe, element_name, require

__all__ = ["OneHotAtoms"]


class OneHotAtoms(BaseTransform):
    """Sets ``x`` to the one-hot encoding of each atom's element.

    Column ``k`` of ``x`` is 1 for the atoms whose atomic number is ``elements[k]``. An atom of
    any other element raises a ``ValueError`` naming the element and the molecule.

    Args:
        elements: Atomic numbers, one column each, in this order (default: ``(1, 6, 7, 8, 9)``,
            QM9's H, C, N, O, F).
        cat: Append the one-hot columns to an existing ``x`` ``[N, C]`` instead of replacing it
            (default: ``False``).

    Shapes:
        - **input:** z ``[N]``, x ``[N, C]`` (optional, with ``cat=True``)
        - **output:** x ``[N, len(elements)]`` (or ``[N, C + len(elements)]``), in torch's
          default float dtype
    """

    def __init__(self, elements: Sequence[int] = QM9_ELEMENTS, cat: bool = False) -> None:
        elements = tuple(int(e) for e in elements)
        if not elements:
            raise ValueError("OneHotAtoms needs at least one element")
        if len(set(elements)) != len(elements):
            raise ValueError(f"duplicate elements in {list(elements)}")
        if min(elements) < 1 or max(elements) >= len(ELEMENT_SYMBOLS):
            raise ValueError(
                f"elements must be atomic numbers 1..{len(ELEMENT_SYMBOLS) - 1}, got "
                f"{list(elements)}"
            )
        self.elements = elements
        self.cat = cat
        lookup = torch.full((len(ELEMENT_SYMBOLS),), -1, dtype=torch.long)
        lookup[list(elements)] = torch.arange(len(elements))
        self._lookup = lookup  # column of each atomic number, -1 if not encoded

    def forward(self, data: Data) -> Data:
        require(data, "z", transform="OneHotAtoms")
        z = data.z
        check_z(z, None, describe(data))
        column = self._lookup.to(z.device)[z]  # [N]
        if bool((column < 0).any()):
            unknown = [element_name(int(v)) for v in z[column < 0].unique()]
            known = ", ".join(ELEMENT_SYMBOLS[e] for e in self.elements)
            raise ValueError(
                f"{describe(data)} contains element(s) {', '.join(unknown)} that OneHotAtoms "
                f"does not encode (it encodes {known})"
            )
        onehot = torch.nn.functional.one_hot(column, len(self.elements)).to(
            torch.get_default_dtype()
        )  # [N, K]
        x = getattr(data, "x", None)
        if self.cat and x is not None:
            if x.size(0) != z.numel():
                raise ValueError(
                    f"{describe(data)}: x has {x.size(0)} rows but there are {z.numel()} atoms"
                )
            onehot = torch.cat([x.reshape(x.size(0), -1).to(onehot.dtype), onehot], dim=-1)
        data.x = onehot
        return data

    def __repr__(self) -> str:
        symbols = ", ".join(ELEMENT_SYMBOLS[e] for e in self.elements)
        return f"{self.__class__.__name__}(elements=[{symbols}], cat={self.cat})"
