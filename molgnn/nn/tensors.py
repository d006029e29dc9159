r"""Rank-2 Cartesian tensor features: their irreducible parts, invariants and products.

A tensor feature holds one $3 \times 3$ matrix per atom and channel, ``[N, 3, 3, C]``
(channels last, as the vector features ``[N, 3, C]``; the functions here accept any leading
axes, ``[*, 3, 3, C]``). Each matrix splits into three parts that rotations never mix,

$$
X = I\,\mathbf{1} + A + S, \qquad I = \tfrac13 \operatorname{tr} X, \quad
A = \tfrac12 (X - X^\top), \quad S = \tfrac12 (X + X^\top) - I\,\mathbf{1},
$$

a scalar $I$ (1 component), an antisymmetric $A$ (3, an axial vector) and a
symmetric traceless $S$ (5). Under a rotation $R$, $X \mapsto R X R^\top$
and so does each part; the squared Frobenius norms of the parts are invariant. TensorNet
(Simeon & De Fabritiis, NeurIPS 2023, https://arxiv.org/abs/2306.06482) is built from these.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "TensorLinear",
    "channel_matmul",
    "compose",
    "decompose",
    "scalar_tensor",
    "skew",
    "skew_vector",
    "squared_norm",
    "symmetric_traceless",
    "tensor_invariants",
]


def _check_tensor(x: Tensor, name: str = "tensor") -> None:
    if x.dim() < 3 or x.shape[-3:-1] != (3, 3):
        raise ValueError(f"{name} must have shape [*, 3, 3, C], got {list(x.shape)}")


def scalar_tensor(scalar: Tensor) -> Tensor:
    r"""The isotropic tensors $I\,\mathbf{1}$: ``[*, C]`` -> ``[*, 3, 3, C]``."""
    eye = torch.eye(3, dtype=scalar.dtype, device=scalar.device).unsqueeze(-1)  # [3, 3, 1]
    return scalar.unsqueeze(-2).unsqueeze(-2) * eye


def skew(vec: Tensor) -> Tensor:
    r"""The antisymmetric tensors of vectors:
    $[\mathbf{v}]_\times \mathbf{u} = \mathbf{v} \times \mathbf{u}$.

    $$
    [\mathbf{v}]_\times = \begin{pmatrix} 0 & -v_z & v_y \\ v_z & 0 & -v_x \\
    -v_y & v_x & 0 \end{pmatrix}
    $$

    Shapes:
        - **input:** vec ``[*, 3, C]``
        - **output:** ``[*, 3, 3, C]``
    """
    if vec.dim() < 2 or vec.size(-2) != 3:
        raise ValueError(f"vec must have shape [*, 3, C], got {list(vec.shape)}")
    vx, vy, vz = vec.unbind(-2)
    zero = torch.zeros_like(vx)
    rows = (zero, -vz, vy, vz, zero, -vx, -vy, vx, zero)
    return torch.stack(rows, dim=-2).unflatten(-2, (3, 3))


def skew_vector(tensor: Tensor) -> Tensor:
    r"""The axial vectors of the antisymmetric parts, the inverse of [`skew`][molgnn.nn.skew] on
    them.

    $$
    \mathbf{v} = \tfrac12 \left(X_{zy} - X_{yz},\; X_{xz} - X_{zx},\; X_{yx} - X_{xy}\right)
    $$

    Shapes:
        - **input:** tensor ``[*, 3, 3, C]``
        - **output:** ``[*, 3, C]``
    """
    _check_tensor(tensor)
    t = tensor
    parts = (
        t[..., 2, 1, :] - t[..., 1, 2, :],
        t[..., 0, 2, :] - t[..., 2, 0, :],
        t[..., 1, 0, :] - t[..., 0, 1, :],
    )
    return 0.5 * torch.stack(parts, dim=-2)


def symmetric_traceless(tensor: Tensor) -> Tensor:
    r"""The symmetric traceless parts
    $\tfrac12 (X + X^\top) - \tfrac13 \operatorname{tr}(X)\,\mathbf{1}$.

    Shapes:
        - **input:** tensor ``[*, 3, 3, C]``
        - **output:** ``[*, 3, 3, C]``
    """
    _check_tensor(tensor)
    trace = tensor.diagonal(dim1=-3, dim2=-2).sum(-1)  # [*, C]
    return 0.5 * (tensor + tensor.transpose(-3, -2)) - scalar_tensor(trace / 3.0)


def decompose(tensor: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Split tensors into their scalar, antisymmetric and symmetric traceless parts.

    $$
    I = \tfrac13 \operatorname{tr} X, \qquad A = \tfrac12 (X - X^\top), \qquad
    S = \tfrac12 (X + X^\top) - I\,\mathbf{1}
    $$

    [`compose`][molgnn.nn.compose] puts them back together: ``compose(*decompose(X))`` is ``X``.

    Shapes:
        - **input:** tensor ``[*, 3, 3, C]``
        - **output:** I ``[*, C]``, A ``[*, 3, 3, C]``, S ``[*, 3, 3, C]``
    """
    _check_tensor(tensor)
    scalar = tensor.diagonal(dim1=-3, dim2=-2).sum(-1) / 3.0  # [*, C]
    transposed = tensor.transpose(-3, -2)
    antisymmetric = 0.5 * (tensor - transposed)
    symmetric = 0.5 * (tensor + transposed) - scalar_tensor(scalar)
    return scalar, antisymmetric, symmetric


def compose(scalar: Tensor, antisymmetric: Tensor, symmetric: Tensor) -> Tensor:
    r"""$X = I\,\mathbf{1} + A + S$, the inverse of [`decompose`][molgnn.nn.decompose].

    Shapes:
        - **input:** I ``[*, C]``, A ``[*, 3, 3, C]``, S ``[*, 3, 3, C]``
        - **output:** ``[*, 3, 3, C]``
    """
    return scalar_tensor(scalar) + antisymmetric + symmetric


def squared_norm(tensor: Tensor) -> Tensor:
    r"""Squared Frobenius norms $\lVert X \rVert^2 = \sum_{ab} X_{ab}^2$, per channel.

    Shapes:
        - **input:** tensor ``[*, 3, 3, C]``
        - **output:** ``[*, C]``
    """
    _check_tensor(tensor)
    return tensor.square().sum((-3, -2))


def tensor_invariants(tensor: Tensor) -> Tensor:
    r"""The squared norms of the three parts,
    $[\,3 I^2,\; \lVert A \rVert^2,\; \lVert S \rVert^2\,]$.

    Each is invariant under rotations and reflections ($3 I^2$ is the squared norm of
    $I\,\mathbf{1}$); they sum to [`squared_norm`][molgnn.nn.squared_norm] of the tensor.

    Shapes:
        - **input:** tensor ``[*, 3, 3, C]``
        - **output:** ``[*, 3 C]``: the three blocks of ``C`` in this order
    """
    scalar, antisymmetric, symmetric = decompose(tensor)
    norms = (3.0 * scalar.square(), squared_norm(antisymmetric), squared_norm(symmetric))
    return torch.cat(norms, dim=-1)


def channel_matmul(left: Tensor, right: Tensor) -> Tensor:
    r"""The matrix product of each channel's tensors, $(XY)_{ab} = \sum_k X_{ak} Y_{kb}$.

    Shapes:
        - **input:** left ``[*, 3, 3, C]``, right ``[*, 3, 3, C]``
        - **output:** ``[*, 3, 3, C]``
    """
    _check_tensor(left, "left")
    _check_tensor(right, "right")
    # Three broadcast products (column k of X times row k of Y), not a batched matmul of
    # 3 x 3 matrices: elementwise over the channels, with no transposed copies, and fused
    # into one loop by torch.compile.
    product = left[..., :, 0:1, :] * right[..., 0:1, :, :]  # [*, 3, 3, C]
    product = product + left[..., :, 1:2, :] * right[..., 1:2, :, :]
    return product + left[..., :, 2:3, :] * right[..., 2:3, :, :]


# Compact storage of the parts, for the message passing and the channel mixings: a linear map
# that acts on channels only commutes with these parametrisations, so TensorNet mixes and sums
# 1 + 3 + 5 rows per atom or edge instead of 1 + 9 + 9.


def _parts_compact(tensor: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``decompose(X)`` as I ``[*, C]``, A's axial vector ``[*, 3, C]`` (``skew_vector``) and
    S's five free entries ``[*, 5, C]`` (``(xx, yy, xy, xz, yz)``)."""
    # One unbind (its gradient is one stack), not 18 indexings (each a zero-filled copy).
    xx, xy, xz, yx, yy, yz, zx, zy, zz = tensor.flatten(-3, -2).unbind(-2)  # each [*, C]
    scalar = (xx + yy + zz) / 3.0
    axial = 0.5 * torch.stack((zy - yz, xz - zx, yx - xy), dim=-2)
    sym = torch.stack(
        (xx - scalar, yy - scalar, 0.5 * (xy + yx), 0.5 * (xz + zx), 0.5 * (yz + zy)), dim=-2
    )
    return scalar, axial, sym


def _compose_compact(scalar: Tensor, axial: Tensor, sym: Tensor) -> Tensor:
    r"""$I\,\mathbf{1} + [\mathbf{a}]_\times + S$ from the compact parts of
    ``_parts_compact``: ``[*, C]``, ``[*, 3, C]``, ``[*, 5, C]`` -> ``[*, 3, 3, C]``.

    S's entries are ``(xx, yy, xy, xz, yz)``; ``zz = -(xx + yy)`` (S is traceless).
    """
    ax, ay, az = axial.unbind(-2)
    sxx, syy, sxy, sxz, syz = sym.unbind(-2)
    rows = (
        scalar + sxx, sxy - az, sxz + ay,
        sxy + az, scalar + syy, syz - ax,
        sxz - ay, syz + ax, scalar - sxx - syy,
    )  # fmt: skip
    return torch.stack(rows, dim=-2).unflatten(-2, (3, 3))


class TensorLinear(nn.Module):
    r"""Separate channel mixings of the three parts of tensor features (no biases).

    $$
    I' = W_I\, I, \qquad A' = W_A\, A, \qquad S' = W_S\, S,
    $$

    each $W$ acting on the channel axis only, so every part keeps its transformation
    under rotations and reflections (a bias would break it for $A$ and $S$).
    Weights have ``torch.nn.Linear``'s default initialisation.

    Args:
        in_channels: Input channels $C$.
        out_channels: Output channels $C'$ (default: ``in_channels``).

    Shapes:
        - **input:** I ``[*, C]``, A ``[*, 3, 3, C]``, S ``[*, 3, 3, C]``
        - **output:** I ``[*, C']``, A ``[*, 3, 3, C']``, S ``[*, 3, 3, C']``
    """

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out = in_channels if out_channels is None else out_channels
        if in_channels < 1 or out < 1:
            raise ValueError(f"channels must be positive, got {in_channels} -> {out}")
        self.in_channels = in_channels
        self.out_channels = out
        self.lin_i = nn.Linear(in_channels, out, bias=False)
        self.lin_a = nn.Linear(in_channels, out, bias=False)
        self.lin_s = nn.Linear(in_channels, out, bias=False)

    def reset_parameters(self) -> None:
        """Fresh weights (``torch.nn.Linear``'s initialisation)."""
        for lin in (self.lin_i, self.lin_a, self.lin_s):
            lin.reset_parameters()

    def forward(
        self, scalar: Tensor, antisymmetric: Tensor, symmetric: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.lin_i(scalar), self.lin_a(antisymmetric), self.lin_s(symmetric)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
