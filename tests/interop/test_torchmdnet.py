"""molgnn's ET equals torchmd-net 3.x's, given the same weights (float64, real QM9 molecules)."""

import ast
import csv
import itertools
from pathlib import Path

import pytest
import torch

from molgnn.data.keys import ATOMIC_NUMBERS
from molgnn.interop import from_torchmdnet

torchmdnet_model = pytest.importorskip(
    "torchmdnet.models.model", reason="needs torchmd-net 3.x (CI installs it)"
)
FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9pack" / "qm9_part1.csv"


def qm9_batch(start: int, count: int):
    with open(FIXTURE) as f:
        rows = list(itertools.islice(csv.DictReader(f), start, start + count))
    z, pos, batch = [], [], []
    for k, row in enumerate(rows):
        elements = ast.literal_eval(row["Elements"])
        z += [ATOMIC_NUMBERS[e] for e in elements]
        pos += ast.literal_eval(row["XYZ_Ang"])
        batch += [k] * len(elements)
    return torch.tensor(z), torch.tensor(pos, dtype=torch.float64), torch.tensor(batch)


def make_reference(**overrides):
    args = dict(
        model="equivariant-transformer", embedding_dimension=32, num_layers=2, num_rbf=16,
        rbf_type="expnorm", trainable_rbf=False, activation="silu", attn_activation="silu",
        neighbor_embedding=True, num_heads=4, distance_influence="both", cutoff_lower=0.0,
        cutoff_upper=5.0, max_z=100, max_num_neighbors=32, vector_cutoff=True,
        output_model="Scalar", reduce_op="sum", prior_model=None, derivative=True,
        atom_filter=-1, precision=64,
    )  # fmt: skip
    args.update(overrides)
    prior = None
    if args["prior_model"] == "Atomref":
        from torchmdnet.priors import Atomref

        prior = Atomref(max_z=100)
    torch.manual_seed(0)
    model = torchmdnet_model.create_model(
        dict(args), prior_model=prior, mean=torch.tensor(0.3), std=torch.tensor(1.7)
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "distance_expansion" not in name:  # keep the radial basis well-formed
                p.normal_(0.0, 0.15)  # away from the zero-bias initialisation: every weight matters
        if prior is not None:
            prior.atomref.weight.normal_(0.0, 5.0)
    return model.double(), args


GRID = [
    {},
    {"distance_influence": "keys", "vector_cutoff": False},
    {"distance_influence": "values", "rbf_type": "gauss", "trainable_rbf": True},
    {"distance_influence": "none", "neighbor_embedding": False},
    {"output_model": "Scalar", "prior_model": "Atomref", "cutoff_upper": 4.0},
    {"activation": "tanh", "attn_activation": "silu", "cutoff_lower": 0.8, "num_heads": 8},
    {"num_layers": 3, "trainable_rbf": True},
]


@pytest.mark.interop
@pytest.mark.parametrize("overrides", GRID)
def test_outputs_and_forces_match(overrides):
    reference, _ = make_reference(**overrides)
    ours = from_torchmdnet(reference).double()
    z, pos, batch = qm9_batch(10, 6)
    y_ref, f_ref = reference(z, pos, batch)
    y, f = ours(z, pos, batch)
    assert y.shape == (6, 1)
    assert torch.allclose(y, y_ref, atol=1e-5, rtol=0)
    assert torch.allclose(f, f_ref, atol=1e-5, rtol=0)
    assert f.abs().max() > 0


@pytest.mark.interop
def test_checkpoint_file_conversion(tmp_path):
    reference, args = make_reference(prior_model="Atomref")
    path = tmp_path / "tmdn.ckpt"
    torch.save(
        {
            "hyper_parameters": args,
            "state_dict": {f"model.{k}": v for k, v in reference.state_dict().items()},
        },
        path,
    )
    ours = from_torchmdnet(path).double()
    z, pos, batch = qm9_batch(0, 4)
    assert torch.allclose(ours(z, pos, batch)[0], reference(z, pos, batch)[0], atol=1e-5)


@pytest.mark.interop
def test_mean_reduction_is_refused_with_the_reason():
    reference, _ = make_reference(reduce_op="mean")
    with pytest.raises(ValueError, match=r"reduce_op='sum'"):
        from_torchmdnet(reference)


def test_unsupported_models_are_refused():
    with pytest.raises(ValueError, match="Equivariant Transformer"):
        from_torchmdnet(torch.nn.Linear(2, 2))
    # torchmd-net's "mean" divides by (atoms + 1): refused rather than silently different
    reference, _ = make_reference(reduce_op="mean")
    with pytest.raises(ValueError, match="reduce_op"):
        from_torchmdnet(reference)
