"""Convert torchmd-net 3.x Equivariant Transformer models into molgnn models.

Works from a live ``TorchMD_Net`` object or a torchmd-net (Lightning) checkpoint file. Reading a
checkpoint does not need torchmd-net installed; it is loaded with ``weights_only=True`` (with
Lightning's ``AttributeDict`` allowed when Lightning is installed).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from molgnn.models.factory import ETConfig
from molgnn.models.model import MolecularModel

__all__ = ["config_from_torchmdnet_args", "from_torchmdnet"]

_HEADS = {
    "EquivariantScalar": "equivariant_scalar",
    "Scalar": "scalar",
    "DipoleMoment": "dipole_moment",
    "EquivariantDipoleMoment": "equivariant_dipole_moment",
}


def _reduce_op(op: str) -> str:
    # torchmd-net 3.1 averages with ``scatter_reduce(..., include_self=True)`` into zeros, which
    # divides each molecule's sum by (number of atoms + 1); molgnn's "mean" divides by the number
    # of atoms, so such a model cannot be reproduced exactly.
    if op != "sum":
        raise ValueError(
            f"only torchmd-net models with reduce_op='sum' can be converted exactly, got {op!r} "
            "(torchmd-net's 'mean' divides each sum by the number of atoms + 1)"
        )
    return op


def _config_from_module(model: Any) -> ETConfig:
    rep: Any = getattr(model, "representation_model", None)
    if rep is None or type(rep).__name__ != "TorchMD_ET":
        raise ValueError(
            f"from_torchmdnet converts TorchMD_Net models with an Equivariant Transformer "
            f"representation; got {type(rep).__name__ if rep is not None else type(model).__name__}"
        )
    head_name = type(model.output_model).__name__
    if head_name not in _HEADS:
        raise ValueError(
            f"unsupported torchmd-net output model {head_name}; supported: {', '.join(_HEADS)}"
        )
    priors = list(model.prior_model) if getattr(model, "prior_model", None) is not None else []
    if any(type(p).__name__ != "Atomref" for p in priors) or len(priors) > 1:
        raise ValueError(
            f"only a single Atomref prior can be converted, got {[type(p).__name__ for p in priors]}"
        )
    return ETConfig(
        hidden_channels=rep.hidden_channels,
        num_layers=rep.num_layers,
        num_heads=rep.num_heads,
        num_rbf=rep.num_rbf,
        rbf_type=rep.rbf_type,
        trainable_rbf=rep.trainable_rbf,
        activation=rep.activation,
        attn_activation=rep.attn_activation,
        neighbor_embedding=rep.neighbor_embedding is not None,
        distance_influence=rep.distance_influence,
        cutoff_lower=float(rep.cutoff_lower),
        cutoff_upper=float(rep.cutoff_upper),
        max_z=rep.max_z,
        max_num_neighbors=max(32, -int(rep.distance.max_num_pairs)),
        vector_cutoff=bool(rep.attention_layers[0].vector_cutoff),
        head=_HEADS[head_name],
        reduce_op=_reduce_op(model.output_model.reduce_op),
        prior="atomref" if priors else None,
        derivative=bool(model.derivative),
    )


def config_from_torchmdnet_args(args: dict[str, Any]) -> ETConfig:
    """The :class:`~molgnn.models.ETConfig` of torchmd-net training hyperparameters."""
    if args.get("model") != "equivariant-transformer":
        raise ValueError(f"expected an equivariant-transformer model, got {args.get('model')!r}")
    head = args.get("output_model", "Scalar")
    head = "Equivariant" + head if not head.startswith("Equivariant") else head
    if head not in _HEADS:
        raise ValueError(f"unsupported torchmd-net output model {args.get('output_model')}")
    prior = args.get("prior_model")
    if prior not in (None, "Atomref") and not (
        isinstance(prior, dict) and set(prior) == {"Atomref"}
    ):
        raise ValueError(f"only the Atomref prior can be converted, got {prior!r}")
    return ETConfig(
        hidden_channels=int(args["embedding_dimension"]),
        num_layers=int(args["num_layers"]),
        num_heads=int(args["num_heads"]),
        num_rbf=int(args["num_rbf"]),
        rbf_type=args["rbf_type"],
        trainable_rbf=bool(args["trainable_rbf"]),
        activation=args["activation"],
        attn_activation=args["attn_activation"],
        neighbor_embedding=bool(args["neighbor_embedding"]),
        distance_influence=args["distance_influence"],
        cutoff_lower=float(args["cutoff_lower"]),
        cutoff_upper=float(args["cutoff_upper"]),
        max_z=int(args["max_z"]),
        max_num_neighbors=int(args.get("max_num_neighbors", 32)),
        vector_cutoff=bool(args.get("vector_cutoff", False)),
        head=_HEADS[head],
        reduce_op=_reduce_op(args.get("reduce_op", "sum")),
        prior="atomref" if prior else None,
        derivative=bool(args.get("derivative", False)),
    )


_MEAN_QUIRK = (
    "torchmd-net 3.x's reduce_op='mean' divides each molecule's sum by (atoms + 1): its scatter "
    "uses torch.scatter_reduce(..., 'mean') with include_self=True on a zero tensor. molgnn's mean "
    "divides by the number of atoms, so the outputs would differ; only reduce_op='sum' models convert"
)


def _check_reduce(reduce_op: str) -> None:
    if reduce_op != "sum":
        raise ValueError(_MEAN_QUIRK)


def _translate(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchmd-net parameter names -> molgnn's."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("model."):
            key = key[len("model.") :]
        if key.startswith("representation_model."):
            rest = key[len("representation_model.") :]
            if rest.startswith("distance."):
                continue  # the neighbour-list module's box buffer
            out["representation." + rest] = value
        elif key.startswith("output_model."):
            out["head." + key[len("output_model.") :]] = value
        elif key.startswith("prior_model.0.atomref.weight"):
            out["prior.weight"] = value.flatten()
        elif key.startswith("prior_model.0.initial_atomref"):
            out["prior.initial"] = value.flatten()
        elif key in ("mean", "std"):
            out[key] = value.reshape(-1)
    return out


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        allowed = []
        try:
            from lightning.fabric.utilities.data import AttributeDict

            allowed.append(AttributeDict)
        except ImportError:
            pass
        if not allowed:
            raise ValueError(
                f"{path} needs Lightning's AttributeDict to unpickle its hyperparameters; "
                f"pip install lightning, or convert a loaded model instead. Details: {err}"
            ) from None
        with torch.serialization.safe_globals(allowed):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as err2:
                raise ValueError(f"{path} holds objects molgnn will not unpickle: {err2}") from None


def from_torchmdnet(model_or_checkpoint: nn.Module | str | Path) -> MolecularModel:
    """Convert a torchmd-net 3.x ``TorchMD_Net`` ET model (or its checkpoint) to molgnn.

    Supported: an Equivariant Transformer representation, a ``Scalar``/``EquivariantScalar``
    (or dipole) head, an optional ``Atomref`` prior, ``mean``/``std`` and ``derivative``.
    The converted model gives the same outputs and forces (to floating-point rounding).

    Args:
        model_or_checkpoint: A ``TorchMD_Net`` module or the path of a torchmd-net checkpoint.

    Returns:
        A :class:`~molgnn.models.MolecularModel` in eval mode.

    Raises:
        ValueError: for other architectures, heads or priors.
    """
    if isinstance(model_or_checkpoint, str | Path):
        ckpt = _load_checkpoint(Path(model_or_checkpoint))
        if "hyper_parameters" not in ckpt or "state_dict" not in ckpt:
            raise ValueError(f"{model_or_checkpoint} is not a torchmd-net checkpoint")
        config = config_from_torchmdnet_args(dict(ckpt["hyper_parameters"]))
        _check_reduce(config.reduce_op)
        state = ckpt["state_dict"]
    else:
        config = _config_from_module(model_or_checkpoint)
        _check_reduce(config.reduce_op)
        state = model_or_checkpoint.state_dict()
    translated = _translate(state)
    mean = translated.get("mean")
    if "dipole" in config.head and mean is not None and bool((mean != 0).any()):
        raise ValueError(
            "torchmd-net adds a dipole head's mean before taking the norm; only mean = 0 "
            f"converts exactly, got mean {mean.tolist()}"
        )
    floats = [v for v in translated.values() if v.is_floating_point()]
    # Build in the source's precision so that float64 weights are not rounded to float32.
    converted = config.build().to(floats[0].dtype if floats else torch.float32)
    # Dipole heads: reuse torchmd-net's mass table (its length differs from max_z), so the
    # centre of mass, and hence the dipole, is the same.
    masses = translated.pop("head.atomic_mass", None)
    if masses is not None:
        table = converted.head.atomic_mass
        count = min(table.numel(), masses.numel())
        table[:count] = masses[:count].to(table)
    missing, unexpected = converted.load_state_dict(translated, strict=False)
    missing = [k for k in missing if not k.endswith("atomic_mass")]
    if missing or unexpected:
        raise ValueError(
            f"cannot map torchmd-net weights: missing {missing}, unexpected {unexpected}"
        )
    return converted.eval()
