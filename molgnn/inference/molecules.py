"""Molecules from what users pass: XYZ files, ``ase.Atoms``, PyG ``Data`` and SMILES strings.

SMILES get 3D geometry from RDKit's ETKDG embedding and MMFF94 relaxation (extra ``chem``).
Every molecule comes back as ``Data`` with ``z`` ``[N]``, ``pos`` ``[N, 3]`` (Å) and ``name``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from molgnn.inference._labels import shortened

__all__ = ["MoleculeLike", "molecule_from_smiles", "to_molecules"]

#: What [`to_molecules`][molgnn.inference.to_molecules] accepts: a path, an ``ase.Atoms``, a
#: ``Data`` or a SMILES string.
MoleculeLike = Any  # str | Path | ase.Atoms | Data


class _SmilesSyntaxError(ValueError):
    """RDKit cannot parse the string (so it may have been meant as a file name)."""


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
    label = shortened(smiles)
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
