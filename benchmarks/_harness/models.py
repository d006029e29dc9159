"""Models the benchmarks build besides molgnn's own (which come from
:func:`molgnn.models.build_model`): torchmd-net 3.x's equivariant transformer."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CUTOFF", "MAX_NUM_NEIGHBORS", "count_parameters", "torchmdnet_et", "torchmdnet_et_args"]

#: torchmd-net's QM9 ET: 5 Å cutoff, at most 64 neighbours per atom.
CUTOFF = 5.0
MAX_NUM_NEIGHBORS = 64


def torchmdnet_et_args(
    hidden_channels: int, num_layers: int, num_heads: int, num_rbf: int
) -> dict[str, Any]:
    """torchmd-net's ``create_model`` arguments for its ET in the size molgnn's ET calls
    ``hidden_channels`` etc. (scalar output, which torchmd-net makes its ``EquivariantScalar``
    head, sum over atoms, vector cutoff, no prior, no forces)."""
    return dict(
        model="equivariant-transformer", embedding_dimension=hidden_channels,
        num_layers=num_layers, num_rbf=num_rbf, rbf_type="expnorm", trainable_rbf=False,
        activation="silu", attn_activation="silu", neighbor_embedding=True, num_heads=num_heads,
        distance_influence="both", cutoff_lower=0.0, cutoff_upper=CUTOFF, max_z=100,
        max_num_neighbors=MAX_NUM_NEIGHBORS, vector_cutoff=True, output_model="Scalar",
        reduce_op="sum", prior_model=None, derivative=False, atom_filter=-1, precision=32,
    )  # fmt: skip


def torchmdnet_et(
    hidden_channels: int, num_layers: int, num_heads: int, num_rbf: int
) -> torch.nn.Module:
    """A freshly initialised torchmd-net ET (seed torch first); needs torchmd-net 3.x."""
    from torchmdnet.models.model import create_model

    return create_model(torchmdnet_et_args(hidden_channels, num_layers, num_heads, num_rbf))


def count_parameters(model: torch.nn.Module) -> int:
    """The number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
