"""Move molecules to the origin."""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import ELEMENT_SYMBOLS
from molgnn.transforms._checks import check_pos, check_z, describe, element_name, require

__all__ = ["ATOMIC_MASSES", "Center"]

#: Standard atomic weights by atomic number: the abridged values of the IUPAC 2021 table
#: (T. Prohaska et al., "Standard atomic weights of the elements 2021", Pure Appl. Chem. 94,
#: 573-600 (2022)) for elements 1-38 and the heavier elements of
#: :data:`~molgnn.transforms.COVALENT_RADII`.
ATOMIC_MASSES: dict[int, float] = {
    1: 1.008, 2: 4.0026, 3: 6.94, 4: 9.0122, 5: 10.81, 6: 12.011, 7: 14.007, 8: 15.999,
    9: 18.998, 10: 20.180, 11: 22.990, 12: 24.305, 13: 26.982, 14: 28.085, 15: 30.974,
    16: 32.06, 17: 35.45, 18: 39.95, 19: 39.098, 20: 40.078, 21: 44.956, 22: 47.867,
    23: 50.942, 24: 51.996, 25: 54.938, 26: 55.845, 27: 58.933, 28: 58.693, 29: 63.546,
    30: 65.38, 31: 69.723, 32: 72.630, 33: 74.922, 34: 78.971, 35: 79.904, 36: 83.798,
    37: 85.468, 38: 87.62, 46: 106.42, 47: 107.87, 48: 112.41, 49: 114.82, 50: 118.71,
    51: 121.76, 52: 127.60, 53: 126.90, 54: 131.29, 55: 132.91, 56: 137.33, 78: 195.08,
    79: 196.97, 80: 200.59, 81: 204.38, 82: 207.2, 83: 208.98,
}  # fmt: skip

_MASS_TABLE = torch.full((len(ELEMENT_SYMBOLS),), float("nan"), dtype=torch.float64)
for _z, _m in ATOMIC_MASSES.items():
    _MASS_TABLE[_z] = _m

_MODES = ("centroid", "mass")


class Center(BaseTransform):
    r"""Translates each molecule so that its centroid or centre of mass is at the origin.

    .. math::
        \mathbf{r}_i' = \mathbf{r}_i - \frac{\sum_k m_k \mathbf{r}_k}{\sum_k m_k}

    with :math:`m_k = 1` for ``"centroid"`` and the atomic masses of :data:`ATOMIC_MASSES`
    for ``"mass"``. Edge vectors and distances do not change.

    Args:
        mode: ``"centroid"`` (the mean position) or ``"mass"`` (the centre of mass)
            (default: ``"centroid"``).

    Shapes:
        - **input:** pos ``[N, 3]``, z ``[N]`` (for ``mode="mass"``)
        - **output:** pos ``[N, 3]``
    """

    def __init__(self, mode: str = "centroid") -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown centring mode {mode!r}; valid modes: {', '.join(_MODES)}")
        self.mode = mode

    def forward(self, data: Data) -> Data:
        require(data, "pos", transform="Center")
        where = describe(data)
        check_pos(data.pos, where)
        pos = data.pos
        if pos.size(0) == 0:
            raise ValueError(f"{where} has no atoms to centre")
        if self.mode == "centroid":
            centre = pos.mean(dim=0)
        else:
            require(data, "z", transform="Center(mode='mass')")
            check_z(data.z, pos.size(0), where)
            masses = _MASS_TABLE.to(pos.device)[data.z]  # [N]
            if bool(masses.isnan().any()):
                names = [element_name(int(v)) for v in data.z[masses.isnan()].unique()]
                raise ValueError(f"{where}: no atomic mass for element(s) {', '.join(names)}")
            weighted = (masses[:, None] * pos.to(torch.float64)).sum(dim=0)  # [3]
            centre = (weighted / masses.sum()).to(pos.dtype)
        data.pos = pos - centre
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mode={self.mode!r})"
