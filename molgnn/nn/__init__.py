"""Layers: radial bases, cutoffs, equivariant attention, gated blocks, message-passing
convolutions, pooling, output heads, priors."""

from molgnn.nn.activations import ACTIVATIONS, ShiftedSoftplus
from molgnn.nn.attention import EquivariantMultiHeadAttention
from molgnn.nn.convs import (
    CONVS,
    NORMS,
    ConvOptions,
    flat_degree_histogram,
    in_degree_histogram,
)
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
from molgnn.nn.neighbours import NeighbourTable, message_sum, neighbour_table
from molgnn.nn.pool import POOLS, GlobalPool, PooledHead
from molgnn.nn.prior import Atomref
from molgnn.nn.radial import RBFS, CosineCutoff, ExpNormalSmearing, GaussianSmearing
from molgnn.nn.radius import radius_graph, record_truncation
from molgnn.nn.reduce import REDUCE_OPS, reduce_atoms, scatter_mean_with_zero
from molgnn.nn.scatter import scatter_max, scatter_mean, scatter_sum
from molgnn.nn.tensornet import GROUPS, TensorEmbedding, TensorInteraction
from molgnn.nn.tensors import (
    TensorLinear,
    channel_matmul,
    compose,
    decompose,
    scalar_tensor,
    skew,
    skew_vector,
    squared_norm,
    symmetric_traceless,
    tensor_invariants,
)

__all__ = [
    "ACTIVATIONS",
    "CONVS",
    "GROUPS",
    "HEADS",
    "MLP",
    "NORMS",
    "POOLS",
    "RBFS",
    "REDUCE_OPS",
    "Atomref",
    "ConvOptions",
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
    "NeighbourTable",
    "OutputHead",
    "PooledHead",
    "Scalar",
    "ShiftedSoftplus",
    "TensorEmbedding",
    "TensorInteraction",
    "TensorLinear",
    "channel_matmul",
    "compose",
    "decompose",
    "eager_hot_path",
    "flat_degree_histogram",
    "in_degree_histogram",
    "message_sum",
    "neighbour_table",
    "radius_graph",
    "record_truncation",
    "reduce_atoms",
    "safe_norm",
    "scalar_tensor",
    "scatter_max",
    "scatter_mean",
    "scatter_mean_with_zero",
    "scatter_sum",
    "skew",
    "skew_vector",
    "squared_norm",
    "symmetric_traceless",
    "tensor_invariants",
]
