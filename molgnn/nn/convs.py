"""Message-passing convolutions with edge features, chosen by name (PyG's layers), and norms.

The layers of [`PooledGNN`][molgnn.models.PooledGNN]: every builder in [`CONVS`][molgnn.nn.CONVS]
makes a layer ``conv(x, edge_index, edge_attr)`` that maps atom features ``[N, C]`` to ``[N, C]``,
sending messages from ``edge_index[0]`` to ``edge_index[1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv, GINEConv, NNConv, PNAConv

from molgnn.nn.activations import activation as make_activation

__all__ = [
    "CONVS",
    "NNCONV_EDGE_HIDDEN",
    "NORMS",
    "ConvOptions",
    "flat_degree_histogram",
    "in_degree_histogram",
]

#: Hidden width of the edge network of ``nnconv`` (it outputs a ``C x C`` matrix per edge).
NNCONV_EDGE_HIDDEN = 64


@dataclass(frozen=True)
class ConvOptions:
    """What some builders of [`CONVS`][molgnn.nn.CONVS] read besides the sizes.

    Args:
        activation: Activation name of the MLPs of ``gine`` and ``nnconv``.
        num_heads: Attention heads $H$ of ``gatv2`` (the channels must be divisible by it).
        deg: In-degree histogram ``[D + 1]`` of the training graphs, for ``pna``'s degree
            scalers (see [`in_degree_histogram`][molgnn.nn.in_degree_histogram]).
    """

    activation: str
    num_heads: int
    deg: Tensor


def _gine(channels: int, edge_dim: int, opts: ConvOptions) -> nn.Module:
    # GIN with edge features (Hu et al., 2020): MLP((1 + eps) x_i + sum_j ReLU(x_j + W e_ji)).
    mlp = nn.Sequential(
        nn.Linear(channels, channels),
        make_activation(opts.activation),
        nn.Linear(channels, channels),
    )
    return GINEConv(mlp, edge_dim=edge_dim)


def _nnconv(channels: int, edge_dim: int, opts: ConvOptions) -> nn.Module:
    # The edge network of Gilmer et al. (2017): an MLP maps each edge's features to a C x C
    # matrix that multiplies the neighbour's features; messages are averaged.
    edge_net = nn.Sequential(
        nn.Linear(edge_dim, NNCONV_EDGE_HIDDEN),
        make_activation(opts.activation),
        nn.Linear(NNCONV_EDGE_HIDDEN, channels * channels),
    )
    return NNConv(channels, channels, edge_net, aggr="mean")


def _gatv2(channels: int, edge_dim: int, opts: ConvOptions) -> nn.Module:
    if channels % opts.num_heads:
        raise ValueError(
            f"hidden_channels ({channels}) must be divisible by num_heads ({opts.num_heads}) "
            "for gatv2"
        )
    return GATv2Conv(channels, channels // opts.num_heads, heads=opts.num_heads, edge_dim=edge_dim)


def _pna(channels: int, edge_dim: int, opts: ConvOptions) -> nn.Module:
    return PNAConv(
        channels,
        channels,
        aggregators=["mean", "min", "max", "std"],
        scalers=["identity", "amplification", "attenuation"],
        deg=opts.deg,
        edge_dim=edge_dim,
        towers=1,
    )


#: Convolution name -> builder ``(channels, edge_dim, options) -> layer``: PyG's
#: ``GINEConv``, ``NNConv`` (the
#: MPNN edge network of Gilmer et al., 2017), ``GATv2Conv`` with
#: edge features and ``PNAConv``. ``nnconv`` builds a ``C x C``
#: matrix for every edge (``E * C * C`` floats per layer): it suits bond graphs (as in Gilmer et
#: al.) or small ``hidden_channels``; on a 5 Å radius graph at ``C = 128`` it is ~100x
#: slower than ``gine`` (see ``benchmarks/gnn_throughput.py``).
CONVS: dict[str, Callable[[int, int, ConvOptions], nn.Module]] = {
    "gine": _gine,
    "nnconv": _nnconv,
    "gatv2": _gatv2,
    "pna": _pna,
}

#: Normalisation name -> builder ``(channels) -> module``, applied after each convolution.
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "layer": nn.LayerNorm,
    "batch": nn.BatchNorm1d,
    "none": lambda channels: nn.Identity(),
}


def flat_degree_histogram(max_degree: int) -> Tensor:
    """A degree histogram ``[max_degree + 1]`` with every degree from 1 to ``max_degree``
    equally often: ``pna``'s default when the training graphs are not known."""
    deg = torch.ones(max_degree + 1, dtype=torch.long)
    deg[0] = 0
    return deg


def in_degree_histogram(graphs: Iterable[tuple[Tensor, int]]) -> Tensor:
    """In-degree histogram of graphs given as ``(edge_index [2, E], num_nodes)`` pairs.

    PNA's degree scalers normalise by the average log-degree of the training graphs
    (``PNAConv``'s ``deg``).

    Returns:
        ``deg`` ``[D + 1]``: ``deg[k]`` nodes have ``k`` incoming edges (``edge_index[1]``).

    Raises:
        ValueError: for no graphs.
    """
    hist = torch.zeros(1, dtype=torch.long)
    count = 0
    for edge_index, num_nodes in graphs:
        in_degree = torch.bincount(edge_index[1], minlength=num_nodes)  # [N]
        counts = torch.bincount(in_degree)  # [max degree + 1]
        if counts.numel() > hist.numel():
            hist = torch.cat([hist, hist.new_zeros(counts.numel() - hist.numel())])
        hist[: counts.numel()] += counts
        count += 1
    if count == 0:
        raise ValueError("a degree histogram needs at least one molecule")
    return hist
