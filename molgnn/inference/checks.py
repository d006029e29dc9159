"""Checks of a molecule against a model: refuse what it cannot run on, warn about the rest.

[`check_molecule`][molgnn.inference.check_molecule] refuses a molecule that is not one (no atoms,
NaN coordinates, an unknown element or one the model never saw, two atoms closer than
[`MIN_DISTANCE`][molgnn.inference.MIN_DISTANCE]);
[`molecule_warnings`][molgnn.inference.molecule_warnings] says why a prediction for a valid molecule
may still be meaningless. Both read what the model was trained on from its checkpoint record
(``model.checkpoint_info``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from molgnn.data.keys import ELEMENT_SYMBOLS
from molgnn.inference._labels import molecule_label
from molgnn.nn.radius import radius_graph

__all__ = [
    "MIN_DISTANCE",
    "PredictionWarning",
    "check_molecule",
    "model_elements",
    "molecule_warnings",
    "training_max_atoms",
]

#: Two atoms closer than this (Å) are refused: the shortest bond, H-H, is 0.74 Å.
MIN_DISTANCE = 0.5
#: The largest QM9 molecule has 29 atoms (for checkpoints written before ``max_atoms`` was
#: recorded).
_QM9_MAX_ATOMS = 29


class PredictionWarning(UserWarning):
    """A prediction outside the model's training data.

    [`predict`][molgnn.inference.predict] lists these in
    ``warnings``; the ASE calculator issues them.
    """


def _symbol(z: int) -> str:
    return ELEMENT_SYMBOLS[z] if 0 < z < len(ELEMENT_SYMBOLS) else str(z)


def check_molecule(
    mol: Data, allowed: set[int] | None = None, min_distance: float = MIN_DISTANCE
) -> None:
    """Refuse a molecule a model cannot meaningfully run on.

    Args:
        mol: ``Data`` with ``z`` ``[N]``, ``pos`` ``[N, 3]`` and ``name``.
        allowed: Atomic numbers the model was trained on (default: any element).
        min_distance: Two atoms closer than this (Å) are refused (default:
            [`MIN_DISTANCE`][molgnn.inference.MIN_DISTANCE]); ``0`` turns the check off.

    Raises:
        ValueError: naming the molecule, for no atoms, a ``z`` that is not integer atomic
            numbers, a ``pos`` of the wrong shape, NaN or infinite coordinates, an unknown
            element or one outside ``allowed``, or two atoms closer than ``min_distance``
            (naming them).
    """
    name = molecule_label(mol)
    pos, z = mol.pos, mol.z
    if not isinstance(z, Tensor) or not isinstance(pos, Tensor):
        raise ValueError(f"{name}: z and pos must be tensors")
    if z.dim() != 1 or z.is_floating_point() or z.is_complex() or z.dtype == torch.bool:
        raise ValueError(
            f"{name}: z must be a 1-D tensor of integer atomic numbers, got {z.dtype} "
            f"{list(z.shape)}"
        )
    if z.numel() == 0:
        raise ValueError(f"{name}: the molecule has no atoms")
    if pos.shape != (z.numel(), 3):
        raise ValueError(f"{name}: pos has shape {list(pos.shape)}, expected [{z.numel()}, 3]")
    if not torch.isfinite(pos).all():
        bad = (~torch.isfinite(pos)).any(dim=1).nonzero().flatten()
        atoms = ", ".join(str(i + 1) for i in bad[:5].tolist())
        raise ValueError(f"{name}: NaN or infinite coordinates (atom {atoms})")
    present = sorted({int(v) for v in z.unique()})
    invalid = [v for v in present if not 0 < v < len(ELEMENT_SYMBOLS)]
    if invalid:
        raise ValueError(
            f"{name}: atomic number(s) {', '.join(map(str, invalid))} are not elements "
            f"(1..{len(ELEMENT_SYMBOLS) - 1})"
        )
    if allowed is not None:
        unknown = [v for v in present if v not in allowed]
        if unknown:
            names = ", ".join(_symbol(v) for v in unknown)
            seen = ", ".join(_symbol(v) for v in sorted(allowed))
            raise ValueError(
                f"{name}: element(s) {names} never seen in training (the model knows {seen})"
            )
    if min_distance > 0 and z.numel() > 1:
        pairs = radius_graph(pos.detach().double(), min_distance, max_num_neighbors=None)
        if pairs.numel():
            j, i = sorted(pairs[:, 0].tolist())
            d = float((pos[i].double() - pos[j].double()).norm())
            count = pairs.size(1) // 2
            more = f" ({count} such pairs)" if count > 1 else ""
            raise ValueError(
                f"{name}: atoms {j + 1} ({_symbol(int(z[j]))}) and {i + 1} "
                f"({_symbol(int(z[i]))}) are {d:.3g} Å apart, closer than {min_distance} Å: "
                f"not a physical geometry{more}"
            )


def model_elements(model: nn.Module) -> set[int] | None:
    """Elements a loaded model was trained on, from its checkpoint info (``None`` if unknown)."""
    info = getattr(model, "checkpoint_info", None) or {}
    elements = (info.get("data") or {}).get("elements")
    return {int(e) for e in elements} if elements else None


def training_max_atoms(model: nn.Module) -> int | None:
    """Atoms of the largest molecule a loaded model was trained on (``None`` if unknown).

    Read from the checkpoint's ``data["max_atoms"]``; checkpoints written before it was
    recorded that trained on QM9 get QM9's largest molecule, 29 atoms.
    """
    info = getattr(model, "checkpoint_info", None) or {}
    data = info.get("data") or {}
    if data.get("max_atoms") is not None:
        return int(data["max_atoms"])
    return _QM9_MAX_ATOMS if data.get("dataset") == "QM9" else None


def molecule_warnings(mol: Data, max_atoms: int | None = None) -> list[str]:
    """Why a prediction for ``mol`` may be meaningless, before the model runs.

    Args:
        mol: A checked molecule (see [`check_molecule`][molgnn.inference.check_molecule]), with the
            SMILES record (``charge``, ``radical_electrons``) when it came from SMILES.
        max_atoms: Atoms of the largest training molecule (default: no size check).

    Returns:
        Messages for: more atoms than ``max_atoms``; a net charge or unpaired electrons (from
        SMILES, or an ``ase.Atoms``' initial charges); and, for geometry without that record,
        an odd number of electrons (a radical or an ion).
    """
    out: list[str] = []
    n = int(mol.z.numel())
    if max_atoms is not None and n > max_atoms:
        out.append(
            f"{n} atoms, more than the largest training molecule ({max_atoms} atoms): outside "
            "the training data, the prediction may be meaningless"
        )
    charge = getattr(mol, "charge", None)
    radicals = getattr(mol, "radical_electrons", None)
    if charge:
        out.append(
            f"net charge {int(charge):+d}: the model was trained on neutral molecules and "
            "predicts as if this one were neutral"
        )
    if radicals:
        out.append(
            f"{int(radicals)} unpaired electron(s) (a radical): the model was trained on "
            "closed-shell molecules and predicts as if every electron were paired"
        )
    if radicals is None and not charge:
        electrons = int(mol.z.sum())
        if electrons % 2:
            out.append(
                f"an odd number of electrons ({electrons}) if neutral: a radical or an ion, "
                "which the model (trained on neutral closed-shell molecules) cannot tell apart"
            )
    return out
