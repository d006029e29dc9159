"""Radius-graph edges as a dataset transform."""

from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from molgnn.nn.radius import radius_graph
from molgnn.transforms._checks import describe, require

__all__ = ["RadiusGraph"]


class RadiusGraph(BaseTransform):
    r"""Sets ``edge_index`` to all atom pairs closer than ``cutoff``, in pure PyTorch.

    Uses [`molgnn.nn.radius_graph`][molgnn.nn.radius_graph], so neither pyg-lib nor torch-cluster is
    needed. Edges point from neighbour $j$ (row 0) to centre $i$ (row 1) and are sorted by centre;
    an atom with more than ``max_num_neighbors`` neighbours keeps the nearest ones. Precomputing
    the graph once per molecule saves the search in every training step.

    Args:
        cutoff: Cutoff radius in Å (default: ``5.0``).
        max_num_neighbors: Most neighbours kept per atom, the nearest ones; ``None`` keeps all
            (default: ``32``).
        loop: Include self loops (default: ``False``).

    Shapes:
        - **input:** pos ``[N, 3]``
        - **output:** edge_index ``[2, E]``
    """

    def __init__(
        self, cutoff: float = 5.0, max_num_neighbors: int | None = 32, loop: bool = False
    ) -> None:
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        if max_num_neighbors is not None and max_num_neighbors < 1:
            raise ValueError(f"max_num_neighbors must be positive or None, got {max_num_neighbors}")
        self.cutoff = cutoff
        self.max_num_neighbors = max_num_neighbors
        self.loop = loop

    def forward(self, data: Data) -> Data:
        require(data, "pos", transform="RadiusGraph")
        try:  # radius_graph validates pos; name the molecule in its message
            data.edge_index = radius_graph(
                data.pos,
                self.cutoff,
                None,
                loop=self.loop,
                max_num_neighbors=self.max_num_neighbors,
            )
        except ValueError as err:
            raise ValueError(f"RadiusGraph, {describe(data)}: {err}") from None
        return data

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(cutoff={self.cutoff}, "
            f"max_num_neighbors={self.max_num_neighbors}, loop={self.loop})"
        )
