"""An ASE calculator backed by a molgnn energy model (extra ``chem``).

Example::

    from ase.optimize import BFGS
    from molgnn.ase import Calculator

    atoms.calc = Calculator("runs/u0/best.ckpt")
    BFGS(atoms).run(fmax=0.05)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

try:
    from ase.calculators.calculator import Calculator as _AseCalculator
    from ase.calculators.calculator import all_changes
except ImportError as err:  # pragma: no cover - exercised only without ASE
    raise ImportError("molgnn.ase needs ASE: pip install 'molgnn[chem]'") from err

__all__ = ["Calculator"]

_ENERGY_UNITS = ("eV",)


class Calculator(_AseCalculator):
    """ASE calculator: energy (eV) and forces (eV/Å, :math:`-\\partial E/\\partial \\mathbf{r}`).

    Forces come from autograd through the model, so any molgnn energy model works, whether or
    not it was built with ``derivative=True``.

    Args:
        model: A checkpoint path or a loaded model that predicts an energy in eV.
        device: Device to run on (default: ``"cpu"``).
        dtype: Floating dtype of the computation (default: ``torch.float64`` for smooth
            optimisation and finite-difference agreement).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(
        self,
        model: str | Path | nn.Module,
        device: str = "cpu",
        dtype: torch.dtype = torch.float64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(model, str | Path):
            from molgnn.training import load

            model = load(model)
        info = getattr(model, "checkpoint_info", None) or {}
        units = (info.get("target") or {}).get("units")
        if units is not None and (len(units) != 1 or units[0] not in _ENERGY_UNITS):
            raise ValueError(
                f"molgnn.ase.Calculator needs a model of one energy target in eV; this model "
                f"predicts {(info.get('target') or {}).get('names')} in {units}"
            )
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device = torch.device(device)
        self.dtype = dtype

    def calculate(
        self,
        atoms: Any = None,
        properties: Any = ("energy",),
        system_changes: Any = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        z = torch.as_tensor(self.atoms.get_atomic_numbers(), dtype=torch.long, device=self.device)
        pos = torch.as_tensor(self.atoms.get_positions(), dtype=self.dtype, device=self.device)
        pos.requires_grad_(True)
        batch = torch.zeros_like(z)
        out = self.model(z, pos, batch)
        energy = (out[0] if isinstance(out, tuple) else out).sum()
        (grad,) = torch.autograd.grad(energy, pos)
        self.results["energy"] = float(energy.detach())
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = (-grad).detach().cpu().numpy()
