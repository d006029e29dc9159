"""molgnn's ET equals torchmd-net 3.x's, given the same weights (float64, real QM9 molecules)."""

import ast
import csv
import itertools
from pathlib import Path

import pytest
import torch

from molgnn.data.keys import ATOMIC_NUMBERS
from molgnn.interop import config_from_torchmdnet_args, from_torchmdnet

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
    mean = overrides.pop("mean", 0.3)
    args.update(overrides)
    prior = None
    if args["prior_model"] in ("Atomref", "LearnableAtomref"):
        from torchmdnet import priors

        prior = getattr(priors, args["prior_model"])(max_z=100)
    torch.manual_seed(0)
    model = torchmdnet_model.create_model(
        dict(args), prior_model=prior, mean=torch.tensor(mean), std=torch.tensor(1.7)
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
    {"reduce_op": "add"},  # torchmd-train's default
    {"reduce_op": "mean"},  # torchmd-net divides by atoms + 1
    {"reduce_op": "mean", "prior_model": "Atomref"},  # ... the prior included
    {"prior_model": "LearnableAtomref", "reduce_op": "add"},
    {"output_model": "DipoleMoment", "derivative": False, "mean": 0.0},
    {"output_model": "ElectronicSpatialExtent", "reduce_op": "mean"},
    {"output_model": "VectorOutput", "max_num_neighbors": 16},
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
    out = ours(z, pos, batch)
    y = out[0] if ours.derivative else out
    assert y.shape == y_ref.shape and y.shape[0] == 6
    assert torch.allclose(y, y_ref, atol=1e-8, rtol=0)
    if ours.derivative:
        assert torch.allclose(out[1], f_ref, atol=1e-8, rtol=0)
        assert out[1].abs().max() > 0


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


def test_disabled_atomref_is_dropped():
    """``--remove-ref-energy`` leaves a disabled Atomref: torchmd-net then adds nothing."""
    reference, _ = make_reference(prior_model="Atomref")
    reference.prior_model[0].enable = False
    ours = from_torchmdnet(reference).double()
    assert ours.prior is None
    z, pos, batch = qm9_batch(3, 4)
    assert torch.allclose(ours(z, pos, batch)[0], reference(z, pos, batch)[0], atol=1e-8)


def test_unsupported_models_are_refused():
    with pytest.raises(ValueError, match="Equivariant Transformer"):
        from_torchmdnet(torch.nn.Linear(2, 2))


ARGS = dict(
    model="equivariant-transformer", embedding_dimension=32, num_layers=2, num_rbf=16,
    rbf_type="expnorm", trainable_rbf=False, activation="silu", attn_activation="silu",
    neighbor_embedding=True, num_heads=4, distance_influence="both", cutoff_lower=0.0,
    cutoff_upper=5.0, max_z=100, max_num_neighbors=32, output_model="Scalar", reduce_op="add",
    prior_model=None, derivative=False, atom_filter=-1, precision=32,
)  # fmt: skip


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"prior_model": "ZBL"}, "'ZBL'.*nuclear-repulsion"),
        ({"prior_model": ["Atomref", {"D2": {"cutoff_distance": 10.0}}]}, "'D2'.*dispersion"),
        ({"prior_model": {"Coulomb": None}}, "'Coulomb'.*charges"),
        ({"prior_model": "Unknown"}, "unknown torchmd-net prior 'Unknown'"),
        ({"model": "tensornet2"}, "model='tensornet2'"),
        ({"box_vecs": [[10, 0, 0], [0, 10, 0], [0, 0, 10]]}, "box_vecs"),
        ({"atom_filter": 1}, "atom_filter=1"),
        ({"precision": 16}, "precision=16"),
        ({"reduce_op": "max"}, "reduce_op 'max'"),
        ({"output_model": "ScalarPlusWeightedCoulomb"}, "ScalarPlusWeightedCoulomb"),
        ({"output_model": "Magic"}, "output model 'EquivariantMagic'"),
    ],
)
def test_unconvertible_options_are_refused_by_name(option, message):
    with pytest.raises(ValueError, match=message) as err:
        config_from_torchmdnet_args({**ARGS, **option})
    if "prior" in str(err.value) or "head" in str(err.value) or "reduce_op" in str(err.value):
        assert "molgnn converts" in str(err.value)  # and says what is supported


def test_every_torchmd_train_reduce_op_and_head_maps():
    assert config_from_torchmdnet_args(ARGS).reduce_op == "sum"
    assert config_from_torchmdnet_args({**ARGS, "reduce_op": "mean"}).reduce_op == (
        "torchmdnet_mean"
    )
    heads = {
        "Scalar": "equivariant_scalar",
        "DipoleMoment": "equivariant_dipole_moment",
        "ElectronicSpatialExtent": "electronic_spatial_extent",
        "VectorOutput": "equivariant_vector",
    }
    for name, head in heads.items():
        config = config_from_torchmdnet_args({**ARGS, "output_model": name, "reduce_op": "mean"})
        assert config.head == head
    vector = config_from_torchmdnet_args(
        {**ARGS, "output_model": "VectorOutput", "reduce_op": "mean"}
    )
    assert vector.reduce_op == "sum"  # torchmd-net's vector head always sums
    # a prior on a head that takes none is dropped, as torchmd-net drops it
    dipole = config_from_torchmdnet_args(
        {**ARGS, "output_model": "DipoleMoment", "prior_model": "Atomref"}
    )
    assert dipole.prior is None
    learnable = config_from_torchmdnet_args(
        {**ARGS, "prior_model": "Atomref", "prior_args": [{"max_z": 100, "trainable": True}]}
    )
    assert learnable.prior == "learnable_atomref"
