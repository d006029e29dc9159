"""Layers: radial bases, cutoffs, equivariant attention, gated blocks, output heads, priors."""

from molgnn.nn.activations import ACTIVATIONS, ShiftedSoftplus
from molgnn.nn.attention import EquivariantMultiHeadAttention
from molgnn.nn.embedding import NeighborEmbedding
from molgnn.nn.gated import GatedEquivariantBlock, safe_norm
from molgnn.nn.heads import (
    HEADS,
    DipoleMoment,
    ElectronicSpatialExtent,
    EquivariantDipoleMoment,
    EquivariantScalar,
    EquivariantVectorOutput,
    OutputHead,
    Scalar,
)
from molgnn.nn.hot_path import eager_hot_path
from molgnn.nn.mlp import MLP
from molgnn.nn.pool import POOLS, GlobalPool
from molgnn.nn.prior import Atomref
from molgnn.nn.radial import RBFS, CosineCutoff, ExpNormalSmearing, GaussianSmearing
from molgnn.nn.radius import radius_graph, record_truncation
from molgnn.nn.reduce import REDUCE_OPS, reduce_atoms, scatter_mean_with_zero
from molgnn.nn.scatter import scatter_max, scatter_mean, scatter_sum

__all__ = [
    "ACTIVATIONS",
    "HEADS",
    "MLP",
    "POOLS",
    "RBFS",
    "REDUCE_OPS",
    "Atomref",
    "CosineCutoff",
    "DipoleMoment",
    "ElectronicSpatialExtent",
    "EquivariantDipoleMoment",
    "EquivariantMultiHeadAttention",
    "EquivariantScalar",
    "EquivariantVectorOutput",
    "ExpNormalSmearing",
    "GatedEquivariantBlock",
    "GaussianSmearing",
    "GlobalPool",
    "NeighborEmbedding",
    "OutputHead",
    "Scalar",
    "ShiftedSoftplus",
    "eager_hot_path",
    "radius_graph",
    "record_truncation",
    "reduce_atoms",
    "safe_norm",
    "scatter_max",
    "scatter_mean",
    "scatter_mean_with_zero",
    "scatter_sum",
]
