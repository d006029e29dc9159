"""Models the benchmarks build besides molgnn's own (which come from
:func:`molgnn.models.build_model`): torchmd-net 3.x's equivariant transformer and TensorNet."""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "CUTOFF",
    "MAX_NUM_NEIGHBORS",
    "TORCHMDNET_PLAIN_OPS",
    "count_parameters",
    "torchmdnet_et",
    "torchmdnet_et_args",
    "torchmdnet_tensornet",
    "torchmdnet_tensornet_args",
    "use_torchmdnet_plain_tensornet",
]

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


def torchmdnet_tensornet_args(
    hidden_channels: int, num_layers: int, num_rbf: int
) -> dict[str, Any]:
    """torchmd-net's ``create_model`` arguments for its TensorNet in molgnn's
    ``tensornet-qm9`` make-up at these sizes (O(3), Scalar head, sum over atoms, no prior, no
    forces; ``static_shapes=False``, ``torchmd-train``'s default: no padded neighbour list)."""
    return dict(
        model="tensornet", embedding_dimension=hidden_channels, num_layers=num_layers,
        num_rbf=num_rbf, rbf_type="expnorm", trainable_rbf=False, activation="silu",
        cutoff_lower=0.0, cutoff_upper=CUTOFF, max_z=100, max_num_neighbors=MAX_NUM_NEIGHBORS,
        equivariance_invariance_group="O(3)", static_shapes=False, output_model="Scalar",
        reduce_op="sum", prior_model=None, derivative=False, atom_filter=-1, precision=32,
    )  # fmt: skip


#: torchmd-net's plain-PyTorch TensorNet operators, by the names its Warp operators replace.
TORCHMDNET_PLAIN_OPS = {
    "compose_tensor": "_compose_tensor",
    "decompose_tensor": "_decompose_tensor",
    "tensor_matmul_o3": "_tensor_matmul_o3",
    "tensor_matmul_so3": "_tensor_matmul_so3",
}


def use_torchmdnet_plain_tensornet() -> None:
    """Make torchmd-net build and run TensorNet in its plain-PyTorch formulation (what it runs
    without warp-lang), for the rest of this process.

    Raises:
        RuntimeError: if this torchmd-net's TensorNet module lacks the plain operators.
    """
    import torchmdnet.models.tensornet as module

    for name, plain in TORCHMDNET_PLAIN_OPS.items():
        if not hasattr(module, plain):
            raise RuntimeError(f"torchmd-net's tensornet module has no {plain}")
        setattr(module, name, getattr(module, plain))
    module.OPT = False  # TensorNet's layers read it when they are built


def torchmdnet_tensornet(hidden_channels: int, num_layers: int, num_rbf: int) -> torch.nn.Module:
    """A freshly initialised torchmd-net TensorNet (seed torch first); needs torchmd-net 3.x.

    It runs torchmd-net's Warp kernels when warp-lang is installed (torchmd-net's default),
    its plain PyTorch otherwise or after :func:`use_torchmdnet_plain_tensornet`.
    """
    from torchmdnet.models.model import create_model

    return create_model(torchmdnet_tensornet_args(hidden_channels, num_layers, num_rbf))


def count_parameters(model: torch.nn.Module) -> int:
    """The number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
