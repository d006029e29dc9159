"""Output heads: per-atom outputs (pre-reduce), a reduction over atoms, and a post-reduce step."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from molgnn.nn.gated import GatedEquivariantBlock, safe_norm
from molgnn.nn.mlp import MLP
from molgnn.nn.scatter import scatter_mean, scatter_sum

__all__ = [
    "HEADS",
    "DipoleMoment",
    "EquivariantDipoleMoment",
    "EquivariantScalar",
    "OutputHead",
    "Scalar",
    "atomic_masses",
]

_REDUCE = {"sum": scatter_sum, "mean": scatter_mean}
# Standard atomic weights (IUPAC) of H..Kr; heavier elements fall back to 2.5 z (a rough value,
# used only to place the origin of dipole moments).
_MASSES = (
    1.008, 4.0026, 6.94, 9.0122, 10.81, 12.011, 14.007, 15.999, 18.998, 20.180, 22.990, 24.305,
    26.982, 28.085, 30.974, 32.06, 35.45, 39.95, 39.098, 40.078, 44.956, 47.867, 50.942, 51.996,
    54.938, 55.845, 58.933, 58.693, 63.546, 65.38, 69.723, 72.630, 74.922, 78.971, 79.904, 83.798,
)  # fmt: skip


def atomic_masses(max_z: int = 100) -> Tensor:
    """Atomic masses indexed by atomic number, ``[max_z]`` (index 0 is 0)."""
    table = torch.tensor([2.5 * z for z in range(max_z)])
    table[0] = 0.0
    table[1 : len(_MASSES) + 1] = torch.tensor(_MASSES)[: max_z - 1]
    return table


class OutputHead(nn.Module):
    """Base of the heads: ``pre_reduce`` per atom, ``reduce`` over atoms, ``post_reduce``.

    Args:
        reduce_op: ``"sum"`` or ``"mean"`` over the atoms of each molecule (default: ``"sum"``).
    """

    #: Whether ``pre_reduce`` reads the vector features (a representation may skip computing
    #: them when it does not).
    uses_vectors: bool = True

    def __init__(self, reduce_op: str = "sum") -> None:
        super().__init__()
        if reduce_op not in _REDUCE:
            raise ValueError(f"unknown reduce_op {reduce_op!r}; valid: {', '.join(_REDUCE)}")
        self.reduce_op = reduce_op

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        """Per-atom outputs ``[N, *]``."""
        raise NotImplementedError

    def reduce(self, h: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Sum or average the per-atom outputs of each molecule: ``[N, *]`` -> ``[B, *]``."""
        return _REDUCE[self.reduce_op](h, batch, num_graphs)

    def post_reduce(self, y: Tensor) -> Tensor:
        """Map the reduced outputs to the final prediction ``[B, T]`` (identity here)."""
        return y


class Scalar(OutputHead):
    r"""Per-atom MLP on the scalar features, summed over atoms: :math:`y = \sum_i \text{MLP}(\mathbf{x}_i)`.

    Args:
        hidden_channels: Feature size :math:`C` (the MLP's hidden width is :math:`C/2`).
        activation: Activation name (default: ``"silu"``).
        reduce_op: ``"sum"`` or ``"mean"`` (default: ``"sum"``).
        out_channels: Number of targets :math:`T` (default: ``1``).
        num_hidden_layers: Extra hidden layers of the MLP (default: ``0``).

    Shapes:
        - **pre_reduce:** x ``[N, C]`` -> ``[N, T]``
        - **output:** ``[B, T]``
    """

    uses_vectors = False

    def __init__(
        self,
        hidden_channels: int,
        activation: str = "silu",
        reduce_op: str = "sum",
        out_channels: int = 1,
        num_hidden_layers: int = 0,
    ) -> None:
        super().__init__(reduce_op)
        self.hidden_channels = hidden_channels
        self.output_network = MLP(
            hidden_channels, hidden_channels // 2, out_channels, activation, num_hidden_layers
        )

    def reset_parameters(self) -> None:
        """Fresh MLP."""
        self.output_network.reset_parameters()

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        return self.output_network(x)

    def __repr__(self) -> str:
        name = self.__class__.__name__
        return f"{name}(hidden_channels={self.hidden_channels}, reduce_op={self.reduce_op!r})"


class EquivariantScalar(OutputHead):
    r"""Two :class:`GatedEquivariantBlock` s (:math:`C \to C/2 \to 1`) per atom, then a sum.

    Uses both scalar and vector features; the result is invariant.

    Args:
        hidden_channels: Feature size :math:`C`.
        activation: Activation name (default: ``"silu"``).
        reduce_op: ``"sum"`` or ``"mean"`` (default: ``"sum"``).
        out_channels: Number of targets :math:`T` (default: ``1``).

    Shapes:
        - **pre_reduce:** x ``[N, C]``, vec ``[N, 3, C]`` -> ``[N, T]``
        - **output:** ``[B, T]``
    """

    def __init__(
        self,
        hidden_channels: int,
        activation: str = "silu",
        reduce_op: str = "sum",
        out_channels: int = 1,
    ) -> None:
        super().__init__(reduce_op)
        self.hidden_channels = hidden_channels
        self.output_network = nn.ModuleList(
            [
                GatedEquivariantBlock(
                    hidden_channels,
                    hidden_channels // 2,
                    activation=activation,
                    scalar_activation=True,
                ),
                GatedEquivariantBlock(hidden_channels // 2, out_channels, activation=activation),
            ]
        )

    def reset_parameters(self) -> None:
        """Fresh gated blocks."""
        for block in self.output_network:
            cast(GatedEquivariantBlock, block).reset_parameters()

    def _gated(self, x: Tensor, vec: Tensor | None) -> tuple[Tensor, Tensor]:
        if vec is None:
            raise ValueError(
                f"{self.__class__.__name__} needs vector features; use the 'scalar' head"
            )
        for block in self.output_network:
            x, vec = cast(GatedEquivariantBlock, block)(x, vec)
        return x, vec

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        return self._gated(x, vec)[0]

    def __repr__(self) -> str:
        name = self.__class__.__name__
        return f"{name}(hidden_channels={self.hidden_channels}, reduce_op={self.reduce_op!r})"


def _centred(pos: Tensor, z: Tensor, batch: Tensor, masses: Tensor) -> Tensor:
    num_graphs = int(batch.max()) + 1 if batch.numel() else 0
    m = masses[z].unsqueeze(1).to(pos.dtype)  # [N, 1]
    centre = scatter_sum(m * pos, batch, num_graphs) / scatter_sum(m, batch, num_graphs)
    return pos - centre[batch]


class DipoleMoment(Scalar):
    r"""Dipole moment from learned atomic charges.

    :math:`\boldsymbol\mu = \sum_i q_i (\mathbf{r}_i - \mathbf{r}_\text{cm})`.

    Returns the magnitude :math:`\lVert\boldsymbol\mu\rVert` ``[B, 1]`` (invariant), or with
    ``vector=True`` the vector ``[B, 3]``, which rotates (and reflects) with the molecule.

    Args:
        hidden_channels: Feature size :math:`C`.
        activation: Activation name (default: ``"silu"``).
        vector: Return the vector instead of its magnitude (default: ``False``).
        max_z: Size of the atomic-mass table (default: ``100``).

    Shapes:
        - **pre_reduce:** ``[N, 3]``
        - **output:** ``[B, 1]`` or ``[B, 3]``
    """

    atomic_mass: Tensor

    def __init__(
        self, hidden_channels: int, activation: str = "silu", vector: bool = False, max_z: int = 100
    ) -> None:
        super().__init__(hidden_channels, activation, "sum", 1)
        self.vector = vector
        self.register_buffer("atomic_mass", atomic_masses(max_z))

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        charges = self.output_network(x)  # [N, 1]
        return charges * _centred(pos, z, batch, self.atomic_mass)

    def post_reduce(self, y: Tensor) -> Tensor:
        return y if self.vector else safe_norm(y, dim=-1).unsqueeze(-1)


class EquivariantDipoleMoment(EquivariantScalar):
    r"""Dipole moment from atomic charges and atomic dipoles (gated equivariant blocks).

    :math:`\boldsymbol\mu = \sum_i q_i (\mathbf{r}_i - \mathbf{r}_\text{cm}) + \vec{\boldsymbol\mu}_i`.
    Magnitude ``[B, 1]`` by default, the vector ``[B, 3]`` with ``vector=True``.

    Args:
        hidden_channels: Feature size :math:`C`.
        activation: Activation name (default: ``"silu"``).
        vector: Return the vector instead of its magnitude (default: ``False``).
        max_z: Size of the atomic-mass table (default: ``100``).

    Shapes:
        - **pre_reduce:** ``[N, 3]``
        - **output:** ``[B, 1]`` or ``[B, 3]``
    """

    atomic_mass: Tensor

    def __init__(
        self, hidden_channels: int, activation: str = "silu", vector: bool = False, max_z: int = 100
    ) -> None:
        super().__init__(hidden_channels, activation, "sum", 1)
        self.vector = vector
        self.register_buffer("atomic_mass", atomic_masses(max_z))

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        charges, dipoles = self._gated(x, vec)  # [N, 1], [N, 3, 1]
        return charges * _centred(pos, z, batch, self.atomic_mass) + dipoles.squeeze(-1)

    def post_reduce(self, y: Tensor) -> Tensor:
        return y if self.vector else safe_norm(y, dim=-1).unsqueeze(-1)


#: Head name -> class (the config's ``head`` field).
HEADS: dict[str, type[OutputHead]] = {
    "scalar": Scalar,
    "equivariant_scalar": EquivariantScalar,
    "dipole_moment": DipoleMoment,
    "equivariant_dipole_moment": EquivariantDipoleMoment,
}
