"""Predict properties of new molecules with a trained model.

Molecules may be XYZ files (one or many molecules each), ``ase.Atoms``, PyG ``Data`` with ``z``
and ``pos``, or SMILES strings (3D geometry generated with RDKit's ETKDG and MMFF; extra
``chem``); see [`to_molecules`][molgnn.inference.to_molecules]. Predictions come back in the model's
units, computed in batches.

Input that cannot be a molecule (an unreadable file, no atoms, NaN coordinates, an unknown
element or one the model never saw in training, two atoms closer than ``min_distance``) is
refused with a ``ValueError`` naming the molecule. A molecule the model can run on but that lies
outside what it was trained on gets a warning in ``Predictions.warnings`` (and in
[`Predictions.to_records`][molgnn.inference.Predictions.to_records]): more atoms than the largest
training molecule, a radius graph truncated by ``max_num_neighbors``, a net charge or unpaired
electrons. ``strict=True`` turns those warnings into errors. A molecule whose prediction is not
finite (a damaged model) gets ``None`` and an error message instead of a number.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from molgnn.inference._labels import molecule_label
from molgnn.inference.checks import (
    MIN_DISTANCE,
    check_molecule,
    model_elements,
    molecule_warnings,
    training_max_atoms,
)
from molgnn.inference.molecules import MoleculeLike, to_molecules
from molgnn.nn.radius import NeighborTruncation, record_truncation

__all__ = ["Predictions", "predict"]


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
        std: `[M, T]` standard deviations of the predictions, from an
            [`Ensemble`][molgnn.uncertainty.Ensemble]'s members or MC-dropout passes
            (`None` without uncertainty).
    """

    values: Tensor
    names: list[str]
    generated_geometry: list[bool]
    targets: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    std: Tensor | None = None

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-able dict per molecule.

        Keys: ``name``, ``generated_geometry``, one per target (``None`` for a failed molecule),
        ``units`` (when known), ``warnings`` (a list of messages, empty when there are none)
        and, for a molecule without a prediction, ``error``. With uncertainty, ``std`` maps each
        target to its standard deviation (``None`` for a failed molecule). The records contain
        no NaN, so
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
            if self.std is not None:
                stds = [float(s) for s in self.std[i]]
                ok = error is None
                row["std"] = {k: s if ok and math.isfinite(s) else None for k, s in zip(keys, stds)}
            if self.units:
                row["units"] = dict(zip(keys, self.units))
            row["warnings"] = list(self.warnings[i]) if i < len(self.warnings) else []
            if error is not None:
                row["error"] = error
            records.append(row)
        return records


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
    uncertainty: bool | None = None,
    mc_dropout_samples: int | None = None,
    seed: int = 0,
) -> Predictions:
    """Predict the model's property for each molecule.

    Molecules outside the model's training data are predicted with a warning per molecule
    in ``Predictions.warnings`` (see [`molecule_warnings`][molgnn.inference.molecule_warnings]),
    including a radius graph that ``max_num_neighbors`` truncated; ``strict=True`` raises instead. A
    molecule whose prediction is NaN or infinite (a damaged model) gets an entry in
    ``Predictions.errors``.

    Args:
        model: A molgnn model, e.g. from [`molgnn.load`][molgnn.inference.load].
        molecules: XYZ paths, ``ase.Atoms``, ``Data`` or SMILES, one or a list.
        batch_size: Molecules per forward pass, at least 1 (default: ``64``).
        device: Device to run on (default: the model's).
        min_distance: Two atoms closer than this (Å) are refused (default:
            [`MIN_DISTANCE`][molgnn.inference.MIN_DISTANCE], ``0.5``).
        strict: Raise ``ValueError`` for a molecule that would get a warning or an error
            (default: ``False``).
        uncertainty: Also return the standard deviation in `Predictions.std`, and the mean as
            `values`: over an [`Ensemble`][molgnn.uncertainty.Ensemble]'s members, or over
            `mc_dropout_samples` passes of a model with dropout; `None` does so exactly when
            `model` is an ensemble or `mc_dropout_samples` is given (default: `None`).
        mc_dropout_samples: Forward passes with dropout on (MC dropout), at least 2; the
            model needs dropout layers (default: `None`).
        seed: Seed of the MC-dropout masks; the same call gives the same samples
            (default: `0`).

    Returns:
        [`Predictions`][molgnn.inference.Predictions] with ``values`` ``[M, T]`` in the model's
        units.

    Raises:
        ValueError: for ``uncertainty=True`` with neither an ensemble nor
            ``mc_dropout_samples``, MC dropout on a model without dropout or on an ensemble,
            for a ``batch_size`` below 1, unreadable molecules (naming the file and
            line), no atoms, NaN coordinates, elements the model never saw, atoms closer than
            ``min_distance``, or, with ``strict``, any warning or non-finite prediction.
        FileNotFoundError: for a missing XYZ file.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not min_distance >= 0:
        raise ValueError(f"min_distance must be a non-negative number of Å, got {min_distance}")
    from molgnn.uncertainty.ensemble import Ensemble
    from molgnn.uncertainty.sampling import sample_outputs

    if uncertainty is None:
        uncertainty = isinstance(model, Ensemble) or mc_dropout_samples is not None
    elif not uncertainty and mc_dropout_samples is not None:
        raise ValueError("mc_dropout_samples needs uncertainty=True (or None): it samples the std")
    sampling = sample_outputs(model, mc_dropout_samples, seed) if uncertainty else None
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
    values, stds = [], []
    with (
        _eval_mode(model),
        torch.set_grad_enabled(grad),
        sampling or contextlib.nullcontext() as sample,
    ):
        for start in range(0, len(mols), batch_size):
            chunk = [Data(z=m.z, pos=m.pos.to(dtype)) for m in mols[start : start + batch_size]]
            batch = Batch.from_data_list(chunk).to(run_on)
            with record_truncation() as report:
                if sample is None:
                    out = model(batch.z, batch.pos, batch.batch)
                else:
                    samples = sample(batch.z, batch.pos, batch.batch).detach()  # [S, B, T]
                    out = samples.mean(0)
                    stds.append(samples.std(0).float().cpu())
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
        std=(torch.cat(stds) if stds else torch.empty(0, 1)) if uncertainty else None,
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
                raise ValueError(f"{molecule_label(mol)}: {problem} (strict: no prediction)")
    return result
