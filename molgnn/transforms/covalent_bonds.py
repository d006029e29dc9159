"""Bonds from 3D geometry by covalent radii."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import ELEMENT_SYMBOLS
from molgnn.nn.radius import radius_graph
from molgnn.transforms._checks import check_pos, describe, element_name, require

__all__ = [
    "BOND_FEATURES",
    "BOND_TOLERANCE",
    "COVALENT_RADII",
    "CovalentBonds",
    "covalent_bonds",
    "covalent_radii",
]

#: Single-bond covalent radii in Å by atomic number, from B. Cordero et al., "Covalent radii
#: revisited", Dalton Trans. 2832-2838 (2008), Table 2 (sp3 value for C, low-spin values for
#: Mn, Fe and Co). Elements 1-38 plus common heavier ones; the others are missing on purpose, so
#: that they raise a clear error instead of getting a made-up radius.
COVALENT_RADII: dict[int, float] = {
    1: 0.31, 2: 0.28, 3: 1.28, 4: 0.96, 5: 0.84, 6: 0.76, 7: 0.71, 8: 0.66, 9: 0.57, 10: 0.58,
    11: 1.66, 12: 1.41, 13: 1.21, 14: 1.11, 15: 1.07, 16: 1.05, 17: 1.02, 18: 1.06, 19: 2.03,
    20: 1.76, 21: 1.70, 22: 1.60, 23: 1.53, 24: 1.39, 25: 1.39, 26: 1.32, 27: 1.26, 28: 1.24,
    29: 1.32, 30: 1.22, 31: 1.22, 32: 1.20, 33: 1.19, 34: 1.20, 35: 1.20, 36: 1.16, 37: 2.20,
    38: 1.95, 46: 1.39, 47: 1.45, 48: 1.44, 49: 1.42, 50: 1.39, 51: 1.39, 52: 1.38, 53: 1.39,
    54: 1.40, 55: 2.44, 56: 2.15, 78: 1.36, 79: 1.36, 80: 1.32, 81: 1.45, 82: 1.46, 83: 1.48,
}  # fmt: skip

#: Bond features [`CovalentBonds`][molgnn.transforms.CovalentBonds] can put in ``edge_attr``:
#: ``"length"`` (Å) and ``"ratio"``, the length over the summed single-bond radii (about 0.87 for a
#: C=C double bond, 0.79 for a triple bond and 1.0 for a single bond).
BOND_FEATURES: tuple[str, ...] = ("length", "ratio")

#: Default bond tolerance: atoms are bonded when closer than this factor times their summed
#: covalent radii. The one default of every ``bond_tolerance``:
#: [`covalent_bonds`][molgnn.transforms.covalent_bonds],
#: [`CovalentBonds`][molgnn.transforms.CovalentBonds] and the pooled GNN's
#: ([`PooledGNN`][molgnn.models.PooledGNN], [`PooledGNNConfig`][molgnn.models.PooledGNNConfig],
#: [`degree_histogram`][molgnn.models.degree_histogram]). On QM9's 130,831 molecules 1.15 gives
#: every H one bond and every heavy atom a normal valence in all but 2, while 1.2 also bonds the 1,3
#: carbons of 1,688 strained bicyclic molecules (a five-bonded carbon).
BOND_TOLERANCE: float = 1.15

_MAX_Z = len(ELEMENT_SYMBOLS)
_RADIUS_TABLE = torch.full((_MAX_Z,), float("nan"), dtype=torch.float64)
for _z, _r in COVALENT_RADII.items():
    _RADIUS_TABLE[_z] = _r


def covalent_radii(z: Tensor) -> Tensor:
    """Covalent radius of each atom in Å, ``[N]`` (float64); unknown elements raise."""
    if z.is_floating_point() or z.dtype == torch.bool:
        raise ValueError(f"z must hold integer atomic numbers, got {z.dtype}")
    if z.numel() and (int(z.min()) < 1 or int(z.max()) >= _MAX_Z):
        bad = z[(z < 1) | (z >= _MAX_Z)].unique().tolist()
        raise ValueError(f"atomic numbers must lie in 1..{_MAX_Z - 1}, got {bad}")
    radii = _RADIUS_TABLE.to(z.device)[z]
    missing = torch.isnan(radii)
    if z.numel() and bool(missing.any()):
        names = [element_name(int(v)) for v in z[missing].unique()]
        raise ValueError(
            f"no covalent radius for element(s) {', '.join(names)}; known elements: "
            + " ".join(ELEMENT_SYMBOLS[k] for k in sorted(COVALENT_RADII))
        )
    return radii


def covalent_bonds(
    z: Tensor, pos: Tensor, batch: Tensor | None = None, bond_tolerance: float = BOND_TOLERANCE
) -> Tensor:
    r"""Bonds between atoms closer than their summed covalent radii times ``bond_tolerance``.

    Atoms $i \neq j$ of the same molecule are bonded when

    $$
    \lVert \mathbf{r}_i - \mathbf{r}_j \rVert < t\,(R_i + R_j),
    $$

    with $R$ the radii of [`COVALENT_RADII`][molgnn.transforms.COVALENT_RADII] and $t$ the
    tolerance. Each bond appears in both directions. Works on a batch of molecules inside a model's
    ``forward``.

    Args:
        z: Atomic numbers, ``[N]``.
        pos: Positions in Å, ``[N, 3]``.
        batch: Molecule index of each atom, ``[N]`` (default: one molecule).
        bond_tolerance: Factor $t$ on the summed radii (default:
            [`BOND_TOLERANCE`][molgnn.transforms.BOND_TOLERANCE], chosen so that QM9's molecules get
            normal valences).

    Returns:
        ``edge_index`` ``[2, E]``: row 0 the neighbour, row 1 the centre, sorted by centre.

    Raises:
        ValueError: for an element without a radius, mismatched shapes, non-finite positions or
            a non-positive ``bond_tolerance``.

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``
        - **output:** edge_index ``[2, E]``
    """
    if not bond_tolerance > 0:
        raise ValueError(f"bond_tolerance must be positive, got {bond_tolerance}")
    if z.dim() != 1 or pos.dim() != 2 or z.size(0) != pos.size(0):
        raise ValueError(
            f"z must be [N] and pos [N, 3] with the same N, got {list(z.shape)} and "
            f"{list(pos.shape)}"
        )
    radii = covalent_radii(z)  # [N]
    if z.numel() == 0:
        return torch.empty(2, 0, dtype=torch.long, device=z.device)
    reach = float(2 * bond_tolerance * radii.max())
    edge_index = radius_graph(pos, reach, batch, max_num_neighbors=None)
    j, i = edge_index
    dist = (pos[j] - pos[i]).norm(dim=-1).to(torch.float64)  # [E]
    keep = dist < bond_tolerance * (radii[i] + radii[j])
    return edge_index[:, keep]


class CovalentBonds(BaseTransform):
    r"""Adds the bonds that [`covalent_bonds`][molgnn.transforms.covalent_bonds]
    finds from the 3D geometry.

    Sets ``edge_index`` ``[2, E]`` (each bond in both directions, sorted by centre atom) and
    ``edge_attr`` ``[E, F]`` with the requested [`BOND_FEATURES`][molgnn.transforms.BOND_FEATURES]:
    ``"length"``, the bond length in Å, and ``"ratio"``, the length divided by the summed
    single-bond radii (below 1 for multiple bonds).

    Args:
        bond_tolerance: Factor on the summed covalent radii (default:
            [`BOND_TOLERANCE`][molgnn.transforms.BOND_TOLERANCE]).
        features: Columns of ``edge_attr``, in order, from
            [`BOND_FEATURES`][molgnn.transforms.BOND_FEATURES] (default: ``("length",)``).

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``
        - **output:** edge_index ``[2, E]``, edge_attr ``[E, len(features)]``
    """

    def __init__(
        self, bond_tolerance: float = BOND_TOLERANCE, features: Sequence[str] = ("length",)
    ) -> None:
        if not bond_tolerance > 0:
            raise ValueError(f"bond_tolerance must be positive, got {bond_tolerance}")
        features = tuple(features)
        unknown = [f for f in features if f not in BOND_FEATURES]
        if unknown or not features:
            raise ValueError(
                f"unknown or no bond features {unknown or list(features)}; valid features: "
                + ", ".join(BOND_FEATURES)
            )
        self.bond_tolerance = bond_tolerance
        self.features = features

    def forward(self, data: Data) -> Data:
        require(data, "z", "pos", transform="CovalentBonds")
        check_pos(data.pos, describe(data))
        try:
            edge_index = covalent_bonds(data.z, data.pos, bond_tolerance=self.bond_tolerance)
        except ValueError as err:
            raise ValueError(f"{describe(data)}: {err}") from None
        j, i = edge_index
        length = (data.pos[j] - data.pos[i]).norm(dim=-1)  # [E]
        columns = []
        for name in self.features:
            if name == "length":
                columns.append(length)
            else:
                radii = covalent_radii(data.z).to(length.dtype)
                columns.append(length / (radii[i] + radii[j]))
        data.edge_index = edge_index
        data.edge_attr = torch.stack(columns, dim=-1)  # [E, F]
        return data

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(bond_tolerance={self.bond_tolerance}, "
            f"features={list(self.features)})"
        )
