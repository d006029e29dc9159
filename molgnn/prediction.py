"""Predict properties of new molecules with a trained model.

Molecules may be XYZ files (one or many molecules each), ``ase.Atoms``, PyG ``Data`` with ``z``
and ``pos``, or SMILES strings (3D geometry generated with RDKit's ETKDG and MMFF; extra
``chem``). Predictions come back in the model's units, computed in batches.

Input that cannot be a molecule (an unreadable file, no atoms, NaN coordinates, an unknown
element or one the model never saw in training, two atoms closer than ``min_distance``) is
refused with a ``ValueError`` naming the molecule. A molecule the model can run on but that lies
outside what it was trained on gets a warning in :attr:`Predictions.warnings` (and in
:meth:`Predictions.to_records`): more atoms than the largest training molecule, a radius graph
truncated by ``max_num_neighbors``, a net charge or unpaired electrons.
``strict=True`` turns those warnings into errors. A molecule whose prediction is not finite
(a damaged model) gets ``None`` and an error message instead of a number.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from molgnn.data.keys import ELEMENT_SYMBOLS
from molgnn.nn.radius import NeighborTruncation, radius_graph, record_truncation

__all__ = [
    "MIN_DISTANCE",
    "PredictionWarning",
    "Predictions",
    "check_molecule",
    "model_elements",
    "molecule_from_smiles",
    "molecule_warnings",
    "predict",
    "to_molecules",
    "training_max_atoms",
]

MoleculeLike = Any  # str | Path | ase.Atoms | Data

#: Two atoms closer than this (Å) are refused: the shortest bond, H-H, is 0.74 Å.
MIN_DISTANCE = 0.5
#: The largest QM9 molecule has 29 atoms (for checkpoints written before ``max_atoms`` was
#: recorded).
_QM9_MAX_ATOMS = 29


class _SmilesSyntaxError(ValueError):
    """RDKit cannot parse the string (so it may have been meant as a file name)."""


class PredictionWarning(UserWarning):
    """A prediction outside the model's training data (see :attr:`Predictions.warnings`)."""


@dataclass
class Predictions:
    """Predicted values of ``M`` molecules.

    Attributes:
        values: ``[M, T]`` predictions in the model's units (NaN where ``errors`` has a message).
        names: A name per molecule (file and index, SMILES, or ``Data.name``).
        generated_geometry: Per molecule, whether its 3D geometry was generated (from SMILES).
        targets: Target names (from the checkpoint, when known).
        units: Units of the targets (from the checkpoint, when known).
        warnings: Per molecule, why its prediction may be unreliable (empty when none).
        errors: Per molecule, why it has no prediction (``None`` when it has one).
    """

    values: Tensor
    names: list[str]
    generated_geometry: list[bool]
    targets: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-able dict per molecule.

        Keys: ``name``, ``generated_geometry``, one per target (``None`` for a failed molecule),
        ``units`` (when known), ``warnings`` (a list of messages, empty when there are none)
        and, for a molecule without a prediction, ``error``. The records contain no NaN, so
        ``json.dumps(..., allow_nan=False)`` works.
        """
        records = []
        keys = self.targets or [f"y{t}" for t in range(self.values.size(1))]
        for i, name in enumerate(self.names):
            row: dict[str, Any] = {"name": name, "generated_geometry": self.generated_geometry[i]}
            error = self.errors[i] if i < len(self.errors) else None
            for t, key in enumerate(keys):
                value = float(self.values[i, t])
                row[key] = value if error is None and math.isfinite(value) else None
            if self.units:
                row["units"] = dict(zip(keys, self.units))
            row["warnings"] = list(self.warnings[i]) if i < len(self.warnings) else []
            if error is not None:
                row["error"] = error
            records.append(row)
        return records


def _short(text: str, limit: int = 60) -> str:
    """``text`` for a message: long SMILES or lines are cut, with their length."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


def _rdkit_quiet() -> contextlib.AbstractContextManager[Any]:
    """Keep RDKit from printing its own log lines; its errors are reported as exceptions."""
    try:
        from rdkit.rdBase import BlockLogs
    except ImportError:  # pragma: no cover - RDKit older than 2022.03
        return contextlib.nullcontext()
    return BlockLogs()


def molecule_from_smiles(smiles: str, seed: int = 0) -> Data:
    """A 3D molecule from SMILES: RDKit ETKDG embedding, then MMFF94 relaxation (extra ``chem``).

    The returned ``Data`` also records what the SMILES says and the model cannot see:
    ``charge`` (net formal charge) and ``radical_electrons``.

    Raises:
        ImportError: without RDKit.
        ValueError: for an empty string, SMILES RDKit cannot parse, sanitise or embed, and
            SMILES of several disconnected fragments (``"C.C"``: RDKit would embed them on top
            of each other).
    """
    try:
        Chem: Any = importlib.import_module("rdkit.Chem")
        AllChem: Any = importlib.import_module("rdkit.Chem.AllChem")
    except ImportError:
        raise ImportError(
            "predicting from SMILES needs RDKit: pip install 'molgnn[chem]'"
        ) from None
    if not smiles.strip():
        raise ValueError("empty SMILES string")
    label = _short(smiles)
    with _rdkit_quiet():
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            raise _SmilesSyntaxError(f"RDKit cannot parse the SMILES {label!r} (syntax error)")
        try:
            Chem.SanitizeMol(mol)
        except ValueError as err:  # RDKit's sanitisation errors are ValueErrors
            raise ValueError(f"RDKit rejects the SMILES {label!r}: {err}") from None
        if mol.GetNumAtoms() == 0:
            raise ValueError(f"the SMILES {label!r} has no atoms")
        fragments = len(Chem.GetMolFrags(mol))
        if fragments > 1:
            raise ValueError(
                f"the SMILES {label!r} has {fragments} disconnected fragments; predict one "
                "molecule per SMILES (RDKit would place the fragments on top of each other)"
            )
        charge = int(Chem.GetFormalCharge(mol))
        radicals = sum(int(a.GetNumRadicalElectrons()) for a in mol.GetAtoms())
        mol = Chem.AddHs(mol)
        params = AllChem.ETKDGv3()
        params.randomSeed = seed
        if AllChem.EmbedMolecule(mol, params) != 0:
            raise ValueError(f"RDKit could not generate 3D coordinates for {label!r}")
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    z = torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=torch.long)
    pos = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float32)
    return Data(
        z=z,
        pos=pos,
        name=smiles,
        generated_geometry=True,
        charge=charge,
        radical_electrons=radicals,
    )


def _from_atoms(atoms: Any, index: int) -> Data:
    z = torch.as_tensor(atoms.get_atomic_numbers(), dtype=torch.long)
    pos = torch.as_tensor(atoms.get_positions(), dtype=torch.float32)
    name = atoms.info.get("name") if hasattr(atoms, "info") else None
    mol = Data(z=z, pos=pos, name=name or f"atoms[{index}]", generated_geometry=False)
    if hasattr(atoms, "get_initial_charges") and len(atoms):
        charge = round(float(atoms.get_initial_charges().sum()))
        if charge:
            mol.charge = charge
    return mol


def _is_file(item: str | Path) -> bool:
    """Whether ``item`` names an existing file; a SMILES too long for a file name is not one."""
    try:
        return Path(item).is_file()
    except (OSError, ValueError):  # ENAMETOOLONG, or an embedded NUL byte
        return False


def _is_dir(item: str | Path) -> bool:
    try:
        return Path(item).is_dir()
    except (OSError, ValueError):
        return False


# Attributes of a Data molecule that predict() uses besides z and pos.
_CARRIED = ("generated_geometry", "charge", "radical_electrons")


def to_molecules(molecules: MoleculeLike | Iterable[MoleculeLike]) -> list[Data]:
    """Turn the accepted inputs into ``Data`` molecules (``z``, ``pos``, ``name``).

    A ``Path``, or a ``str`` naming an existing file, is read as XYZ (all molecules in it); a
    folder, or a path ending in ``.xyz`` that does not exist, is an error; any other string is
    SMILES. A ``Data`` keeps its ``name``, ``generated_geometry`` and the SMILES record
    (``charge``, ``radical_electrons``) when it has them.

    Raises:
        ValueError: naming the molecule, for anything that is not a readable molecule.
        FileNotFoundError: for a missing ``.xyz`` file.
    """
    from molgnn.data import read_xyz

    if isinstance(molecules, str | Path | Data) or hasattr(molecules, "get_atomic_numbers"):
        molecules = [molecules]
    if not isinstance(molecules, Iterable):
        raise ValueError(
            f"cannot predict for a {type(molecules).__name__}; pass XYZ paths, ase.Atoms, "
            "torch_geometric Data or SMILES strings, one or a list"
        )
    out: list[Data] = []
    for index, item in enumerate(molecules):
        if isinstance(item, Data):
            if getattr(item, "z", None) is None or getattr(item, "pos", None) is None:
                raise ValueError(f"molecule {index} (Data) needs z and pos")
            mol = Data(z=item.z, pos=item.pos, name=getattr(item, "name", None) or f"data[{index}]")
            for key in _CARRIED:
                if getattr(item, key, None) is not None:
                    mol[key] = item[key]
            mol.generated_geometry = bool(getattr(item, "generated_geometry", False))
            out.append(mol)
        elif hasattr(item, "get_atomic_numbers"):
            out.append(_from_atoms(item, index))
        elif isinstance(item, str) and not item.strip():
            raise ValueError(f"molecule {index}: an empty string is neither a file nor SMILES")
        elif isinstance(item, str | Path) and _is_dir(item):
            raise ValueError(f"{item} is a folder; pass XYZ files or SMILES strings")
        elif isinstance(item, Path) or (isinstance(item, str) and _is_file(item)):
            read = read_xyz(item)
            mols = read if isinstance(read, list) else [read]
            for k, mol in enumerate(mols):
                mol.name = f"{item}[{k}]" if len(mols) > 1 else str(item)
                mol.generated_geometry = False
                out.append(mol)
        elif isinstance(item, str):
            if item.lower().endswith(".xyz"):
                raise FileNotFoundError(f"no XYZ file at {item}")
            try:
                out.append(molecule_from_smiles(item))
            except _SmilesSyntaxError as err:
                raise ValueError(f"{err}, and no file of that name exists") from None
        else:
            raise ValueError(
                f"molecule {index}: cannot predict for a {type(item).__name__}; pass XYZ paths, "
                "ase.Atoms, torch_geometric Data or SMILES strings"
            )
    return out


def _label(mol: Data) -> str:
    """A molecule's name for messages: file names in full, long SMILES cut."""
    name = str(getattr(mol, "name", None) or "molecule")
    return _short(name) if getattr(mol, "generated_geometry", False) else name


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
            :data:`MIN_DISTANCE`); ``0`` turns the check off.

    Raises:
        ValueError: naming the molecule, for no atoms, a ``z`` that is not integer atomic
            numbers, a ``pos`` of the wrong shape, NaN or infinite coordinates, an unknown
            element or one outside ``allowed``, or two atoms closer than ``min_distance``
            (naming them).
    """
    name = _label(mol)
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
        mol: A checked molecule (see :func:`check_molecule`), with the SMILES record
            (``charge``, ``radical_electrons``) when it came from SMILES.
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


def _truncation_warning(t: NeighborTruncation) -> str:
    share = 100.0 * t.dropped / max(t.found, 1)
    return (
        f"neighbour list truncated: an atom has {t.most_neighbors} neighbours within the "
        f"cutoff, the model keeps the nearest {t.max_num_neighbors} (max_num_neighbors); "
        f"{t.dropped} of {t.found} pairs ({share:.0f}%) dropped"
    )


def _non_finite_weights(model: nn.Module) -> str | None:
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def predict(
    model: nn.Module,
    molecules: MoleculeLike | Sequence[MoleculeLike],
    batch_size: int = 64,
    device: str | torch.device | None = None,
    min_distance: float = MIN_DISTANCE,
    strict: bool = False,
) -> Predictions:
    """Predict the model's property for each molecule.

    Molecules outside the model's training data are predicted with a warning per molecule
    in :attr:`Predictions.warnings` (see :func:`molecule_warnings`), including a radius graph
    that ``max_num_neighbors`` truncated; ``strict=True`` raises instead. A molecule whose
    prediction is NaN or infinite (a damaged model) gets an entry in
    :attr:`Predictions.errors`.

    Args:
        model: A molgnn model, e.g. from :func:`molgnn.load`.
        molecules: XYZ paths, ``ase.Atoms``, ``Data`` or SMILES, one or a list.
        batch_size: Molecules per forward pass, at least 1 (default: ``64``).
        device: Device to run on (default: the model's).
        min_distance: Two atoms closer than this (Å) are refused (default:
            :data:`MIN_DISTANCE`, ``0.5``).
        strict: Raise ``ValueError`` for a molecule that would get a warning or an error
            (default: ``False``).

    Returns:
        :class:`Predictions` with ``values`` ``[M, T]`` in the model's units.

    Raises:
        ValueError: for a ``batch_size`` below 1, unreadable molecules (naming the file and
            line), no atoms, NaN coordinates, elements the model never saw, atoms closer than
            ``min_distance``, or, with ``strict``, any warning or non-finite prediction.
        FileNotFoundError: for a missing XYZ file.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not min_distance >= 0:
        raise ValueError(f"min_distance must be a non-negative number of Å, got {min_distance}")
    mols = to_molecules(molecules)
    allowed = model_elements(model)
    max_atoms = training_max_atoms(model)
    warned: list[list[str]] = []
    for mol in mols:
        check_molecule(mol, allowed, min_distance)
        warned.append(molecule_warnings(mol, max_atoms))
    model_device, dtype = _model_device_dtype(model)
    try:
        run_on = model_device if device is None else torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: {err}") from None
    # Models that return forces differentiate through pos, so they need autograd.
    grad = bool(getattr(model, "derivative", False))
    values = []
    with _eval_mode(model), torch.set_grad_enabled(grad):
        for start in range(0, len(mols), batch_size):
            chunk = [Data(z=m.z, pos=m.pos.to(dtype)) for m in mols[start : start + batch_size]]
            batch = Batch.from_data_list(chunk).to(run_on)
            with record_truncation() as report:
                out = model(batch.z, batch.pos, batch.batch)
            values.append((out[0] if isinstance(out, tuple) else out).detach().float().cpu())
            for b, truncation in report.by_molecule().items():
                warned[start + b].append(_truncation_warning(truncation))
    info = getattr(model, "checkpoint_info", None) or {}
    target = info.get("target") or {}
    result = Predictions(
        values=torch.cat(values) if values else torch.empty(0, 1),
        names=[str(m.name) for m in mols],
        generated_geometry=[bool(getattr(m, "generated_geometry", False)) for m in mols],
        targets=list(target.get("names", [])),
        units=list(target.get("units", [])),
        warnings=warned,
        errors=[None] * len(mols),
    )
    bad = (~torch.isfinite(result.values)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        weights = _non_finite_weights(model)
        cause = (
            f"its weights hold NaN or infinite values (e.g. {weights})"
            if weights
            else "check the model and the molecule"
        )
        for i in bad:
            result.errors[i] = f"the model returned a non-finite prediction; {cause}"
    if strict:
        for mol, messages, error in zip(mols, result.warnings, result.errors):
            if error is not None or messages:
                problem = error if error is not None else messages[0]
                raise ValueError(f"{_label(mol)}: {problem} (strict: no prediction)")
    return result
