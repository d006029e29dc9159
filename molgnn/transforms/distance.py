"""Edge lengths and edge vectors."""

from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.transforms._checks import check_pos, describe, require

__all__ = ["Distance"]


class Distance(BaseTransform):
    r"""Sets ``edge_vec`` ``[E, 3]`` and ``edge_weight`` ``[E]`` from ``edge_index`` and ``pos``.

    :math:`\mathbf{e}_{ji} = \mathbf{r}_j - \mathbf{r}_i` for the edge ``(j, i)`` (neighbour
    minus centre, torchmd-net's convention), and ``edge_weight`` is its length.

    Args:
        vectors: Also store ``edge_vec`` (default: ``True``).
    """

    def __init__(self, vectors: bool = True) -> None:
        self.vectors = vectors

    def forward(self, data: Data) -> Data:
        require(data, "pos", "edge_index", transform="Distance")
        check_pos(data.pos, describe(data))
        vec = data.pos[data.edge_index[0]] - data.pos[data.edge_index[1]]
        data.edge_weight = vec.norm(dim=-1)
        if self.vectors:
            data.edge_vec = vec
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(vectors={self.vectors})"
