"""Every torchmd-net output head for the ET, built directly (some create_model never builds)."""

import ast
import csv
import itertools
from pathlib import Path

import pytest
import torch

from molgnn.data.keys import ATOMIC_NUMBERS
from molgnn.interop import from_torchmdnet
from molgnn.nn import (
    DipoleMoment,
    ElectronicSpatialExtent,
    EquivariantDipoleMoment,
    EquivariantScalar,
    EquivariantVectorOutput,
    Scalar,
)

output_modules = pytest.importorskip(
    "torchmdnet.models.output_modules", reason="needs torchmd-net 3.x (CI installs it)"
)
from torchmdnet.models.model import TorchMD_Net  # noqa: E402
from torchmdnet.models.torchmd_et import TorchMD_ET  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9pack" / "qm9_part1.csv"

HEADS = {
    "Scalar": Scalar,
    "EquivariantScalar": EquivariantScalar,
    "DipoleMoment": DipoleMoment,
    "EquivariantDipoleMoment": EquivariantDipoleMoment,
    "ElectronicSpatialExtent": ElectronicSpatialExtent,
    "EquivariantElectronicSpatialExtent": ElectronicSpatialExtent,
    "EquivariantVectorOutput": EquivariantVectorOutput,
}


def qm9_batch(start: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` real QM9 molecules from the qm9pack-format fixture, as (z, pos, batch)."""
    with open(FIXTURE) as f:
        rows = list(itertools.islice(csv.DictReader(f), start, start + count))
    z: list[int] = []
    pos: list[list[float]] = []
    batch: list[int] = []
    for k, row in enumerate(rows):
        elements = ast.literal_eval(row["Elements"])
        z += [ATOMIC_NUMBERS[e] for e in elements]
        pos += ast.literal_eval(row["XYZ_Ang"])
        batch += [k] * len(elements)
    return torch.tensor(z), torch.tensor(pos, dtype=torch.float64), torch.tensor(batch)


def reference_model(
    head: str, derivative: bool, std: float = 1.0, reduce_op: str = "sum"
) -> TorchMD_Net:
    torch.manual_seed(1)
    rep = TorchMD_ET(
        hidden_channels=32, num_layers=2, num_rbf=16, num_heads=4, trainable_rbf=False,
        vector_cutoff=True, dtype=torch.float64,
    )  # fmt: skip
    out = getattr(output_modules, head)(32, reduce_op=reduce_op, dtype=torch.float64)
    model = TorchMD_Net(
        rep, out, std=torch.tensor(std, dtype=torch.float64), derivative=derivative,
        dtype=torch.float64,
    )  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "distance_expansion" not in name:
                p.normal_(0.0, 0.15)
    return model


@pytest.mark.interop
@pytest.mark.parametrize("reduce_op", ["add", "mean"])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_heads_match(head, reduce_op):
    derivative = "Dipole" not in head
    reference = reference_model(head, derivative, 1.0 if not derivative else 2.5, reduce_op)
    ours = from_torchmdnet(reference)
    assert isinstance(ours.head, HEADS[head])
    # torchmd-net's vector head always sums; its other heads' "mean" divides by atoms + 1
    expected = (
        "sum" if head == "EquivariantVectorOutput" or reduce_op == "add" else "torchmdnet_mean"
    )
    assert ours.head.reduce_op == expected
    z, pos, batch = qm9_batch(20, 5)
    y_ref, f_ref = reference(z, pos, batch)
    out = ours(z, pos, batch)
    y = out[0] if derivative else out
    width = 3 if head == "EquivariantVectorOutput" else 1
    assert y.shape == y_ref.shape == (5, width)
    assert torch.allclose(y, y_ref, atol=1e-8, rtol=0)
    if derivative:
        assert torch.allclose(out[1], f_ref, atol=1e-8, rtol=0)
        assert out[1].abs().max() > 0


def test_dipole_with_a_mean_is_refused():
    reference = reference_model("DipoleMoment", derivative=False)
    reference.mean.fill_(0.5)
    with pytest.raises(ValueError, match="mean"):
        from_torchmdnet(reference)
