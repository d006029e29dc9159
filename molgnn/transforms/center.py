"""Move molecules to the origin."""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import atomic_mass_table, check_atomic_masses
from molgnn.transforms._checks import check_pos, check_z, describe, require

__all__ = ["Center"]

# Masses by atomic number, index 0 and the elements without a mass holding 0 ("no mass").
_MASS_TABLE = torch.tensor(atomic_mass_table(), dtype=torch.float64)

_MODES = ("centroid", "mass")


class Center(BaseTransform):
    r"""Translates each molecule so that its centroid or centre of mass is at the origin.

    $$
    \mathbf{r}_i' = \mathbf{r}_i - \frac{\sum_k m_k \mathbf{r}_k}{\sum_k m_k}
    $$

    with $m_k = 1$ for ``"centroid"`` and the standard atomic weights of
    [`molgnn.data.keys.ATOMIC_MASSES`][molgnn.data.keys.ATOMIC_MASSES] for ``"mass"``. Edge vectors
    and distances do not change.

    Args:
        mode: ``"centroid"`` (the mean position) or ``"mass"`` (the centre of mass)
            (default: ``"centroid"``).

    Raises:
        ValueError: for a molecule without atoms, with NaN coordinates or, with ``"mass"``,
            with an element that has no standard atomic weight (naming the molecule and element).

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
            if not bool((masses > 0).all()):
                check_atomic_masses(data.z[masses <= 0].tolist(), where)
            weighted = (masses[:, None] * pos.to(torch.float64)).sum(dim=0)  # [3]
            centre = (weighted / masses.sum()).to(pos.dtype)
        data.pos = pos - centre
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mode={self.mode!r})"
