"""Random rotations (and reflections) for data augmentation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.transforms._checks import check_pos, describe, require

__all__ = ["VECTOR_KEYS", "RandomRotation", "random_orthogonal_matrix"]

#: Attributes holding Cartesian vectors ``[*, 3]`` that rotate with the molecule by default.
VECTOR_KEYS: tuple[str, ...] = ("pos", "edge_vec", "forces")


def random_orthogonal_matrix(
    reflect: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    r"""A rotation matrix drawn uniformly (Haar measure) from SO(3), optionally reflected.

    A unit quaternion $q = g / \lVert g \rVert$ with $g$ four standard normal
    numbers is uniform on the 3-sphere, and the rotation it encodes is then uniform on SO(3)
    (K. Shoemake, "Uniform random rotations", Graphics Gems III, 124-132 (1992)). This needs no
    matrix decomposition, so it costs microseconds.

    Args:
        reflect: With probability 1/2 return an improper rotation (determinant -1), the
            rotation times the inversion $-I$ (default: ``False``).
        generator: Random generator (default: ``None``, torch's global one).
        dtype: dtype of the result (default: ``torch.float64``).

    Returns:
        ``[3, 3]`` orthogonal matrix $R$, to be applied as ``v @ R.T``.
    """
    w, x, y, z = torch.randn(4, generator=generator, dtype=torch.float64).tolist()
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if norm < 1e-12:  # probability ~0; keeps the division safe
        w, x, y, z, norm = 1.0, 0.0, 0.0, 0.0, 1.0
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    sign = 1.0
    if reflect and torch.rand(1, generator=generator, dtype=torch.float64).item() < 0.5:
        sign = -1.0
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.tensor([[sign * v for v in row] for row in rows], dtype=dtype)


class RandomRotation(BaseTransform):
    r"""Rotates each molecule by a uniformly random rotation, for data augmentation.

    Every attribute named in ``keys`` that is present (``pos`` and, by default, ``edge_vec`` and
    ``forces``) is rotated as $\mathbf{v}' = \mathbf{v} R^\top$, in its own dtype. Scalars
    such as ``edge_weight`` and invariant targets are unchanged. The matrix of the last call is
    kept in ``last_matrix`` (float64).

    Args:
        reflect: Apply an improper rotation (a rotation times $-I$) with probability 1/2
            (default: ``False``).
        seed: Seed of the transform's own generator; ignored when ``generator`` is given
            (default: ``None``, torch's global generator).
        generator: Generator to draw from (default: ``None``).
        keys: Attributes that hold Cartesian vectors, each ``[*, 3]`` (default:
            [`VECTOR_KEYS`][molgnn.transforms.VECTOR_KEYS]).

    Shapes:
        - **input:** pos ``[N, 3]``, edge_vec ``[E, 3]``, forces ``[N, 3]``
        - **output:** the same shapes
    """

    def __init__(
        self,
        reflect: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        keys: Sequence[str] = VECTOR_KEYS,
    ) -> None:
        self.reflect = reflect
        self.seed = seed
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        self.generator = generator
        self.keys = tuple(keys)
        self.last_matrix: Tensor | None = None

    def forward(self, data: Data) -> Data:
        require(data, "pos", transform="RandomRotation")
        where = describe(data)
        check_pos(data.pos, where)
        for key in self.keys:
            value = getattr(data, key, None)
            if value is not None and (not isinstance(value, Tensor) or value.size(-1) != 3):
                shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"RandomRotation: {key} of {where} must be [*, 3], got {shape}")
        matrix = random_orthogonal_matrix(self.reflect, self.generator)  # [3, 3]
        self.last_matrix = matrix
        for key in self.keys:
            value = getattr(data, key, None)
            if value is not None:
                setattr(data, key, value @ matrix.to(value.device, value.dtype).T)
        return data

    def __repr__(self) -> str:
        keys = "" if self.keys == VECTOR_KEYS else f", keys={list(self.keys)}"
        return f"{self.__class__.__name__}(reflect={self.reflect}, seed={self.seed}{keys})"
