"""Global pooling over the atoms of each molecule, by name (PyG's layers)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch_geometric.nn import (
    AttentionalAggregation,
    Set2Set,
    global_add_pool,
    global_max_pool,
    global_mean_pool,
)

__all__ = ["POOLS", "GlobalPool"]

#: Pooling name -> (output width as a multiple of the input width).
POOLS: dict[str, int] = {"sum": 1, "mean": 1, "max": 1, "attention": 1, "set2set": 2}


class GlobalPool(nn.Module):
    r"""Pools atom features into one vector per molecule.

    ``sum``, ``mean`` and ``max`` are PyG's global pools; ``attention`` is
    :class:`torch_geometric.nn.AttentionalAggregation` with a learned gate
    (Li et al., 2016); ``set2set`` is :class:`torch_geometric.nn.Set2Set` (Vinyals et al., 2016),
    whose output is twice as wide.

    Args:
        pool: Name from :data:`POOLS`.
        channels: Feature size :math:`C`.
        set2set_steps: Processing steps of Set2Set (default: ``3``).

    Shapes:
        - **input:** x ``[N, C]``, batch ``[N]``
        - **output:** ``[B, C]`` (``[B, 2C]`` for ``set2set``)
    """

    def __init__(self, pool: str, channels: int, set2set_steps: int = 3) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid pools: {', '.join(POOLS)}")
        self.pool = pool
        self.channels = channels
        self.out_channels = POOLS[pool] * channels
        self.module: nn.Module | None = None
        self._fn: Callable[..., Tensor] | None = None
        if pool == "attention":
            self.module = AttentionalAggregation(
                gate_nn=nn.Sequential(
                    nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, 1)
                )
            )
        elif pool == "set2set":
            self.module = Set2Set(channels, processing_steps=set2set_steps)
        else:
            self._fn = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}[
                pool
            ]

    def reset_parameters(self) -> None:
        """Re-initialise the learned pools."""
        if self.module is not None:
            self.module.reset_parameters()  # type: ignore[operator]

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        if self._fn is not None:
            return self._fn(x, batch, num_graphs)
        assert self.module is not None
        return self.module(x, batch, dim_size=num_graphs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.pool!r}, channels={self.channels})"
