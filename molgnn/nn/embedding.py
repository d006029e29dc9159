"""The ET's neighbourhood-aware atom embedding."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from molgnn.nn.hot_path import CompileOptions, compile_options, compiled, runs_compiled
from molgnn.nn.radial import CosineCutoff
from molgnn.nn.scatter import gather, reduce_sum

__all__ = ["NeighborEmbedding"]


class NeighborEmbedding(nn.Module):
    r"""Mixes each atom's embedding with a distance-weighted sum of its neighbours' embeddings.

    From the Equivariant Transformer (Thölke & De Fabritiis, ICLR 2022,
    https://arxiv.org/abs/2202.02541, eq. 3):

    $$
    \mathbf{x}_i \leftarrow W_c \left[\mathbf{x}_i,\;
    \sum_{j \ne i} \left(W_d\, \mathbf{e}(d_{ij})\, f_\text{cut}(d_{ij})\right)
    \odot \mathbf{u}(z_j)\right]
    $$

    with $\mathbf{u}$ a second per-element embedding and $\mathbf{e}$ the radial
    basis. Messages flow along the edges, from the neighbour $j$ = ``edge_index[0]`` into
    the centre $i$ = ``edge_index[1]`` (PyG's ``source_to_target`` flow, as in
    [`EquivariantMultiHeadAttention`][molgnn.nn.EquivariantMultiHeadAttention]), so on a directed
    graph atom $i$ sums over its incoming edges only. Self loops in ``edge_index`` are ignored.

    Args:
        hidden_channels: Feature size $C$.
        num_rbf: Radial basis size $R$.
        cutoff_lower: Lower cutoff in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff in Å (default: ``5.0``).
        max_z: Largest atomic number + 1 (default: ``100``).

    Shapes:
        - **input:** z ``[N]``, x ``[N, C]``, edge_index ``[2, E]``, edge_weight ``[E]``,
          edge_attr ``[E, R]`` (or ``[U, R]`` with edge_pair ``[E]``)
        - **output:** ``[N, C]``
    """

    def __init__(
        self,
        hidden_channels: int,
        num_rbf: int,
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        max_z: int = 100,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.embedding = nn.Embedding(max_z, hidden_channels)
        self.distance_proj = nn.Linear(num_rbf, hidden_channels)
        self.combine = nn.Linear(2 * hidden_channels, hidden_channels)
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        self._compile_options: CompileOptions | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh embedding; Xavier-uniform projections with zero biases."""
        self.embedding.reset_parameters()
        for lin in (self.distance_proj, self.combine):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(
        self,
        z: Tensor,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_attr: Tensor,
        edge_pair: Tensor | None = None,
    ) -> Tensor:
        """Mixed embeddings ``[N, C]``.

        With ``edge_pair`` ``[E]``, ``edge_attr`` holds one row per unordered atom pair
        (``[U, R]``) and ``edge_pair`` gives each edge's row (see
        [`edge_pairs`][molgnn.models.edge_pairs]); the distance projection then runs once per pair.
        """
        filt = self.distance_proj(edge_attr)  # [E or U, C]
        # Self loops are masked out through the cutoff factor rather than dropped, which would
        # cost a boolean-mask copy of every [E, C] tensor and a slow index_put in backward.
        weight = (self.cutoff(edge_weight) * (edge_index[0] != edge_index[1])).unsqueeze(1)
        options = self._compile_options
        messages = _neighbor_sum
        if runs_compiled(options):
            messages = compiled(options, "neighbor_sum", lambda: _neighbor_sum)
        summed = messages(self.embedding(z), filt, edge_index, weight, edge_pair)  # [N, C]
        return self.combine(torch.cat([x, summed], dim=1))

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the per-edge part (gathers, products, the sum into atoms), in place.

        Arguments go to ``torch.compile``; see
        [`EquivariantMultiHeadAttention.compile`][molgnn.nn.EquivariantMultiHeadAttention.compile].
        """
        self._compile_options = compile_options(args, kwargs)

    def __repr__(self) -> str:
        rbf = self.distance_proj.in_features
        return f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, num_rbf={rbf})"


def _neighbor_sum(
    u: Tensor, filt: Tensor, edge_index: Tensor, weight: Tensor, edge_pair: Tensor | None
) -> Tensor:
    """``sum_j filt_ij * weight_ij * u_j`` into each atom ``i``, ``[N, C]``.

    Each edge carries ``u`` of its source ``j = edge_index[0]`` into its target
    ``i = edge_index[1]``.

    Shapes:
        - **input:** u ``[N, C]``, filt ``[E, C]`` (or ``[U, C]`` with edge_pair ``[E]``),
          edge_index ``[2, E]``, weight ``[E, 1]``
        - **output:** ``[N, C]``
    """
    if edge_pair is not None:
        filt = gather(filt, edge_pair)
    messages = gather(u, edge_index[0]) * filt * weight  # [E, C]: from the source j
    return reduce_sum(messages, edge_index[1], u.size(0))  # into the target i
