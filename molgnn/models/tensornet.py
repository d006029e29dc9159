"""The TensorNet representation (rank-2 Cartesian tensor features)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from molgnn.models.equivariant_transformer import edge_geometry, edge_pairs
from molgnn.nn.activations import activation as make_activation
from molgnn.nn.hot_path import runs_compiled
from molgnn.nn.neighbours import neighbour_table
from molgnn.nn.radial import RBFS
from molgnn.nn.radius import radius_graph
from molgnn.nn.tensornet import GROUPS, TensorEmbedding, TensorInteraction
from molgnn.nn.tensors import tensor_invariants

__all__ = ["TensorNet"]


class TensorNet(nn.Module):
    r"""TensorNet (Simeon & De Fabritiis, NeurIPS 2023, https://arxiv.org/abs/2306.06482).

    Each atom holds ``C`` rank-2 Cartesian tensors, made by
    [`TensorEmbedding`][molgnn.nn.TensorEmbedding] from its neighbourhood and updated by
    ``num_layers`` [`TensorInteraction`][molgnn.nn.TensorInteraction] layers over the radius graph
    (self loops included, as in torchmd-net). The scalar output is

    $$
    \mathbf{x}_i = \sigma\!\left(W \operatorname{LN}\!\left[\,3 I_i^2,\;
    \lVert A_i \rVert^2,\; \lVert S_i \rVert^2\,\right] + b\right),
    $$

    the squared norms of the final tensors' parts
    ([`tensor_invariants`][molgnn.nn.tensor_invariants]). With the ``"O(3)"`` group it is invariant
    under rotations, reflections, translations and atom permutations; with ``"SO(3)"`` under
    rotations, translations and permutations only (mirror images get different outputs). TensorNet
    returns no vector features: use a head that reads the scalars alone (``"scalar"``,
    ``"dipole_moment"``, ``"electronic_spatial_extent"``).

    Args:
        hidden_channels: Feature size $C$ (default: ``256``).
        num_layers: Interaction layers, ``0`` for the embedding alone (default: ``3``).
        num_rbf: Radial basis functions $R$ (default: ``64``).
        rbf_type: ``"expnorm"`` or ``"gauss"`` (default: ``"expnorm"``).
        trainable_rbf: Learn the radial basis (default: ``False``).
        activation: Activation name (default: ``"silu"``).
        cutoff_lower: Lower cutoff in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff in Å (default: ``5.0``).
        max_z: Largest atomic number + 1 (default: ``100``).
        max_num_neighbors: Most neighbours per atom in the radius graph, the nearest kept, the
            self loop included (default: ``64``).
        equivariance_invariance_group: ``"O(3)"`` or ``"SO(3)"``, torchmd-net's name
            (default: ``"O(3)"``).

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]`` (optional)
        - **output:** x ``[N, C]``, ``None`` (no vector features)
    """

    def __init__(
        self,
        hidden_channels: int = 256,
        num_layers: int = 3,
        num_rbf: int = 64,
        rbf_type: str = "expnorm",
        trainable_rbf: bool = False,
        activation: str = "silu",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        max_z: int = 100,
        max_num_neighbors: int = 64,
        equivariance_invariance_group: str = "O(3)",
    ) -> None:
        super().__init__()
        if rbf_type not in RBFS:
            raise ValueError(f"unknown rbf_type {rbf_type!r}; valid: {', '.join(RBFS)}")
        if num_layers < 0:
            raise ValueError(f"num_layers must be at least 0, got {num_layers}")
        if equivariance_invariance_group not in GROUPS:
            raise ValueError(
                f"unknown equivariance_invariance_group {equivariance_invariance_group!r}; "
                f"valid: {', '.join(GROUPS)}"
            )
        if max_num_neighbors < 1:
            raise ValueError(f"max_num_neighbors must be positive, got {max_num_neighbors}")
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.num_rbf = num_rbf
        self.rbf_type = rbf_type
        self.cutoff_lower = cutoff_lower
        self.cutoff_upper = cutoff_upper
        self.max_z = max_z
        self.max_num_neighbors = max_num_neighbors
        self.equivariance_invariance_group = equivariance_invariance_group
        self.distance_expansion = RBFS[rbf_type](cutoff_lower, cutoff_upper, num_rbf, trainable_rbf)
        self.tensor_embedding = TensorEmbedding(
            hidden_channels, num_rbf, activation, cutoff_lower, cutoff_upper, max_z
        )
        self.layers = nn.ModuleList(
            TensorInteraction(
                hidden_channels,
                num_rbf,
                activation,
                cutoff_lower,
                cutoff_upper,
                equivariance_invariance_group,
            )
            for _ in range(num_layers)
        )
        self.out_norm = nn.LayerNorm(3 * hidden_channels)
        self.linear = nn.Linear(3 * hidden_channels, hidden_channels)
        self.act = make_activation(activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every submodule."""
        self.distance_expansion.reset_parameters()  # type: ignore[operator]
        self.tensor_embedding.reset_parameters()
        for layer in self.layers:
            layer.reset_parameters()  # type: ignore[operator]
        self.out_norm.reset_parameters()
        self.linear.reset_parameters()

    def graph(
        self, z: Tensor, pos: Tensor, batch: Tensor, edge_index: Tensor | None = None
    ) -> Tensor:
        """The message graph: neighbours within the upper cutoff plus one self loop per atom.

        A given ``edge_index`` is reused (its self loops replaced by one per atom).
        """
        if z.numel() and (int(z.min()) < 0 or int(z.max()) >= self.max_z):
            raise ValueError(
                f"atomic numbers must lie in 0..{self.max_z - 1}, got {z.unique().tolist()}"
            )
        if edge_index is None:
            return radius_graph(
                pos, self.cutoff_upper, batch, loop=True, max_num_neighbors=self.max_num_neighbors
            )
        edges = edge_index[:, edge_index[0] != edge_index[1]]
        loops = torch.arange(pos.size(0), device=pos.device).repeat(2, 1)
        return torch.cat([edges, loops], dim=1)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        edge_vec: Tensor | None = None,
    ) -> tuple[Tensor, None]:
        """Scalar atom features ``[N, C]`` and ``None`` for the vector features.

        A given ``edge_index`` (e.g. from [`RadiusGraph`][molgnn.transforms.RadiusGraph]) is reused:
        pairs outside the cutoffs are dropped and self loops added. ``edge_weight`` and
        ``edge_vec`` are accepted for the model contract but always recomputed from ``pos``, so
        forces stay exact.
        """
        given = edge_index is not None
        edge_index = self.graph(z, pos, batch, edge_index)
        length, unit = edge_geometry(pos, edge_index)  # unit: from the centre to the neighbour
        if self.cutoff_lower > 0 or given:
            inside = (length >= self.cutoff_lower) & (length < self.cutoff_upper)
            keep = inside | (edge_index[0] == edge_index[1])
            edge_index, length, unit = edge_index[:, keep], length[keep], unit[keep]
        # The radial basis and the distance filters are computed once per unordered pair.
        pair, first = edge_pairs(edge_index, pos.size(0))
        rbf = self.distance_expansion(length.index_select(0, first))  # [U, R]
        toward_centre = -unit  # TensorNet's r_ij = (r_i - r_j) / d_ij, [E, 3]
        x = self.tensor_embedding(z, edge_index, length, toward_centre, rbf, edge_pair=pair)
        table = None
        if self.runs_compiled():
            # one grouping of the edges for every compiled layer; the grouping by source
            # serves their gradients only
            table = neighbour_table(edge_index, pos.size(0), backward=torch.is_grad_enabled())
        for layer in self.layers:
            x = layer(x, edge_index, length, rbf, edge_pair=pair, table=table)  # [N, 3, 3, C]
        scalars = self.out_norm(tensor_invariants(x))  # [N, 3 C]
        return self.act(self.linear(scalars)), None

    def runs_compiled(self) -> bool:
        """Whether the interaction layers were compiled (``compile``) and run compiled here (not
        inside [`eager_hot_path`][molgnn.nn.eager_hot_path])."""
        return any(
            isinstance(layer, TensorInteraction) and runs_compiled(layer._compile_options)
            for layer in self.layers
        )

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the embedding and every interaction layer with ``torch.compile``, in place.

        The radius graph, the input checks, the element lookup and the cutoffs stay eager; the
        pair embeddings, the distance filters, the per-edge products, the sums into atoms and
        the per-atom tensor algebra become a few fused loops, shared by layers of the same
        make-up (see [`TensorInteraction.compile`][molgnn.nn.TensorInteraction.compile]). The
        layers sum their messages over one [`neighbour_table`][molgnn.nn.neighbour_table] per
        batch, which fuses the gathers, products and sums, and their gradients, into loops
        over the atoms. Training on forces
        differentiates twice, which compiled code cannot do: those steps run eagerly. Arguments
        go to ``torch.compile``.
        """
        self.tensor_embedding.compile(*args, **kwargs)
        for layer in self.layers:
            layer.compile(*args, **kwargs)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, num_rbf={self.num_rbf}, rbf_type={self.rbf_type!r}, "
            f"cutoff=({self.cutoff_lower}, {self.cutoff_upper}), "
            f"equivariance_invariance_group={self.equivariance_invariance_group!r})"
        )
