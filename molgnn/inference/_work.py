"""What a server worker process computes for one request: read, embed and predict.

Each molecule gets its record or its own error, so one bad molecule does not fail a batch; the
kind of each failure decides the HTTP status of a single-molecule request (``STATUS``).
"""

from __future__ import annotations

import importlib
import math
import traceback
import warnings
from typing import Any

from torch import nn
from torch_geometric.data import Data

from molgnn.data import parse_xyz
from molgnn.inference._requests import Limits
from molgnn.inference.molecules import molecule_from_smiles
from molgnn.inference.prediction import predict

__all__ = ["BATCH_ATOMS", "INPUT", "INTERNAL", "NONFINITE", "STATUS", "UNSUPPORTED", "run_request"]

# How a molecule failed, and the HTTP status a single-molecule request gets for it.
INPUT, UNSUPPORTED, INTERNAL, NONFINITE = "input", "unsupported", "internal", "nonfinite"
STATUS = {INPUT: 422, UNSUPPORTED: 501, INTERNAL: 500}
#: Most atoms in one forward pass: a request's molecules are predicted together up to this many
#: atoms (about 2,000 QM9 molecules), which bounds a worker's memory.
BATCH_ATOMS = 40_000


def _xyz_molecules(text: str, label: str) -> list[Data]:
    """The molecules of an XYZ text, with [`molgnn.data.parse_xyz`][molgnn.data.parse_xyz]'s
    checks, naming ``label``."""
    if "\x00" in text:
        raise ValueError(f"{label}: not a text file (it holds NUL bytes)")
    return parse_xyz(text, source=label)


def _named(message: str, index: int) -> str:
    label = f"molecule {index}"
    return message if message.startswith(label) else f"{label}: {message}"


def _too_many_atoms(count: int, index: int, what: str, limits: Limits) -> ValueError:
    return ValueError(
        f"molecule {index}: {what} {count} atoms, over the limit of {limits.max_atoms} atoms per "
        "molecule (max_atoms)"
    )


def _smiles_molecule(smiles: str, index: int, limits: Limits) -> Any:
    """The 3D molecule of a SMILES string, refusing it before embedding if it is too large."""
    try:
        Chem: Any = importlib.import_module("rdkit.Chem")
    except ImportError:
        raise ImportError(
            "this server cannot read SMILES: RDKit is not installed (pip install 'molgnn[chem]'); "
            "send 'xyz' instead"
        ) from None
    parsed = Chem.MolFromSmiles(smiles)
    if parsed is not None:  # else molecule_from_smiles says what is wrong with it
        count = parsed.GetNumAtoms() + sum(atom.GetTotalNumHs() for atom in parsed.GetAtoms())
        if count > limits.max_atoms:
            raise _too_many_atoms(count, index, "the SMILES gives, with hydrogens,", limits)
    return molecule_from_smiles(smiles)


def _item_molecules(item: dict[str, Any], index: int, limits: Limits) -> list[Any]:
    name = item.get("name")
    if "smiles" in item:
        mol = _smiles_molecule(item["smiles"], index, limits)
        mol.name = name or item["smiles"]
        mol.generated_geometry = True
        return [mol]
    mols = _xyz_molecules(item["xyz"], label=f"molecule {index}")
    for k, mol in enumerate(mols):
        mol.name = (name or f"molecule {index}") + (f"[{k}]" if len(mols) > 1 else "")
        mol.generated_geometry = False
        if mol.z.numel() > limits.max_atoms:
            raise _too_many_atoms(int(mol.z.numel()), index, f"{mol.name} has", limits)
    return mols


def _finish(record: dict[str, Any], index: int, mol: Any) -> tuple[dict[str, Any], str | None]:
    """A prediction record with its index; a non-finite value becomes ``None`` plus an error."""
    record = {"index": index, **record, "generated_geometry": bool(mol.generated_geometry)}
    bad = {k: v for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        record.update(dict.fromkeys(bad))
        if not record.get("error"):
            values = ", ".join(f"{v} for {k!r}" for k, v in bad.items())
            record["error"] = (
                f"the model returned a non-finite prediction ({values}); the checkpoint's "
                "weights may be damaged"
            )
    if not record.get("error"):
        return record, None
    record["error"] = _named(str(record["error"]), index)
    return record, NONFINITE


def _error_record(index: int, err: BaseException) -> tuple[dict[str, Any], str]:
    if isinstance(err, ValueError):
        return {"index": index, "error": _named(str(err), index)}, INPUT
    if isinstance(err, ImportError):
        return {"index": index, "error": _named(str(err), index)}, UNSUPPORTED
    traceback.print_exception(err)
    return {
        "index": index,
        "error": _named(f"internal error: {type(err).__name__}: {err}", index),
    }, INTERNAL


def _batch_size(atoms: list[int]) -> int:
    """Molecules per forward pass: all of them, unless they hold over ``BATCH_ATOMS`` atoms."""
    total = sum(atoms)
    if total <= BATCH_ATOMS:
        return max(1, len(atoms))
    return max(1, BATCH_ATOMS * len(atoms) // total)


def run_request(
    model: nn.Module,
    items: list[tuple[int, dict[str, Any]]],
    limits: Limits,
    mc_dropout_samples: int | None = None,
) -> Any:
    """Parse, embed and predict the molecules of one request (in a worker process).

    All molecules go through one [`predict`][molgnn.inference.predict] call, in one forward
    pass up to ``BATCH_ATOMS`` atoms (an [`Ensemble`][molgnn.uncertainty.Ensemble] or
    ``mc_dropout_samples`` adds ``std`` to each record); only when it fails are they predicted
    one by one, so each gets its own error.

    Returns ``("ok", [(record, failure kind or None), ...], warnings)`` or
    ``("refused", status, message)`` for a request over a limit.
    """
    options: dict[str, Any] = {"mc_dropout_samples": mc_dropout_samples}
    outcomes: list[tuple[dict[str, Any], str | None]] = []
    todo: list[tuple[int, Any]] = []
    for index, item in items:
        try:
            todo.extend((index, mol) for mol in _item_molecules(item, index, limits))
        except Exception as err:
            outcomes.append(_error_record(index, err))
        if len(todo) > limits.max_molecules:
            return (
                "refused",
                413,
                f"the request holds more than {limits.max_molecules} molecules (XYZ texts may "
                "hold several each), over the limit (max_molecules)",
            )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # one batched pass when every molecule is fine ...
            mols = [mol for _, mol in todo]
            batch_size = _batch_size([int(mol.z.numel()) for mol in mols])
            records = (
                predict(model, mols, batch_size=batch_size, **options).to_records() if todo else []
            )
            done = [_finish(r, i, m) for r, (i, m) in zip(records, todo, strict=True)]
        except Exception:  # ... else one molecule at a time, so each gets its own error
            done = []
            for index, mol in todo:
                try:
                    record = predict(model, mol, **options).to_records()[0]
                    done.append(_finish(record, index, mol))
                except Exception as err:
                    done.append(_error_record(index, err))
    outcomes.extend(done)
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    outcomes.sort(key=lambda outcome: outcome[0]["index"])
    return ("ok", outcomes, notes)
