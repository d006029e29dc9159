"""An ASE calculator backed by a molgnn energy model (extra ``chem``).

Example:
    ```python
    from ase.optimize import BFGS
    from molgnn.interop.ase import Calculator

    atoms.calc = Calculator("runs/u0/best.ckpt")
    BFGS(atoms).run(fmax=0.05)
    ```
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch_geometric.data import Data

from molgnn.data.keys import TARGETS
from molgnn.inference.checks import (
    MIN_DISTANCE,
    PredictionWarning,
    check_molecule,
    model_elements,
    molecule_warnings,
    training_max_atoms,
)
from molgnn.inference.loading import load
from molgnn.nn.radius import record_truncation

try:
    from ase.calculators.calculator import Calculator as _AseCalculator
    from ase.calculators.calculator import all_changes
except ImportError as err:  # pragma: no cover - exercised only without ASE
    raise ImportError("molgnn.interop.ase needs ASE: pip install 'molgnn[chem]'") from err

__all__ = ["ENERGY_TARGETS", "Calculator"]

#: Targets that are a molecule's energy, so that minus their gradient is a force: the total
#: energies and enthalpies (``U0``, ``U``, ``H``, ``G``) and their atomization variants. Orbital
#: energies (``homo``, ``lumo``, ``gap``) and ``zpve`` are in eV too, but are not potentials.
ENERGY_TARGETS: tuple[str, ...] = tuple(
    sorted(
        {t.atomization_of for t in TARGETS.values() if t.atomization_of}
        | {t.name for t in TARGETS.values() if t.atomization_of}
    )
)


def _check_energy_model(model: nn.Module) -> None:
    """Refuse a checkpoint whose recorded target is not one energy in eV."""
    info = getattr(model, "checkpoint_info", None) or {}
    target = info.get("target") or {}
    names, units = target.get("names"), target.get("units")
    if names is None and units is None:
        return  # a model built in code: it is taken to predict an energy in eV
    names, units = list(names or []), list(units or [])
    allowed = ", ".join(ENERGY_TARGETS)
    need = f"molgnn.interop.ase.Calculator needs a model of one energy target in eV ({allowed})"
    if len(names) != 1:
        raise ValueError(f"{need}; this model predicts {len(names)} targets: {names}")
    name, unit = names[0], (units[0] if units else "unknown units")
    if name not in ENERGY_TARGETS or unit != "eV":
        what = f" ({TARGETS[name].description})" if name in TARGETS else ""
        why = (
            ", which is not a potential energy: its gradient is not a force"
            if name not in ENERGY_TARGETS
            else ""
        )
        raise ValueError(f"{need}; this model predicts {name!r}{what} in {unit}{why}")


class Calculator(_AseCalculator):
    """ASE calculator: energy (eV) and forces (eV/Å, $-\\partial E/\\partial \\mathbf{r}$).

    Forces come from autograd through the model, so any molgnn energy model works, whether or
    not it was built with ``derivative=True``.

    The calculator makes the checks [`molgnn.predict`][molgnn.inference.predict] makes: a checkpoint
    must predict one of [`ENERGY_TARGETS`][molgnn.interop.ase.ENERGY_TARGETS] in eV (a model without
    a checkpoint record is trusted); each structure must have atoms, finite coordinates, only
    elements seen in training, no two atoms closer than ``min_distance`` and no periodic boundary
    conditions, else ``ValueError``. A structure outside the training data (more atoms than the
    largest training molecule, an odd electron count, a truncated neighbour list) draws a
    [`PredictionWarning`][molgnn.inference.PredictionWarning]; the messages of the last calculation
    are in ``warnings``.

    Args:
        model: A checkpoint path or a loaded model that predicts an energy in eV.
        device: Device to run on (default: ``"cpu"``).
        dtype: Floating dtype of the computation (default: ``torch.float64`` for smooth
            optimisation and finite-difference agreement).
        min_distance: Two atoms closer than this (Å) are refused (default:
            [`MIN_DISTANCE`][molgnn.inference.MIN_DISTANCE]).
        **kwargs: Passed to ASE's ``Calculator`` (``label``, ``atoms``, ...).

    Raises:
        ValueError: for a checkpoint that does not predict one energy in eV (naming its
            target), or one that cannot be loaded.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(
        self,
        model: str | Path | nn.Module,
        device: str = "cpu",
        dtype: torch.dtype = torch.float64,
        min_distance: float = MIN_DISTANCE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(model, str | Path):
            model = load(model)
        _check_energy_model(model)
        if not min_distance >= 0:
            raise ValueError(f"min_distance must be a non-negative number of Å, got {min_distance}")
        self.elements = model_elements(model)
        self.max_atoms = training_max_atoms(model)
        self.min_distance = float(min_distance)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device = torch.device(device)
        self.dtype = dtype
        self.warnings: list[str] = []

    def calculate(
        self,
        atoms: Any = None,
        properties: Any = ("energy",),
        system_changes: Any = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        name = self.atoms.get_chemical_formula() or "atoms"
        if self.atoms.pbc.any():
            raise ValueError(
                f"{name}: periodic boundary conditions (pbc={self.atoms.pbc.tolist()}) are not "
                "supported; molgnn models are trained on isolated molecules (set atoms.pbc = "
                "False)"
            )
        z = torch.as_tensor(self.atoms.get_atomic_numbers(), dtype=torch.long)
        pos = torch.as_tensor(self.atoms.get_positions(), dtype=self.dtype)
        mol = Data(z=z, pos=pos, name=name)
        check_molecule(mol, self.elements, self.min_distance)
        notes = molecule_warnings(mol, self.max_atoms)
        z, pos = z.to(self.device), pos.to(self.device).requires_grad_(True)
        batch = torch.zeros_like(z)
        with record_truncation() as report:
            out = self.model(z, pos, batch)
        for truncation in report.by_molecule().values():
            share = 100.0 * truncation.dropped / max(truncation.found, 1)
            notes.append(
                f"neighbour list truncated: {truncation.dropped} of {truncation.found} pairs "
                f"({share:.0f}%) dropped by max_num_neighbors={truncation.max_num_neighbors}"
            )
        self.warnings = notes
        for note in notes:
            warnings.warn(f"{name}: {note}", PredictionWarning, stacklevel=2)
        energy = (out[0] if isinstance(out, tuple) else out).sum()
        if not torch.isfinite(energy):
            raise ValueError(
                f"{name}: the model returned a non-finite energy ({float(energy.detach())}); "
                "its weights may be damaged"
            )
        (grad,) = torch.autograd.grad(energy, pos)
        self.results["energy"] = float(energy.detach())
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = (-grad).detach().cpu().numpy()
