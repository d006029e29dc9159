"""Convert torchmd-net 3.x Equivariant Transformer models into molgnn models.

Works from a live ``TorchMD_Net`` object or from a checkpoint that torchmd-net wrote (the
Lightning ``.ckpt`` of ``torchmd-train``). Reading a checkpoint does not need torchmd-net
installed; it is loaded with ``weights_only=True`` (with Lightning's ``AttributeDict`` allowed
when Lightning is installed).

Everything torchmd-net can train for the ET converts, except what is refused by name:

- ``reduce_op``: ``"add"`` (``torchmd-train``'s default) and ``"sum"`` become molgnn's ``"sum"``;
  ``"mean"`` becomes ``"torchmdnet_mean"``, which reproduces torchmd-net 3.x's arithmetic (each
  molecule's sum divided by its atom count plus one; see
  [`scatter_mean_with_zero`][molgnn.nn.scatter_mean_with_zero]).
- Heads: ``Scalar``, ``EquivariantScalar``, ``DipoleMoment``, ``EquivariantDipoleMoment``,
  ``ElectronicSpatialExtent``, ``EquivariantElectronicSpatialExtent`` and
  ``EquivariantVectorOutput``.
- Priors: ``Atomref`` (also disabled, as ``--remove-ref-energy`` leaves it) and
  ``LearnableAtomref``. ``ZBL``, ``D2`` and ``Coulomb`` are refused.
- ``standardize`` (the ``mean``/``std`` buffers) and ``derivative=True`` (forces).

TensorNet models (``model: tensornet``) convert too, through
[`molgnn.interop.torchmdnet_tensornet`][molgnn.interop.torchmdnet_tensornet], which lists what it
refuses.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from molgnn.models.configs import MODEL_CONFIGS
from molgnn.models.model import MolecularModel
from molgnn.nn.heads import HEADS

__all__ = ["config_from_torchmdnet_args", "from_torchmdnet"]

#: torchmd-net output model -> molgnn head name.
_HEADS = {
    "Scalar": "scalar",
    "EquivariantScalar": "equivariant_scalar",
    "DipoleMoment": "dipole_moment",
    "EquivariantDipoleMoment": "equivariant_dipole_moment",
    "ElectronicSpatialExtent": "electronic_spatial_extent",
    "EquivariantElectronicSpatialExtent": "electronic_spatial_extent",
    "EquivariantVectorOutput": "equivariant_vector",
}
#: torchmd-net heads that always sum, whatever ``reduce_op`` says.
_ALWAYS_SUM = ("EquivariantVectorOutput",)
#: torchmd-net reduce_op -> molgnn reduce_op.
_REDUCE = {"add": "sum", "sum": "sum", "mean": "torchmdnet_mean"}
#: torchmd-net prior -> molgnn prior name.
_PRIORS = {"Atomref": "atomref", "LearnableAtomref": "learnable_atomref"}
_REFUSED_PRIORS = {
    "ZBL": "the ZBL nuclear-repulsion prior",
    "D2": "the D2 dispersion prior",
    "Coulomb": "the Coulomb prior (it needs per-atom partial charges)",
}


def _supported() -> str:
    return (
        f"molgnn converts the heads {', '.join(_HEADS)}; reduce_op {', '.join(_REDUCE)}; "
        f"the priors {', '.join(_PRIORS)}"
    )


@dataclass
class _Prior:
    name: str
    enabled: bool = True
    trainable: bool = False


@dataclass
class _Source:
    """What a torchmd-net model is made of, read from a module or from hyperparameters."""

    representation: dict[str, Any]
    head: str
    reduce_op: str
    priors: list[_Prior] = field(default_factory=list)
    derivative: bool = False
    kind: str = "et"  # the molgnn model kind: "et" or "tensornet"


def _head_name(name: str) -> str:
    if name == "ScalarPlusWeightedCoulomb":
        raise ValueError(
            "cannot convert torchmd-net's ScalarPlusWeightedCoulomb head: it reads partial charges "
            f"that only TensorNet2 predicts; {_supported()}"
        )
    if name not in _HEADS:
        raise ValueError(f"cannot convert torchmd-net output model {name!r}; {_supported()}")
    return name


def _reduce(head: str, reduce_op: str) -> str:
    if head in _ALWAYS_SUM:
        return "sum"
    if reduce_op not in _REDUCE:
        raise ValueError(f"cannot convert torchmd-net reduce_op {reduce_op!r}; {_supported()}")
    return _REDUCE[reduce_op]


def _check_prior(name: str) -> None:
    if name in _REFUSED_PRIORS:
        raise ValueError(
            f"cannot convert torchmd-net prior {name!r} ({_REFUSED_PRIORS[name]}): molgnn has no "
            f"such prior; {_supported()}"
        )
    if name not in _PRIORS:
        raise ValueError(f"cannot convert unknown torchmd-net prior {name!r}; {_supported()}")


def _source_from_module(model: Any) -> _Source:
    rep: Any = getattr(model, "representation_model", None)
    if rep is not None and type(rep).__name__ == "TensorNet":
        from molgnn.interop.torchmdnet_tensornet import tensornet_source_from_module

        return tensornet_source_from_module(model)
    if rep is None or type(rep).__name__ != "TorchMD_ET":
        got = type(rep).__name__ if rep is not None else type(model).__name__
        raise ValueError(
            "from_torchmdnet converts TorchMD_Net models with an Equivariant Transformer "
            f"(TorchMD_ET) or TensorNet representation; got {got}"
        )
    box = getattr(rep.distance, "box", None)
    if getattr(rep.distance, "use_periodic", False) and box is not None and bool(box.any()):
        raise ValueError(
            "cannot convert a torchmd-net model with periodic box vectors (box_vecs): molgnn's ET "
            "has no periodic boundary conditions"
        )
    head = _head_name(type(model.output_model).__name__)
    priors = []
    for prior in model.prior_model if model.prior_model is not None else []:
        name = type(prior).__name__
        _check_prior(name)
        priors.append(_Prior(name, bool(prior.enable), bool(prior.atomref.weight.requires_grad)))
    representation = dict(
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
        max_num_neighbors=-int(rep.distance.max_num_pairs),
        vector_cutoff=bool(rep.attention_layers[0].vector_cutoff),
    )
    return _Source(
        representation,
        head,
        _reduce(head, model.output_model.reduce_op),
        priors,
        bool(model.derivative),
    )


def _priors_from_args(args: dict[str, Any]) -> list[_Prior]:
    """torchmd-net's ``prior_model`` / ``prior_args`` (every form its CLI accepts)."""
    spec = args.get("prior_model")
    if not spec:
        return []
    names: list[str] = []
    init: list[dict[str, Any]] = []
    for entry in spec if isinstance(spec, list) else [spec]:
        if isinstance(entry, dict):
            for key, value in entry.items():
                names.append(str(key))
                init.append(dict(value or {}))
        else:
            names.append(str(entry))
            init.append({})
    saved = args.get("prior_args")
    if saved is not None:  # torchmd-train records each prior's init args here
        init = [dict(a or {}) for a in (saved if isinstance(saved, list) else [saved])]
    priors = []
    for k, name in enumerate(names):
        _check_prior(name)
        options = init[k] if k < len(init) else {}
        trainable = name == "LearnableAtomref" or bool(options.get("trainable", False))
        priors.append(_Prior(name, bool(options.get("enable", True)), trainable))
    return priors


def _refuse_options(
    args: dict[str, Any], model: str, extra: dict[str, tuple[bool, str]] | None = None
) -> None:
    """Raise, naming the option, for torchmd-net options no molgnn ``model`` reproduces: those
    of every architecture (periodic boxes, an atom filter, half precision), then ``extra``."""
    refused = {
        **(extra or {}),
        "box_vecs": (args.get("box_vecs") is not None, f"molgnn's {model} has no periodic boxes"),
        "atom_filter": (
            int(args.get("atom_filter", -1)) > -1,
            "molgnn sums over every atom; only atom_filter=-1 converts",
        ),
        "precision": (
            int(args.get("precision", 32)) not in (32, 64),
            "only precision 32 and 64 convert",
        ),
    }
    for option, (bad, why) in refused.items():
        if bad:
            raise ValueError(f"cannot convert torchmd-net option {option}={args[option]!r}: {why}")


def _source_from_args(args: dict[str, Any]) -> _Source:
    arch = args.get("model")
    if arch == "tensornet":
        from molgnn.interop.torchmdnet_tensornet import tensornet_source_from_args

        return tensornet_source_from_args(args)
    if arch != "equivariant-transformer":
        raise ValueError(
            f"from_torchmdnet converts torchmd-net's 'equivariant-transformer' and 'tensornet'; "
            f"this checkpoint holds model={arch!r}"
        )
    _refuse_options(args, "ET")
    output = str(args.get("output_model", "Scalar"))
    # torchmd-net's create_model prefixes the ET's heads with "Equivariant".
    head = _head_name(output if output.startswith("Equivariant") else "Equivariant" + output)
    representation = dict(
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
    )
    return _Source(
        representation,
        head,
        _reduce(head, str(args.get("reduce_op", "add"))),
        _priors_from_args(args),
        bool(args.get("derivative", False)),
    )


def _kept_prior(source: _Source) -> tuple[int, _Prior] | None:
    """The prior the converted model carries, with its index in torchmd-net's prior list."""
    if not HEADS[_HEADS[source.head]].allows_prior:
        return None  # torchmd-net drops priors on these heads too (with a warning)
    active = [(k, p) for k, p in enumerate(source.priors) if p.enabled]
    if len(active) > 1:
        raise ValueError(
            f"cannot convert {len(active)} active priors "
            f"({', '.join(p.name for _, p in active)}); molgnn carries one atom-reference prior"
        )
    return active[0] if active else None


def _config(source: _Source) -> Any:
    kept = _kept_prior(source)
    prior = None
    if kept is not None:
        prior = "learnable_atomref" if kept[1].trainable else "atomref"
    config_cls: Any = MODEL_CONFIGS[source.kind]
    return config_cls(
        **source.representation,
        head=_HEADS[source.head],
        reduce_op=source.reduce_op,
        prior=prior,
        derivative=source.derivative,
    )


def config_from_torchmdnet_args(args: dict[str, Any]) -> Any:
    """The [`ETConfig`][molgnn.models.ETConfig] (or, for ``model: tensornet``, the
    [`TensorNetConfig`][molgnn.models.TensorNetConfig]) of torchmd-net training hyperparameters.

    Args:
        args: torchmd-net's hyperparameters (a checkpoint's ``hyper_parameters``, or the
            options of ``torchmd-train``).

    Raises:
        ValueError: naming the option, for anything molgnn cannot reproduce.
    """
    return _config(_source_from_args(dict(args)))


def _translate(state: dict[str, Tensor], prior_index: int | None) -> dict[str, Tensor]:
    """torchmd-net parameter names -> molgnn's."""
    out: dict[str, Tensor] = {}
    prior = f"prior_model.{prior_index}." if prior_index is not None else None
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
        elif prior is not None and key == prior + "atomref.weight":
            out["prior.weight"] = value.flatten()
        elif prior is not None and key == prior + "initial_atomref":
            out["prior.initial"] = value.flatten()
        elif key in ("mean", "std"):
            out[key] = value.reshape(-1)
    return out


def _load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
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
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path} is not a readable torch checkpoint: {err}") from None


def from_torchmdnet(model_or_checkpoint: nn.Module | str | Path) -> MolecularModel:
    """Convert a torchmd-net 3.x ``TorchMD_Net`` ET or TensorNet model (or its checkpoint).

    The converted model gives torchmd-net's outputs and forces to floating-point rounding:
    the same weights, standardisation (``mean``/``std``), prior, reduction and head (see the
    module docstring for what converts).

    Args:
        model_or_checkpoint: A ``TorchMD_Net`` module, or the path of a checkpoint that
            torchmd-net wrote (for example ``torchmd-train``'s ``epoch=...ckpt``).

    Returns:
        A [`MolecularModel`][molgnn.models.MolecularModel] in eval mode, in the source's precision.

    Raises:
        ValueError: for another architecture, head, prior or option, naming it and what
            molgnn supports.
    """
    if isinstance(model_or_checkpoint, str | Path):
        ckpt = _load_checkpoint(Path(model_or_checkpoint))
        if "hyper_parameters" not in ckpt or "state_dict" not in ckpt:
            raise ValueError(
                f"{model_or_checkpoint} is not a torchmd-net checkpoint (no hyper_parameters "
                "and state_dict)"
            )
        source = _source_from_args(dict(ckpt["hyper_parameters"]))
        state = ckpt["state_dict"]
    else:
        source = _source_from_module(model_or_checkpoint)
        state = model_or_checkpoint.state_dict()
    config = _config(source)
    kept = _kept_prior(source)
    translated = _translate(state, kept[0] if kept is not None else None)
    if source.kind == "tensornet":
        from molgnn.interop.torchmdnet_tensornet import tensornet_state_dict

        translated = tensornet_state_dict(translated, source)
    mean = translated.get("mean")
    if "dipole" in config.head and mean is not None and bool((mean != 0).any()):
        # torchmd-net adds the mean before the dipole's norm; only mean = 0 (what its data
        # module gives a dipole target) converts exactly.
        raise ValueError(
            f"torchmd-net adds the {source.head} head's mean before taking the norm; only "
            f"mean = 0 converts exactly, got mean {mean.tolist()}"
        )
    floats = [v for v in translated.values() if v.is_floating_point()]
    # Build in the source's precision so that float64 weights are not rounded to float32.
    converted = config.build().to(floats[0].dtype if floats else torch.float32)
    # Heads with a mass table: reuse torchmd-net's (its length differs from max_z), so the
    # centre of mass, and hence the dipole or R2, is the same.
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
