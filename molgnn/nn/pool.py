"""Global pooling over the atoms of each molecule, chosen by name (PyG's aggregations), and the
pooled output head."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch_geometric.nn.aggr import (
    Aggregation,
    AttentionalAggregation,
    MaxAggregation,
    MeanAggregation,
    Set2Set,
    SumAggregation,
)

from molgnn.nn.heads import OutputHead
from molgnn.nn.mlp import MLP

__all__ = ["POOLS", "GlobalPool", "PooledHead"]


def _attention(channels: int, set2set_steps: int) -> Aggregation:
    gate = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, 1))
    return AttentionalAggregation(gate_nn=gate)


#: Pooling name -> builder ``(channels, set2set_steps) -> aggregation`` (PyG's global pools).
POOLS: dict[str, Callable[[int, int], Aggregation]] = {
    "sum": lambda channels, steps: SumAggregation(),
    "mean": lambda channels, steps: MeanAggregation(),
    "max": lambda channels, steps: MaxAggregation(),
    "attention": _attention,
    "set2set": lambda channels, steps: Set2Set(channels, processing_steps=steps),
}


class GlobalPool(nn.Module):
    r"""Pools the atom features of each molecule into one vector.

    ``sum``, ``mean`` and ``max`` reduce each feature over the atoms. ``attention`` is PyG's
    ``AttentionalAggregation`` (global soft attention, Li et al.,
    2016, https://arxiv.org/abs/1511.05493) with a learned gate
    $\mathbf{y} = \sum_i \operatorname{softmax}_i(g(\mathbf{x}_i))\,\mathbf{x}_i$.
    ``set2set`` is PyG's ``Set2Set`` (Vinyals et al., 2016,
    https://arxiv.org/abs/1511.06391), whose output is twice as wide.

    Args:
        pool: A name from [`POOLS`][molgnn.nn.POOLS].
        channels: Feature size $C$.
        set2set_steps: Processing steps of ``set2set`` (default: ``3``).

    Raises:
        ValueError: for an unknown ``pool``, listing the valid names.

    Shapes:
        - **input:** x ``[N, C]``, batch ``[N]``
        - **output:** ``[B, C]`` (``[B, 2C]`` for ``set2set``)
    """

    def __init__(self, pool: str, channels: int, set2set_steps: int = 3) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid pools: {', '.join(POOLS)}")
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.pool = pool
        self.channels = channels
        self.set2set_steps = set2set_steps
        self.aggr = POOLS[pool](channels, set2set_steps)
        self.out_channels = 2 * channels if pool == "set2set" else channels

    def reset_parameters(self) -> None:
        """Re-initialise the learned pools (``attention``, ``set2set``)."""
        self.aggr.reset_parameters()

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Pool ``x`` ``[N, C]`` over the molecules of ``batch`` into ``[num_graphs, C']``."""
        return self.aggr(x, batch, dim_size=num_graphs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.pool!r}, channels={self.channels})"


class PooledHead(OutputHead):
    """Global pooling, then an MLP: atom features ``[N, C]`` to predictions ``[B, T]``.

    ``pre_reduce`` passes the atom features through, ``reduce`` is the chosen
    [`GlobalPool`][molgnn.nn.GlobalPool] and ``post_reduce`` the MLP (one hidden layer of width
    $C$). The head of [`PooledGNN`][molgnn.models.PooledGNN] (see
    [`PooledGNNConfig`][molgnn.models.PooledGNNConfig]).

    Args:
        hidden_channels: Feature size $C$.
        pool: A name from [`POOLS`][molgnn.nn.POOLS] (default: ``"sum"``).
        out_channels: Targets $T$ (default: ``1``).
        activation: Activation name (default: ``"silu"``).
        dropout: Dropout before the MLP (default: ``0.0``).

    Raises:
        ValueError: for an unknown ``pool``, listing the valid names.

    Shapes:
        - **input:** x ``[N, C]``, batch ``[N]``
        - **output:** ``[B, T]``
    """

    def __init__(
        self,
        hidden_channels: int,
        pool: str = "sum",
        out_channels: int = 1,
        activation: str = "silu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(hidden_channels, out_channels=out_channels)
        self.pooling = GlobalPool(pool, hidden_channels)
        self.dropout = nn.Dropout(dropout)
        self.mlp = MLP(
            self.pooling.out_channels,
            hidden_channels,
            out_channels,
            activation,
            num_hidden_layers=1,
        )

    def reset_parameters(self) -> None:
        """Re-initialise the pooling and the MLP."""
        self.pooling.reset_parameters()
        self.mlp.reset_parameters()

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        """The atom features, unchanged: ``[N, C]``."""
        return x

    def reduce(self, h: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """The chosen global pooling: ``[N, C]`` -> ``[B, C]`` (``[B, 2C]`` for ``set2set``)."""
        return self.pooling(h, batch, num_graphs)

    def post_reduce(self, y: Tensor) -> Tensor:
        """The MLP: ``[B, C]`` -> ``[B, T]``."""
        return self.mlp(self.dropout(y))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(pool={self.pooling.pool!r}, "
            f"out_channels={self.out_channels})"
        )
