"""Layers: radial bases, cutoffs, equivariant attention, gated blocks, output heads, priors."""

from molgnn.nn.radius import radius_graph
from molgnn.nn.scatter import scatter_max, scatter_mean, scatter_sum

__all__ = ["radius_graph", "scatter_max", "scatter_mean", "scatter_sum"]
