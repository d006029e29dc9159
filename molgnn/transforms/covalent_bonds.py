"""Bonds from 3D geometry by covalent radii."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import ELEMENT_SYMBOLS
from molgnn.nn.radius import radius_graph
from molgnn.transforms._checks import check_pos, describe, require

__all__ = ["COVALENT_RADII", "CovalentBonds", "covalent_bonds"]

#: Single-bond covalent radii in Å by atomic number, from B. Cordero et al., "Covalent radii
#: revisited", Dalton Trans. 2832-2838 (2008), Table 2 (sp3 value for C). Elements 1-36 plus a
#: few common heavier ones; others are missing on purpose so that they raise a clear error.
COVALENT_RADII: dict[int, float] = {
    1: 0.31, 2: 0.28, 3: 1.28, 4: 0.96, 5: 0.84, 6: 0.76, 7: 0.71, 8: 0.66, 9: 0.57, 10: 0.58,
    11: 1.66, 12: 1.41, 13: 1.21, 14: 1.11, 15: 1.07, 16: 1.05, 17: 1.02, 18: 1.06, 19: 2.03,
    20: 1.76, 21: 1.70, 22: 1.60, 23: 1.53, 24: 1.39, 25: 1.39, 26: 1.32, 27: 1.26, 28: 1.24,
    29: 1.32, 30: 1.22, 31: 1.22, 32: 1.20, 33: 1.19, 34: 1.20, 35: 1.20, 36: 1.16, 53: 1.39,
}  # fmt: skip

_MAX_Z = 119
_RADIUS_TABLE = torch.full((_MAX_Z,), float("nan"), dtype=torch.float64)
for _z, _r in COVALENT_RADII.items():
    _RADIUS_TABLE[_z] = _r


def _radii(z: Tensor) -> Tensor:
    if z.numel() and (int(z.min()) < 1 or int(z.max()) >= _MAX_Z):
        raise ValueError(f"atomic numbers must lie in 1..{_MAX_Z - 1}, got {z.unique().tolist()}")
    radii = _RADIUS_TABLE.to(z.device)[z]
    missing = torch.isnan(radii)
    if missing.any():
        names = sorted({ELEMENT_SYMBOLS[int(v)] for v in z[missing].unique()})
        raise ValueError(
            f"no covalent radius for element(s) {', '.join(names)}; known elements: "
            + ", ".join(ELEMENT_SYMBOLS[k] for k in sorted(COVALENT_RADII))
        )
    return radii


def covalent_bonds(
    z: Tensor, pos: Tensor, batch: Tensor | None = None, tolerance: float = 1.2
) -> Tensor:
    r"""Bonds between atoms closer than their summed covalent radii times ``tolerance``.

    Atoms :math:`i, j` are bonded when
    :math:`\lVert \mathbf{r}_i - \mathbf{r}_j \rVert < t\,(R_i + R_j)`, with :math:`R` the radii
    of :data:`COVALENT_RADII` and :math:`t` the tolerance. Each bond appears in both directions.

    Args:
        z: Atomic numbers, ``[N]``.
        pos: Positions in Å, ``[N, 3]``.
        batch: Molecule index of each atom, ``[N]`` (default: one molecule).
        tolerance: Factor on the summed radii (default: ``1.2``).

    Returns:
        ``edge_index`` ``[2, E]``, sorted by centre atom.

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``
        - **output:** edge_index ``[2, E]``
    """
    if tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    if z.shape != pos.shape[:1]:
        raise ValueError(f"z has shape {list(z.shape)} but pos has {list(pos.shape)}")
    radii = _radii(z)
    if z.numel() == 0:
        return torch.empty(2, 0, dtype=torch.long, device=z.device)
    reach = float(2 * tolerance * radii.max())
    edge_index = radius_graph(pos, reach, batch, max_num_neighbors=None)
    j, i = edge_index
    dist = (pos[j] - pos[i]).norm(dim=-1).to(torch.float64)
    keep = dist < tolerance * (radii[i] + radii[j])
    return edge_index[:, keep]


class CovalentBonds(BaseTransform):
    r"""Adds bonds found from 3D geometry with :func:`covalent_bonds`.

    Sets ``edge_index`` ``[2, E]`` (both directions) and ``edge_attr`` ``[E, 1]``, the bond
    length in Å.

    Args:
        tolerance: Factor on the summed covalent radii (default: ``1.2``).
    """

    def __init__(self, tolerance: float = 1.2) -> None:
        if tolerance <= 0:
            raise ValueError(f"tolerance must be positive, got {tolerance}")
        self.tolerance = tolerance

    def forward(self, data: Data) -> Data:
        require(data, "z", "pos", transform="CovalentBonds")
        check_pos(data.pos, describe(data))
        try:
            edge_index = covalent_bonds(data.z, data.pos, tolerance=self.tolerance)
        except ValueError as err:
            raise ValueError(f"{describe(data)}: {err}") from None
        data.edge_index = edge_index
        data.edge_attr = (data.pos[edge_index[0]] - data.pos[edge_index[1]]).norm(dim=-1)[:, None]
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(tolerance={self.tolerance})"
