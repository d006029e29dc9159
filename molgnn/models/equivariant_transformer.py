"""The TorchMD-Net Equivariant Transformer representation."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from molgnn.nn.attention import EquivariantMultiHeadAttention
from molgnn.nn.embedding import NeighborEmbedding
from molgnn.nn.radial import RBFS
from molgnn.nn.radius import radius_graph

__all__ = ["EquivariantTransformer", "edge_geometry", "edge_pairs"]


def edge_geometry(pos: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
    """Lengths ``[E]`` and unit vectors ``[E, 3]`` of the edges (``pos[j] - pos[i]``).

    Self loops get length 0 and a zero vector, with finite (zero) gradients.
    """
    vec = pos.index_select(0, edge_index[0]) - pos.index_select(0, edge_index[1])  # [E, 3]
    sq = (vec * vec).sum(-1)
    loop = sq == 0
    length = torch.where(loop, 0.0, torch.where(loop, 1.0, sq).sqrt())
    unit = vec / torch.where(loop, 1.0, length).unsqueeze(1)
    return length, unit


def edge_pairs(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Group the edges by unordered atom pair, so per-distance work is done once per pair.

    ``(i, j)`` and ``(j, i)`` have the same length, hence the same radial basis and the same
    distance filters in every layer; all self loops have length 0 and share one row too. On a
    symmetric radius graph this halves the distance projections, the ET's largest matrix
    products.

    Returns:
        ``pair`` ``[E]``, the row of each edge in the pair table, and ``first`` ``[U]``, the
        lowest-numbered edge of each row (use it to pick the row's length).

    Shapes:
        - **input:** edge_index ``[2, E]``
        - **output:** pair ``[E]``, first ``[U]`` with ``U <= E``
    """
    src, dst = edge_index[0], edge_index[1]
    key = torch.minimum(src, dst) * num_nodes + torch.maximum(src, dst)
    key = torch.where(src == dst, -1, key)  # every self loop: length 0, one shared row
    unique, pair = torch.unique(key, return_inverse=True)
    edges = torch.arange(key.numel(), device=key.device)
    first = torch.full_like(unique, key.numel()).scatter_reduce_(
        0, pair, edges, reduce="amin", include_self=True
    )
    return pair, first


class EquivariantTransformer(nn.Module):
    r"""The Equivariant Transformer (Thölke & De Fabritiis, ICLR 2022, https://arxiv.org/abs/2202.02541).

    Atoms start from an element embedding (optionally mixed with their neighbours' by
    [`NeighborEmbedding`][molgnn.nn.NeighborEmbedding]) and zero vector features, then go through
    ``num_layers`` residual
    [`EquivariantMultiHeadAttention`][molgnn.nn.EquivariantMultiHeadAttention] updates over the
    radius graph (self loops included, as in torchmd-net), and a final layer norm of the scalars.
    Scalars are invariant and vectors equivariant under rotations, reflections, translations and
    atom permutations.

    Args:
        hidden_channels: Feature size $C$ (default: ``256``).
        num_layers: Attention layers (default: ``8``).
        num_heads: Attention heads (default: ``8``).
        num_rbf: Radial basis functions $R$ (default: ``64``).
        rbf_type: ``"expnorm"`` or ``"gauss"`` (default: ``"expnorm"``).
        trainable_rbf: Learn the radial basis (default: ``False``).
        activation: Activation name (default: ``"silu"``).
        attn_activation: Attention nonlinearity (default: ``"silu"``).
        neighbor_embedding: Use [`NeighborEmbedding`][molgnn.nn.NeighborEmbedding] (default:
            ``True``).
        distance_influence: ``"keys"``, ``"values"``, ``"both"`` or ``"none"`` (default: ``"both"``).
        cutoff_lower: Lower cutoff in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff in Å (default: ``5.0``).
        max_z: Largest atomic number + 1 (default: ``100``).
        max_num_neighbors: Most neighbours per atom in the radius graph, the nearest kept
            (default: ``32``).
        vector_cutoff: Apply the cutoff to the values so vectors vanish smoothly at the cutoff
            (default: ``True``).

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]`` (optional)
        - **output:** x ``[N, C]``, vec ``[N, 3, C]``
    """

    #: [`forward`][molgnn.models.EquivariantTransformer.forward] takes ``vectors=False`` (see
    #: [`MolecularModel`][molgnn.models.MolecularModel]).
    can_skip_vectors = True

    def __init__(
        self,
        hidden_channels: int = 256,
        num_layers: int = 8,
        num_heads: int = 8,
        num_rbf: int = 64,
        rbf_type: str = "expnorm",
        trainable_rbf: bool = False,
        activation: str = "silu",
        attn_activation: str = "silu",
        neighbor_embedding: bool = True,
        distance_influence: str = "both",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        max_z: int = 100,
        max_num_neighbors: int = 32,
        vector_cutoff: bool = True,
    ) -> None:
        super().__init__()
        if rbf_type not in RBFS:
            raise ValueError(f"unknown rbf_type {rbf_type!r}; valid: {', '.join(RBFS)}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_rbf = num_rbf
        self.rbf_type = rbf_type
        self.cutoff_lower = cutoff_lower
        self.cutoff_upper = cutoff_upper
        self.max_z = max_z
        self.max_num_neighbors = max_num_neighbors
        self.embedding = nn.Embedding(max_z, hidden_channels)
        self.distance_expansion = RBFS[rbf_type](cutoff_lower, cutoff_upper, num_rbf, trainable_rbf)
        self.neighbor_embedding = (
            NeighborEmbedding(hidden_channels, num_rbf, cutoff_lower, cutoff_upper, max_z)
            if neighbor_embedding
            else None
        )
        self.attention_layers = nn.ModuleList(
            EquivariantMultiHeadAttention(
                hidden_channels,
                num_rbf,
                distance_influence,
                num_heads,
                activation,
                attn_activation,
                cutoff_lower,
                cutoff_upper,
                vector_cutoff,
            )
            for _ in range(num_layers)
        )
        self.out_norm = nn.LayerNorm(hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every submodule."""
        self.embedding.reset_parameters()
        self.distance_expansion.reset_parameters()  # type: ignore[operator]
        if self.neighbor_embedding is not None:
            self.neighbor_embedding.reset_parameters()
        for layer in self.attention_layers:
            layer.reset_parameters()  # type: ignore[operator]
        self.out_norm.reset_parameters()

    def graph(
        self, z: Tensor, pos: Tensor, batch: Tensor, edge_index: Tensor | None = None
    ) -> Tensor:
        """The attention graph: neighbours within the cutoffs plus one self loop per atom."""
        if z.numel() and (int(z.min()) < 0 or int(z.max()) >= self.max_z):
            raise ValueError(
                f"atomic numbers must lie in 0..{self.max_z - 1}, got {z.unique().tolist()}"
            )
        if edge_index is None:
            return radius_graph(
                pos, self.cutoff_upper, batch, loop=True, max_num_neighbors=self.max_num_neighbors
            )
        n = pos.size(0)
        edges = edge_index[:, edge_index[0] != edge_index[1]]
        loops = torch.arange(n, device=pos.device).repeat(2, 1)
        return torch.cat([edges, loops], dim=1)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        edge_vec: Tensor | None = None,
        vectors: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Scalar and vector atom features.

        With ``vectors=False`` the last layer skips its vector update, which only the vector
        output would read, and ``vec`` is returned as ``None`` (for heads that read scalars
        alone, such as [`Scalar`][molgnn.nn.Scalar]).

        A given ``edge_index`` (e.g. from [`RadiusGraph`][molgnn.transforms.RadiusGraph]) is reused:
        pairs outside the cutoffs are dropped and self loops added. ``edge_weight`` and
        ``edge_vec`` are accepted for the model contract but always recomputed from ``pos``, so
        forces stay exact.
        """
        given = edge_index is not None
        edge_index = self.graph(z, pos, batch, edge_index)
        length, unit = edge_geometry(pos, edge_index)
        if self.cutoff_lower > 0 or given:
            # Keep pairs in [cutoff_lower, cutoff_upper) (a precomputed graph may have been built
            # with a larger cutoff) and every self loop.
            inside = (length >= self.cutoff_lower) & (length < self.cutoff_upper)
            keep = inside | (edge_index[0] == edge_index[1])
            edge_index, length, unit = edge_index[:, keep], length[keep], unit[keep]
        # The radial basis and every distance filter are computed once per unordered pair.
        pair, first = edge_pairs(edge_index, pos.size(0))
        rbf = self.distance_expansion(length.index_select(0, first))  # [U, R]
        x = self.embedding(z)  # [N, C]
        if self.neighbor_embedding is not None:
            x = self.neighbor_embedding(z, x, edge_index, length, rbf, edge_pair=pair)
        vec: Tensor | None = None  # all zero at first: the first layer skips its terms
        last = len(self.attention_layers) - 1
        for i, layer in enumerate(self.attention_layers):
            want = vectors or i < last
            dx, dvec = layer(x, vec, edge_index, length, rbf, unit, edge_pair=pair, vectors=want)
            x = x + dx
            if dvec is not None:
                vec = dvec if vec is None else vec + dvec
        return self.out_norm(x), (vec if vectors else None)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile every attention layer's per-edge hot path with ``torch.compile``.

        The radius graph, the input checks and the projections stay eager; the gathers, products
        and scatters over edges, where the time goes, become a few fused loops shared by all
        layers, reused by batches of any size once the first few have compiled them. Arguments
        go to ``torch.compile``.
        """
        if self.neighbor_embedding is not None:
            self.neighbor_embedding.compile(*args, **kwargs)
        for layer in self.attention_layers:
            layer.compile(*args, **kwargs)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, num_heads={self.num_heads}, num_rbf={self.num_rbf}, "
            f"rbf_type={self.rbf_type!r}, cutoff=({self.cutoff_lower}, {self.cutoff_upper}))"
        )
