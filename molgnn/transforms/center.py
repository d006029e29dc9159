"""Move molecules to the origin."""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.data.keys import ELEMENT_SYMBOLS
from molgnn.transforms._checks import check_pos, describe, require

__all__ = ["ATOMIC_MASSES", "Center"]

#: Standard atomic weights (IUPAC 2021 abridged values) of elements 1-36, by atomic number.
ATOMIC_MASSES: dict[int, float] = {
    1: 1.008, 2: 4.0026, 3: 6.94, 4: 9.0122, 5: 10.81, 6: 12.011, 7: 14.007, 8: 15.999,
    9: 18.998, 10: 20.180, 11: 22.990, 12: 24.305, 13: 26.982, 14: 28.085, 15: 30.974,
    16: 32.06, 17: 35.45, 18: 39.95, 19: 39.098, 20: 40.078, 21: 44.956, 22: 47.867,
    23: 50.942, 24: 51.996, 25: 54.938, 26: 55.845, 27: 58.933, 28: 58.693, 29: 63.546,
    30: 65.38, 31: 69.723, 32: 72.630, 33: 74.922, 34: 78.971, 35: 79.904, 36: 83.798,
}  # fmt: skip

_MODES = ("centroid", "mass")


class Center(BaseTransform):
    """Translates each molecule so that its centroid or centre of mass is at the origin.

    Args:
        mode: ``"centroid"`` (the mean position) or ``"mass"`` (the centre of mass, from
            :data:`ATOMIC_MASSES`) (default: ``"centroid"``).
    """

    def __init__(self, mode: str = "centroid") -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown centring mode {mode!r}; valid modes: {', '.join(_MODES)}")
        self.mode = mode

    def forward(self, data: Data) -> Data:
        require(data, "pos", transform="Center")
        check_pos(data.pos, describe(data))
        pos = data.pos
        if pos.size(0) == 0:
            raise ValueError(f"{describe(data)} has no atoms to centre")
        if self.mode == "centroid":
            centre = pos.mean(dim=0)
        else:
            require(data, "z", transform="Center(mode='mass')")
            masses = []
            for z in data.z.tolist():
                if z not in ATOMIC_MASSES:
                    raise ValueError(
                        f"{describe(data)}: no atomic mass for element "
                        f"{ELEMENT_SYMBOLS[z] if 0 < z < len(ELEMENT_SYMBOLS) else z}"
                    )
                masses.append(ATOMIC_MASSES[z])
            m = torch.tensor(masses, dtype=pos.dtype, device=pos.device)
            centre = (m[:, None] * pos).sum(dim=0) / m.sum()
        data.pos = pos - centre
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mode={self.mode!r})"
