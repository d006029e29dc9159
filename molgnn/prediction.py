"""Predict properties of new molecules with a trained model.

Molecules may be XYZ files (one or many molecules each), ``ase.Atoms``, PyG ``Data`` with ``z``
and ``pos``, or SMILES strings (3D geometry generated with RDKit's ETKDG and MMFF; extra
``chem``). Predictions come back in the model's units, computed in batches.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from molgnn.data.keys import ELEMENT_SYMBOLS

__all__ = ["Predictions", "model_elements", "molecule_from_smiles", "predict", "to_molecules"]

MoleculeLike = Any  # str | Path | ase.Atoms | Data


@dataclass
class Predictions:
    """Predicted values of ``M`` molecules.

    Attributes:
        values: ``[M, T]`` predictions in the model's units.
        names: A name per molecule (file and index, SMILES, or ``Data.name``).
        generated_geometry: Per molecule, whether its 3D geometry was generated (from SMILES).
        targets: Target names (from the checkpoint, when known).
        units: Units of the targets (from the checkpoint, when known).
    """

    values: Tensor
    names: list[str]
    generated_geometry: list[bool]
    targets: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-able dict per molecule."""
        records = []
        for i, name in enumerate(self.names):
            row: dict[str, Any] = {"name": name, "generated_geometry": self.generated_geometry[i]}
            keys = self.targets or [f"y{t}" for t in range(self.values.size(1))]
            for t, key in enumerate(keys):
                row[key] = float(self.values[i, t])
            if self.units:
                row["units"] = dict(zip(keys, self.units))
            records.append(row)
        return records


def molecule_from_smiles(smiles: str, seed: int = 0) -> Data:
    """A 3D molecule from SMILES: RDKit ETKDG embedding, then MMFF94 relaxation (extra ``chem``).

    Raises:
        ImportError: without RDKit.
        ValueError: for SMILES RDKit cannot parse or embed.
    """
    try:
        Chem: Any = importlib.import_module("rdkit.Chem")
        AllChem: Any = importlib.import_module("rdkit.Chem.AllChem")
    except ImportError:
        raise ImportError(
            "predicting from SMILES needs RDKit: pip install 'molgnn[chem]'"
        ) from None
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise ValueError(f"RDKit could not generate 3D coordinates for {smiles!r}")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    z = torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=torch.long)
    pos = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float32)
    return Data(z=z, pos=pos, name=smiles, generated_geometry=True)


def _from_atoms(atoms: Any, index: int) -> Data:
    z = torch.as_tensor(atoms.get_atomic_numbers(), dtype=torch.long)
    pos = torch.as_tensor(atoms.get_positions(), dtype=torch.float32)
    name = atoms.info.get("name") if hasattr(atoms, "info") else None
    return Data(z=z, pos=pos, name=name or f"atoms[{index}]", generated_geometry=False)


def to_molecules(molecules: MoleculeLike | Iterable[MoleculeLike]) -> list[Data]:
    """Turn the accepted inputs into ``Data`` molecules (``z``, ``pos``, ``name``).

    A ``str`` or ``Path`` naming an existing file is read as XYZ (all molecules in it); a path
    ending in ``.xyz`` that does not exist is an error; any other string is SMILES.
    """
    from molgnn.data import read_xyz

    if isinstance(molecules, str | Path | Data) or hasattr(molecules, "get_atomic_numbers"):
        molecules = [molecules]
    out: list[Data] = []
    for index, item in enumerate(molecules):
        if isinstance(item, Data):
            if getattr(item, "z", None) is None or getattr(item, "pos", None) is None:
                raise ValueError(f"molecule {index} (Data) needs z and pos")
            mol = Data(z=item.z, pos=item.pos, name=getattr(item, "name", None) or f"data[{index}]")
            mol.generated_geometry = False
            out.append(mol)
        elif hasattr(item, "get_atomic_numbers"):
            out.append(_from_atoms(item, index))
        elif isinstance(item, Path) or (isinstance(item, str) and Path(item).is_file()):
            read = read_xyz(item)
            mols = read if isinstance(read, list) else [read]
            for k, mol in enumerate(mols):
                mol.name = f"{item}[{k}]" if len(mols) > 1 else str(item)
                mol.generated_geometry = False
                out.append(mol)
        elif isinstance(item, str):
            if item.lower().endswith(".xyz"):
                raise FileNotFoundError(f"no XYZ file at {item}")
            out.append(molecule_from_smiles(item))
        else:
            raise ValueError(
                f"molecule {index}: cannot predict for a {type(item).__name__}; pass XYZ paths, "
                "ase.Atoms, torch_geometric Data or SMILES strings"
            )
    return out


def _check(mol: Data, allowed: set[int] | None) -> None:
    pos, z = mol.pos, mol.z
    if z.numel() == 0:
        raise ValueError(f"{mol.name}: the molecule has no atoms")
    if pos.shape != (z.numel(), 3):
        raise ValueError(f"{mol.name}: pos has shape {list(pos.shape)}, expected [{z.numel()}, 3]")
    if not torch.isfinite(pos).all():
        raise ValueError(f"{mol.name}: NaN or infinite coordinates")
    if allowed is not None:
        unknown = sorted({int(v) for v in z.unique()} - allowed)
        if unknown:
            names = ", ".join(
                ELEMENT_SYMBOLS[v] if 0 < v < len(ELEMENT_SYMBOLS) else str(v) for v in unknown
            )
            seen = ", ".join(ELEMENT_SYMBOLS[v] for v in sorted(allowed))
            raise ValueError(
                f"{mol.name}: element(s) {names} never seen in training (the model knows {seen})"
            )


def model_elements(model: nn.Module) -> set[int] | None:
    """Elements a loaded model was trained on, from its checkpoint info (``None`` if unknown)."""
    info = getattr(model, "checkpoint_info", None) or {}
    elements = (info.get("data") or {}).get("elements")
    return {int(e) for e in elements} if elements else None


@torch.no_grad()
def predict(
    model: nn.Module,
    molecules: MoleculeLike | Sequence[MoleculeLike],
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> Predictions:
    """Predict the model's property for each molecule.

    Args:
        model: A molgnn model, e.g. from :func:`molgnn.load`.
        molecules: XYZ paths, ``ase.Atoms``, ``Data`` or SMILES, one or a list.
        batch_size: Molecules per forward pass (default: ``64``).
        device: Device to run on (default: the model's).

    Returns:
        :class:`Predictions` with ``values`` ``[M, T]`` in the model's units.

    Raises:
        ValueError: for unreadable molecules (naming the file and line), no atoms, NaN
            coordinates or elements the model never saw.
    """
    mols = to_molecules(molecules)
    allowed = model_elements(model)
    for mol in mols:
        _check(mol, allowed)
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    values = []
    try:
        for start in range(0, len(mols), batch_size):
            chunk = [Data(z=m.z, pos=m.pos.float()) for m in mols[start : start + batch_size]]
            batch = Batch.from_data_list(chunk).to(device)
            out = model(batch.z, batch.pos, batch.batch)
            values.append((out[0] if isinstance(out, tuple) else out).float().cpu())
    finally:
        model.train(was_training)
    info = getattr(model, "checkpoint_info", None) or {}
    target = info.get("target") or {}
    return Predictions(
        values=torch.cat(values) if values else torch.empty(0, 1),
        names=[str(m.name) for m in mols],
        generated_geometry=[bool(getattr(m, "generated_geometry", False)) for m in mols],
        targets=list(target.get("names", [])),
        units=list(target.get("units", [])),
    )
