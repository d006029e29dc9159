"""Output heads: per-atom outputs (pre-reduce), a reduction over atoms, and a post-reduce step."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from molgnn.data.keys import atomic_mass_table, check_atomic_masses
from molgnn.nn.gated import GatedEquivariantBlock, safe_norm
from molgnn.nn.mlp import MLP
from molgnn.nn.reduce import check_reduce_op, reduce_atoms
from molgnn.nn.scatter import scatter_sum

__all__ = [
    "HEADS",
    "DipoleMoment",
    "ElectronicSpatialExtent",
    "EquivariantDipoleMoment",
    "EquivariantScalar",
    "EquivariantVectorOutput",
    "OutputHead",
    "Scalar",
    "atomic_masses",
]


def atomic_masses(max_z: int = 100) -> Tensor:
    """Atomic masses indexed by atomic number, ``[max_z]``:
    [`molgnn.data.keys.ATOMIC_MASSES`][molgnn.data.keys.ATOMIC_MASSES].

    Index 0 and the elements without a standard atomic weight hold 0, "no mass" (the heads
    refuse them, see [`check_atomic_masses`][molgnn.data.keys.check_atomic_masses]).
    """
    return torch.tensor(atomic_mass_table(max_z))


class OutputHead(nn.Module, metaclass=ABCMeta):
    """Base of the heads: ``pre_reduce`` per atom, ``reduce`` over atoms, ``post_reduce``.

    Every head takes the same leading arguments. A head that cannot honour one (a dipole head
    asked for ``out_channels=3``, a gated head asked for MLP layers) raises ``ValueError``
    instead of ignoring it.

    Args:
        hidden_channels: Feature size $C$ of the representation (at least 2).
        reduce_op: A name from [`REDUCE_OPS`][molgnn.nn.REDUCE_OPS]: ``"sum"``, ``"mean"`` or
            ``"torchmdnet_mean"`` (default: ``"sum"``).
        out_channels: Number of targets $T$ (default: ``1``).
        num_hidden_layers: Extra hidden layers of the head's MLP (default: ``0``).
    """

    #: Whether ``pre_reduce`` reads the vector features (a representation may skip computing
    #: them when it does not).
    uses_vectors: ClassVar[bool] = True
    #: Whether a prior (atom reference values) may be added to this head's output.
    allows_prior: ClassVar[bool] = True
    #: Whether ``out_channels`` may exceed 1 (not for heads whose output has a fixed form).
    multi_output: ClassVar[bool] = True
    #: Whether the head has an MLP whose depth ``num_hidden_layers`` sets.
    has_mlp: ClassVar[bool] = False
    #: Whether the head keeps an atomic-mass table (and so takes ``max_z``).
    needs_max_z: ClassVar[bool] = False

    def __init__(
        self,
        hidden_channels: int,
        reduce_op: str = "sum",
        out_channels: int = 1,
        num_hidden_layers: int = 0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not hidden_channels >= 2:
            raise ValueError(f"{name}: hidden_channels must be at least 2, got {hidden_channels}")
        self.reduce_op = check_reduce_op(reduce_op)
        if not out_channels >= 1:
            raise ValueError(f"{name}: out_channels must be positive, got {out_channels}")
        if out_channels != 1 and not self.multi_output:
            raise ValueError(
                f"{name} predicts one fixed-form output per molecule; out_channels must be 1, "
                f"got {out_channels}"
            )
        if not num_hidden_layers >= 0:
            raise ValueError(f"{name}: num_hidden_layers must be >= 0, got {num_hidden_layers}")
        if num_hidden_layers and not self.has_mlp:
            raise ValueError(
                f"{name} has no MLP whose depth can be set (its gated blocks are fixed); "
                f"num_hidden_layers must be 0, got {num_hidden_layers}"
            )
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels

    @abstractmethod
    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        """Per-atom outputs ``[N, *]``."""

    def reduce(self, h: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Reduce the per-atom outputs of each molecule by ``reduce_op``: ``[N, *]`` -> ``[B, *]``."""
        return reduce_atoms(h, batch, num_graphs, self.reduce_op)

    def post_reduce(self, y: Tensor) -> Tensor:
        """Map the reduced outputs to the final prediction ``[B, T]`` (identity here)."""
        return y

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hidden_channels={self.hidden_channels}, "
            f"reduce_op={self.reduce_op!r}, out_channels={self.out_channels})"
        )


class Scalar(OutputHead):
    r"""Per-atom MLP on the scalar features, reduced over atoms:
    $y = \sum_i \text{MLP}(\mathbf{x}_i)$.

    Args:
        hidden_channels: Feature size $C$ (the MLP's hidden width is $C/2$).
        activation: Activation name (default: ``"silu"``).
        reduce_op: ``"sum"``, ``"mean"`` or ``"torchmdnet_mean"`` (default: ``"sum"``).
        out_channels: Number of targets $T$ (default: ``1``).
        num_hidden_layers: Extra hidden layers of the MLP (default: ``0``).

    Shapes:
        - **pre_reduce:** x ``[N, C]`` -> ``[N, T]``
        - **output:** ``[B, T]``
    """

    uses_vectors = False
    has_mlp = True

    def __init__(
        self,
        hidden_channels: int,
        activation: str = "silu",
        reduce_op: str = "sum",
        out_channels: int = 1,
        num_hidden_layers: int = 0,
    ) -> None:
        super().__init__(hidden_channels, reduce_op, out_channels, num_hidden_layers)
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


class EquivariantScalar(OutputHead):
    r"""Two [`GatedEquivariantBlock`][molgnn.nn.GatedEquivariantBlock]s ($C \to C/2 \to T$) per
    atom, then a reduction.

    Uses both scalar and vector features; the result is invariant.

    Args:
        hidden_channels: Feature size $C$.
        activation: Activation name (default: ``"silu"``).
        reduce_op: ``"sum"``, ``"mean"`` or ``"torchmdnet_mean"`` (default: ``"sum"``).
        out_channels: Number of targets $T$ (default: ``1``).
        num_hidden_layers: Must be ``0``: the gated blocks have a fixed depth.

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
        num_hidden_layers: int = 0,
    ) -> None:
        super().__init__(hidden_channels, reduce_op, out_channels, num_hidden_layers)
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


class _CentreOfMass(OutputHead):
    """What the heads that work relative to each molecule's centre of mass share: a mass
    table ``atomic_mass`` ``[max_z]`` and one fixed-form output per molecule, with no prior."""

    atomic_mass: Tensor
    allows_prior = False
    multi_output = False
    needs_max_z = True

    def _keep_masses(self, max_z: int) -> None:
        self.register_buffer("atomic_mass", atomic_masses(max_z))

    def centred(self, pos: Tensor, z: Tensor, batch: Tensor) -> Tensor:
        """Positions relative to each molecule's centre of mass, ``[N, 3]``.

        Raises:
            ValueError: for an element without an atomic mass, naming it.
        """
        if batch.numel() == 0:
            return pos
        m = self.atomic_mass[z]  # [N]
        last, massless = torch.stack([batch.max(), (m <= 0).sum()]).tolist()  # one host sync
        if massless:
            check_atomic_masses(z[m <= 0].tolist(), where=type(self).__name__)
        m = m.unsqueeze(1).to(pos.dtype)  # [N, 1]
        num_graphs = int(last) + 1
        centre = scatter_sum(m * pos, batch, num_graphs) / scatter_sum(m, batch, num_graphs)
        return pos - centre[batch]


class _Dipole(_CentreOfMass):
    """The dipole heads' output: the magnitude ``[B, 1]``, or with ``vector`` the vector ``[B, 3]``."""

    vector: bool

    def post_reduce(self, y: Tensor) -> Tensor:
        return y if self.vector else safe_norm(y, dim=-1).unsqueeze(-1)


class DipoleMoment(_Dipole, Scalar):
    r"""Dipole moment from learned atomic charges.

    $\boldsymbol\mu = \sum_i q_i (\mathbf{r}_i - \mathbf{r}_\text{cm})$.

    Returns the magnitude $\lVert\boldsymbol\mu\rVert$ ``[B, 1]`` (invariant), or with
    ``vector=True`` the vector ``[B, 3]``, which rotates (and reflects) with the molecule.

    Args:
        hidden_channels: Feature size $C$.
        activation: Activation name (default: ``"silu"``).
        reduce_op: Reduction of the atomic terms (default: ``"sum"``, the physical dipole).
        out_channels: Must be ``1`` (one dipole per molecule; use ``vector=True`` for its
            three components).
        num_hidden_layers: Extra hidden layers of the charge MLP (default: ``0``).
        vector: Return the vector instead of its magnitude (default: ``False``).
        max_z: Size of the atomic-mass table (default: ``100``).

    Raises:
        ValueError: in ``forward``, for an element without an atomic mass (see
            [`molgnn.data.keys.ATOMIC_MASSES`][molgnn.data.keys.ATOMIC_MASSES]).

    Shapes:
        - **pre_reduce:** ``[N, 3]``
        - **output:** ``[B, 1]`` or ``[B, 3]``
    """

    def __init__(
        self,
        hidden_channels: int,
        activation: str = "silu",
        reduce_op: str = "sum",
        out_channels: int = 1,
        num_hidden_layers: int = 0,
        vector: bool = False,
        max_z: int = 100,
    ) -> None:
        super().__init__(hidden_channels, activation, reduce_op, out_channels, num_hidden_layers)
        self.vector = vector
        self._keep_masses(max_z)

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        charges = self.output_network(x)  # [N, 1]
        return charges * self.centred(pos, z, batch)


class EquivariantDipoleMoment(_Dipole, EquivariantScalar):
    r"""Dipole moment from atomic charges and atomic dipoles (gated equivariant blocks).

    $\boldsymbol\mu = \sum_i q_i (\mathbf{r}_i - \mathbf{r}_\text{cm}) + \vec{\boldsymbol\mu}_i$.
    Magnitude ``[B, 1]`` by default, the vector ``[B, 3]`` with ``vector=True``.

    Args:
        hidden_channels: Feature size $C$.
        activation: Activation name (default: ``"silu"``).
        reduce_op: Reduction of the atomic terms (default: ``"sum"``, the physical dipole).
        out_channels: Must be ``1`` (one dipole per molecule).
        num_hidden_layers: Must be ``0``: the gated blocks have a fixed depth.
        vector: Return the vector instead of its magnitude (default: ``False``).
        max_z: Size of the atomic-mass table (default: ``100``).

    Raises:
        ValueError: in ``forward``, for an element without an atomic mass (see
            [`molgnn.data.keys.ATOMIC_MASSES`][molgnn.data.keys.ATOMIC_MASSES]).

    Shapes:
        - **pre_reduce:** ``[N, 3]``
        - **output:** ``[B, 1]`` or ``[B, 3]``
    """

    def __init__(
        self,
        hidden_channels: int,
        activation: str = "silu",
        reduce_op: str = "sum",
        out_channels: int = 1,
        num_hidden_layers: int = 0,
        vector: bool = False,
        max_z: int = 100,
    ) -> None:
        super().__init__(hidden_channels, activation, reduce_op, out_channels, num_hidden_layers)
        self.vector = vector
        self._keep_masses(max_z)

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        charges, dipoles = self._gated(x, vec)  # [N, 1], [N, 3, 1]
        return charges * self.centred(pos, z, batch) + dipoles.squeeze(-1)


class ElectronicSpatialExtent(_CentreOfMass, Scalar):
    r"""Electronic spatial extent $\langle R^2 \rangle$ (QM9's ``R2``, in $a_0^2$).

    A learned per-atom weight times the squared distance from the centre of mass,
    $R^2 = \sum_i q_i \lVert \mathbf{r}_i - \mathbf{r}_\text{cm} \rVert^2$, which is
    invariant (torchmd-net's ``ElectronicSpatialExtent`` and its ``Equivariant`` alias).

    Args:
        hidden_channels: Feature size $C$.
        activation: Activation name (default: ``"silu"``).
        reduce_op: Reduction of the atomic terms (default: ``"sum"``).
        out_channels: Must be ``1``.
        num_hidden_layers: Extra hidden layers of the MLP (default: ``0``).
        max_z: Size of the atomic-mass table (default: ``100``).

    Raises:
        ValueError: in ``forward``, for an element without an atomic mass (see
            [`molgnn.data.keys.ATOMIC_MASSES`][molgnn.data.keys.ATOMIC_MASSES]).

    Shapes:
        - **pre_reduce:** x ``[N, C]`` -> ``[N, 1]``
        - **output:** ``[B, 1]``
    """

    def __init__(
        self,
        hidden_channels: int,
        activation: str = "silu",
        reduce_op: str = "sum",
        out_channels: int = 1,
        num_hidden_layers: int = 0,
        max_z: int = 100,
    ) -> None:
        super().__init__(hidden_channels, activation, reduce_op, out_channels, num_hidden_layers)
        self._keep_masses(max_z)

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        weight = self.output_network(x)  # [N, 1]
        r2 = self.centred(pos, z, batch).square().sum(-1, keepdim=True)  # [N, 1]
        return weight * r2


class EquivariantVectorOutput(EquivariantScalar):
    r"""One vector per molecule from the gated blocks' vector output.

    $\vec{\mathbf{y}} = \sum_i \vec{\mathbf{v}}_i$ with $\vec{\mathbf{v}}_i$ the
    vector output of two gated equivariant blocks ($C \to C/2 \to 1$); it rotates and
    reflects with the molecule (e.g. a dipole vector or per-molecule forces).

    Args:
        hidden_channels: Feature size $C$.
        activation: Activation name (default: ``"silu"``).
        reduce_op: Reduction of the atomic vectors (default: ``"sum"``; torchmd-net always sums).
        out_channels: Must be ``1`` (one vector per molecule).
        num_hidden_layers: Must be ``0``: the gated blocks have a fixed depth.

    Shapes:
        - **pre_reduce:** x ``[N, C]``, vec ``[N, 3, C]`` -> ``[N, 3]``
        - **output:** ``[B, 3]``
    """

    allows_prior = False
    multi_output = False

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        return self._gated(x, vec)[1].squeeze(-1)  # [N, 3]


#: Head name -> class (the config's ``head`` field).
HEADS: dict[str, type[OutputHead]] = {
    "scalar": Scalar,
    "equivariant_scalar": EquivariantScalar,
    "dipole_moment": DipoleMoment,
    "equivariant_dipole_moment": EquivariantDipoleMoment,
    "electronic_spatial_extent": ElectronicSpatialExtent,
    "equivariant_vector": EquivariantVectorOutput,
}
