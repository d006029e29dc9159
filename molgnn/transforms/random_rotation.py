"""Random rotations (and reflections) for data augmentation."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.transforms._checks import require

__all__ = ["RandomRotation", "random_orthogonal_matrix"]

#: Attributes holding Cartesian vectors that rotate with the molecule.
VECTOR_KEYS = ("pos", "edge_vec", "forces")


def random_orthogonal_matrix(
    reflect: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """A rotation matrix drawn uniformly (Haar measure) from SO(3).

    The QR decomposition of a matrix of standard normal entries, with the signs of ``R``'s
    diagonal moved into ``Q``, is Haar-distributed on O(3) (Mezzadri, Notices AMS 54, 2007);
    flipping one column when the determinant is negative maps it onto SO(3).

    Args:
        reflect: With probability 1/2 return an improper rotation (determinant -1).
        generator: Random generator (default: torch's global one).
        dtype: dtype of the result (default: ``torch.float64``).

    Returns:
        ``[3, 3]`` orthogonal matrix.
    """
    a = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if reflect and torch.rand(1, generator=generator).item() < 0.5:
        q = -q  # -I has determinant -1 in 3D
    return q.to(dtype)


class RandomRotation(BaseTransform):
    """Rotates each molecule by a uniformly random rotation, for augmentation.

    Rotates ``pos`` and, when present, ``edge_vec`` and ``forces``: ``v' = v @ R.T``.
    Invariant targets are unchanged. The last matrix used is kept in :attr:`last_matrix`.

    Args:
        reflect: Also apply an improper rotation with probability 1/2 (default: ``False``).
        seed: Seed of the transform's own generator (default: torch's global generator).
    """

    def __init__(self, reflect: bool = False, seed: int | None = None) -> None:
        self.reflect = reflect
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.last_matrix: Tensor | None = None

    def forward(self, data: Data) -> Data:
        require(data, "pos", transform="RandomRotation")
        matrix = random_orthogonal_matrix(self.reflect, self.generator)
        self.last_matrix = matrix
        for key in VECTOR_KEYS:
            value = getattr(data, key, None)
            if value is not None:
                setattr(data, key, value @ matrix.to(value.dtype).T.to(value.device))
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(reflect={self.reflect}, seed={self.seed})"
