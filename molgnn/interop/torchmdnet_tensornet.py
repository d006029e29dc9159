r"""Convert torchmd-net 3.x TensorNet models into molgnn's [`TensorNet`][molgnn.models.TensorNet].

[`molgnn.interop.from_torchmdnet`][molgnn.interop.from_torchmdnet] dispatches here for a
``TorchMD_Net`` whose representation is a ``TensorNet``, and for a checkpoint whose hyperparameters
say ``model: tensornet``; heads, priors, standardisation and forces convert as for the ET (see
[`molgnn.interop.torchmdnet`][molgnn.interop.torchmdnet]). This module reads TensorNet's options and
renames its weights.

What converts, and what is refused by name:

- ``equivariance_invariance_group`` ``"O(3)"`` and ``"SO(3)"``; both radial bases, trainable or
  not; every activation molgnn has; any cutoffs, ``max_z`` and ``num_layers`` (0 included).
- Heads: torchmd-net builds TensorNet's heads without the ``Equivariant`` prefix (TensorNet has
  no vector features): ``Scalar``, ``DipoleMoment`` and ``ElectronicSpatialExtent`` convert;
  heads that read vectors are refused.
- ``static_shapes`` changes only how torchmd-net pads its neighbour list: accepted.
- Refused: ``charge: true`` (torchmd-net then scales TensorNet's products by the total charge
  $1 + 0.1 q$; molgnn models take no charges, and a converted model computes what
  torchmd-net computes for neutral molecules, ``q = 0``), periodic ``box_vecs``,
  ``atom_filter``, precisions other than 32 and 64, and ``model: tensornet2``.
- The SO(3) variant's orientation. torchmd-net 3.1 runs TensorNet either as plain PyTorch or,
  when warp-lang is installed (a requirement of its package, so the usual case), through Warp
  kernels, and the two build the embedding's antisymmetric part with opposite signs: the Warp
  path evaluates the PyTorch model on the inverted molecule. The O(3) variant gives the same
  numbers either way (it is invariant under inversion); an SO(3) model does not, and it converts
  as it runs in its source: a live model by its ``representation_model.opt`` flag, a checkpoint
  as torchmd-net 3.1 with warp-lang runs it. The conversion negates the embedding's
  $W_A$ for the Warp path, which is the same as inverting the input.
- ``activation: ssp``: torchmd-net subtracts $\log 2$ rounded to float32, molgnn the
  float64 value, so float64 models with it agree to about 1e-7 (float32 ones fully).
- ``max_num_neighbors``: torchmd-net's TensorNet budgets ``max_num_neighbors`` pairs per atom
  on average (``max_num_pairs = -max_num_neighbors``), molgnn keeps the nearest
  ``max_num_neighbors`` of each atom. They agree whenever no atom has more neighbours within
  the cutoff than that, as on QM9 with the default 64.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from molgnn.interop.torchmdnet import (
    _HEADS,
    _check_prior,
    _head_name,
    _Prior,
    _priors_from_args,
    _reduce,
    _refuse_options,
    _Source,
)
from molgnn.nn.heads import HEADS

__all__ = [
    "TENSORNET_KIND",
    "TensorNetSource",
    "tensornet_source_from_args",
    "tensornet_source_from_module",
    "tensornet_state_dict",
]

#: The ``kind`` of a converted TensorNet (its key in
#: [`molgnn.models.MODEL_CONFIGS`][molgnn.models.MODEL_CONFIGS]).
TENSORNET_KIND = "tensornet"

# torchmd-net name (after ``representation.``) -> molgnn name; the distance projections 1-3
# are stacked into one matrix separately.
_RENAMES = (
    (r"tensor_embedding\.emb\.", "tensor_embedding.embedding."),
    (r"tensor_embedding\.emb2\.", "tensor_embedding.pair_proj."),
    (r"tensor_embedding\.linears_scalar\.0\.", "tensor_embedding.gate_mlp.0."),
    (r"tensor_embedding\.linears_scalar\.1\.", "tensor_embedding.gate_mlp.2."),
    (r"tensor_embedding\.linears_tensor\.0\.", "tensor_embedding.tensor_linear.lin_i."),
    (r"tensor_embedding\.linears_tensor\.1\.", "tensor_embedding.tensor_linear.lin_a."),
    (r"tensor_embedding\.linears_tensor\.2\.", "tensor_embedding.tensor_linear.lin_s."),
    (r"layers\.(\d+)\.linears_scalar\.0\.", r"layers.\1.distance_mlp.0."),
    (r"layers\.(\d+)\.linears_scalar\.1\.", r"layers.\1.distance_mlp.2."),
    (r"layers\.(\d+)\.linears_scalar\.2\.", r"layers.\1.distance_mlp.4."),
    (r"layers\.(\d+)\.linears_tensor\.0\.", r"layers.\1.linear_in.lin_i."),
    (r"layers\.(\d+)\.linears_tensor\.1\.", r"layers.\1.linear_in.lin_a."),
    (r"layers\.(\d+)\.linears_tensor\.2\.", r"layers.\1.linear_in.lin_s."),
    (r"layers\.(\d+)\.linears_tensor\.3\.", r"layers.\1.linear_out.lin_i."),
    (r"layers\.(\d+)\.linears_tensor\.4\.", r"layers.\1.linear_out.lin_a."),
    (r"layers\.(\d+)\.linears_tensor\.5\.", r"layers.\1.linear_out.lin_s."),
)
_DISTANCE_PROJ = re.compile(r"tensor_embedding\.distance_proj([123])\.(weight|bias)")
#: torchmd-net's cache of pair embeddings (``setup_for_inference``), recomputed from weights.
_DERIVED = ("tensor_embedding.Zij_map",)


@dataclass
class TensorNetSource(_Source):
    """A torchmd-net TensorNet's make-up, with the path its source runs on.

    Attributes:
        warp_kernels: Whether the source runs torchmd-net's Warp kernels, whose SO(3) variant
            is the PyTorch formulation's on the inverted molecule (see the module docstring).
    """

    warp_kernels: bool = True


def _supported_heads() -> str:
    names = [name for name, head in _HEADS.items() if not HEADS[head].uses_vectors]
    return f"TensorNet converts with the heads {', '.join(names)}"


def _tensornet_head(name: str) -> str:
    name = _head_name(name)
    if HEADS[_HEADS[name]].uses_vectors:
        raise ValueError(
            f"cannot convert a TensorNet with the {name} head: it reads vector features, which "
            f"TensorNet does not produce; {_supported_heads()}"
        )
    return name


def tensornet_source_from_module(model: Any) -> TensorNetSource:
    """What a live ``TorchMD_Net`` with a ``TensorNet`` representation is made of.

    Raises:
        ValueError: for periodic boxes, a head that reads vectors, or a prior molgnn lacks.
    """
    rep: Any = model.representation_model
    if type(rep).__name__ != "TensorNet":
        raise ValueError(f"expected a TensorNet representation, got {type(rep).__name__}")
    box = getattr(rep.distance, "box", None)
    if getattr(rep.distance, "use_periodic", False) and box is not None and bool(box.any()):
        raise ValueError(
            "cannot convert a torchmd-net TensorNet with periodic box vectors (box_vecs): "
            "molgnn's TensorNet has no periodic boundary conditions"
        )
    head = _tensornet_head(type(model.output_model).__name__)
    priors = []
    for prior in model.prior_model if model.prior_model is not None else []:
        name = type(prior).__name__
        _check_prior(name)
        priors.append(_Prior(name, bool(prior.enable), bool(prior.atomref.weight.requires_grad)))
    representation = dict(
        hidden_channels=int(rep.hidden_channels),
        num_layers=int(rep.num_layers),
        num_rbf=int(rep.num_rbf),
        rbf_type=str(rep.rbf_type),
        trainable_rbf=bool(rep.distance_expansion.trainable),
        activation=str(rep.activation),
        cutoff_lower=float(rep.cutoff_lower),
        cutoff_upper=float(rep.cutoff_upper),
        max_z=int(rep.tensor_embedding.max_z),
        max_num_neighbors=abs(int(rep.distance.max_num_pairs)),
        equivariance_invariance_group=str(rep.equivariance_invariance_group),
    )
    return TensorNetSource(
        representation,
        head,
        _reduce(head, model.output_model.reduce_op),
        priors,
        bool(model.derivative),
        kind=TENSORNET_KIND,
        warp_kernels=bool(getattr(rep, "opt", False)),
    )


def tensornet_source_from_args(args: dict[str, Any]) -> TensorNetSource:
    """What torchmd-net training hyperparameters with ``model: tensornet`` describe (run, as
    torchmd-net 3.1 with its required warp-lang runs them, through the Warp kernels).

    Raises:
        ValueError: naming the option, for anything molgnn cannot reproduce.
    """
    if args.get("model") != "tensornet":
        raise ValueError(f"expected model='tensornet', got model={args.get('model')!r}")
    charge = {
        "charge": (
            bool(args.get("charge", False)),
            "TensorNet then scales its products by the molecules' total charge, and molgnn "
            "models take no charges",
        ),
    }
    _refuse_options(args, "TensorNet", charge)
    head = _tensornet_head(str(args.get("output_model", "Scalar")))
    representation = dict(
        hidden_channels=int(args["embedding_dimension"]),
        num_layers=int(args["num_layers"]),
        num_rbf=int(args["num_rbf"]),
        rbf_type=str(args["rbf_type"]),
        trainable_rbf=bool(args["trainable_rbf"]),
        activation=str(args["activation"]),
        cutoff_lower=float(args["cutoff_lower"]),
        cutoff_upper=float(args["cutoff_upper"]),
        max_z=int(args["max_z"]),
        max_num_neighbors=int(args.get("max_num_neighbors", 64)),
        # torchmd-train's default, which it records in every checkpoint it writes
        equivariance_invariance_group=str(args.get("equivariance_invariance_group", "O(3)")),
    )
    return TensorNetSource(
        representation,
        head,
        _reduce(head, str(args.get("reduce_op", "add"))),
        _priors_from_args(args),
        bool(args.get("derivative", False)),
        kind=TENSORNET_KIND,
        warp_kernels=True,
    )


def tensornet_state_dict(state: dict[str, Tensor], source: _Source) -> dict[str, Tensor]:
    """Rename torchmd-net TensorNet weights (``representation.*``, as the ET converter's first
    pass leaves them) to molgnn's; other keys (head, prior, ``mean``, ``std``) pass unchanged.

    The three embedding distance projections (``distance_proj1..3``, each ``[C, R]``) become
    one ``[3 C, R]`` projection, in the order I, A, S. For an SO(3) source that runs the Warp
    kernels, the embedding's $W_A$ is negated (see the module docstring).

    Raises:
        ValueError: when a distance projection is incomplete.
    """
    out: dict[str, Tensor] = {}
    stacked: dict[str, dict[int, Tensor]] = {"weight": {}, "bias": {}}
    prefix = "representation."
    for key, value in state.items():
        if not key.startswith(prefix):
            out[key] = value
            continue
        rest = key[len(prefix) :]
        if rest in _DERIVED:
            continue
        match = _DISTANCE_PROJ.fullmatch(rest)
        if match is not None:
            stacked[match.group(2)][int(match.group(1))] = value
            continue
        for pattern, new in _RENAMES:
            renamed, count = re.subn("^" + pattern, new, rest)
            if count:
                rest = renamed
                break
        out[prefix + rest] = value
    for kind, parts in stacked.items():
        if not parts:
            continue
        if sorted(parts) != [1, 2, 3]:
            raise ValueError(
                f"torchmd-net TensorNet weights hold distance_proj {sorted(parts)} {kind}s; "
                "expected 1, 2 and 3"
            )
        out[f"{prefix}tensor_embedding.distance_proj.{kind}"] = torch.cat(
            [parts[1], parts[2], parts[3]], dim=0
        )
    so3 = source.representation.get("equivariance_invariance_group") == "SO(3)"
    if so3 and getattr(source, "warp_kernels", False):
        key = f"{prefix}tensor_embedding.tensor_linear.lin_a.weight"
        if key in out:
            out[key] = -out[key]
    return out
