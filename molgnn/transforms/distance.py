"""Edge lengths and edge vectors."""

from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.transforms._checks import check_edge_index, check_pos, describe, require

__all__ = ["Distance"]


class Distance(BaseTransform):
    r"""Sets ``edge_weight`` (edge lengths) and ``edge_vec`` (edge vectors) from ``edge_index``.

    For the edge $(j, i)$, i.e. ``edge_index[:, e] = (j, i)``,

    $$
    \mathbf{e}_{ji} = \mathbf{r}_j - \mathbf{r}_i, \qquad
    w_{ji} = \lVert \mathbf{e}_{ji} \rVert,
    $$

    the neighbour minus the centre, torchmd-net's convention.

    Args:
        vectors: Also store ``edge_vec`` (default: ``True``).

    Shapes:
        - **input:** pos ``[N, 3]``, edge_index ``[2, E]``
        - **output:** edge_weight ``[E]``, edge_vec ``[E, 3]``
    """

    def __init__(self, vectors: bool = True) -> None:
        self.vectors = vectors

    def forward(self, data: Data) -> Data:
        require(data, "pos", "edge_index", transform="Distance")
        where = describe(data)
        check_pos(data.pos, where)
        check_edge_index(data.edge_index, data.pos.size(0), where)
        vec = data.pos[data.edge_index[0]] - data.pos[data.edge_index[1]]  # [E, 3]
        data.edge_weight = vec.norm(dim=-1)
        if self.vectors:
            data.edge_vec = vec
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(vectors={self.vectors})"
