"""molgnn's TensorNet equals torchmd-net 3.x's, given the same weights (real QM9 molecules).

torchmd-net computes TensorNet two ways: plain PyTorch (``torchmdnet/models/tensornet.py``, what
runs without warp-lang) and, when warp-lang is installed, Warp kernels. The plain formulation is
the reference here: energies and forces agree to 1e-10 in float64 and 1e-5 in float32. Against
the Warp kernels (torchmd-net's default), float64 agrees to about 1e-8 only: torchmd-net 3.1
rounds one constant to float32 there even in float64 (``one_third = X.dtype(1.0 / 3.0)`` in
``warp_kernels/tensor_norm3.py``, so the ``3 I^2`` invariant is off by about 3e-8 relative).
The Warp kernels also build the embedding's antisymmetric part with the opposite sign, which
makes their SO(3) model the plain one evaluated on the inverted molecule; the conversion follows
the path its source runs on (see :mod:`molgnn.interop.torchmdnet_tensornet`).
"""

from __future__ import annotations

import pytest
import torch

from molgnn.interop import config_from_torchmdnet_args, from_torchmdnet
from molgnn.models.configs import TensorNetConfig
from tests.interop.test_torchmdnet import qm9_batch

torchmdnet_model = pytest.importorskip(
    "torchmdnet.models.model", reason="needs torchmd-net 3.x (CI installs it)"
)
import torchmdnet.models.tensornet as tmdn_tensornet  # noqa: E402

pytestmark = pytest.mark.interop

#: torchmd-net's plain-PyTorch TensorNet ops, by the module names its Warp ops replace.
_PLAIN_OPS = {
    "compose_tensor": "_compose_tensor",
    "decompose_tensor": "_decompose_tensor",
    "tensor_matmul_o3": "_tensor_matmul_o3",
    "tensor_matmul_so3": "_tensor_matmul_so3",
}


@pytest.fixture
def plain_torchmdnet(monkeypatch):
    """Build and run torchmd-net's TensorNet in its plain-PyTorch formulation."""
    for name, plain in _PLAIN_OPS.items():
        if not hasattr(tmdn_tensornet, plain):
            pytest.fail(f"torchmd-net's tensornet module has no {plain}: update this fixture")
        monkeypatch.setattr(tmdn_tensornet, name, getattr(tmdn_tensornet, plain))
    monkeypatch.setattr(tmdn_tensornet, "OPT", False)  # layers read it when they are built


def make_reference(precision: int = 64, **overrides):
    """A random torchmd-net TensorNet (every weight drawn away from its initialisation)."""
    args = dict(
        model="tensornet", embedding_dimension=32, num_layers=2, num_rbf=16, rbf_type="expnorm",
        trainable_rbf=False, activation="silu", cutoff_lower=0.0, cutoff_upper=5.0, max_z=100,
        max_num_neighbors=64, equivariance_invariance_group="O(3)", output_model="Scalar",
        reduce_op="sum", prior_model=None, derivative=True, atom_filter=-1, precision=precision,
    )  # fmt: skip
    mean = overrides.pop("mean", 0.3)
    args.update(overrides)
    prior = None
    if args["prior_model"] in ("Atomref", "LearnableAtomref"):
        from torchmdnet import priors

        prior = getattr(priors, args["prior_model"])(max_z=args["max_z"])
    torch.manual_seed(0)
    model = torchmdnet_model.create_model(
        dict(args), prior_model=prior, mean=torch.tensor(mean), std=torch.tensor(1.7)
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "distance_expansion" not in name:  # keep the radial basis well-formed
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.15)
        if prior is not None:
            prior.atomref.weight.normal_(0.0, 5.0, generator=gen)
    dtype = torch.float64 if precision == 64 else torch.float32
    return model.to(dtype).eval(), args


def outputs(model, z, pos, batch):
    """``(y, forces)``; forces ``None`` without ``derivative`` (torchmd-net then returns an
    empty tensor in their place)."""
    out = model(z, pos.clone(), batch)
    y, forces = out if isinstance(out, tuple) else (out, None)
    if forces is None or not model.derivative:
        return y.detach(), None
    return y.detach(), forces.detach()


def max_differences(reference, dtype, start=10, count=8):
    """Max |dy| and |dF| between ``reference`` and its conversion on QM9 molecules."""
    ours = from_torchmdnet(reference)
    assert ours.config.kind == "tensornet"
    assert next(ours.parameters()).dtype == dtype
    z, pos, batch = qm9_batch(start, count)
    pos = pos.to(dtype)
    y_ref, f_ref = outputs(reference, z, pos, batch)
    y, f = outputs(ours, z, pos, batch)
    assert y.shape == y_ref.shape and y.shape[0] == count
    assert torch.isfinite(y).all() and y.abs().max() > 0
    dy = (y - y_ref).abs().max().item()
    if f_ref is None:
        assert f is None
        return dy, 0.0
    assert f is not None and f.shape == f_ref.shape and f_ref.abs().max() > 0
    return dy, (f - f_ref).abs().max().item()


GRID = [
    {},
    {"equivariance_invariance_group": "SO(3)"},
    {"num_layers": 0},
    {"num_layers": 3, "embedding_dimension": 24, "num_rbf": 8, "equivariance_invariance_group": "SO(3)"},
    {"num_layers": 1, "embedding_dimension": 64, "num_rbf": 32},
    {"rbf_type": "gauss", "trainable_rbf": True},
    {"activation": "tanh", "cutoff_lower": 0.8, "cutoff_upper": 4.0},
    {"prior_model": "Atomref", "reduce_op": "add"},
    {"prior_model": "LearnableAtomref", "reduce_op": "mean", "equivariance_invariance_group": "SO(3)"},
    {"output_model": "DipoleMoment", "derivative": False, "mean": 0.0},
    {"output_model": "ElectronicSpatialExtent", "reduce_op": "mean"},
    {"static_shapes": True, "max_z": 128, "activation": "mish"},
]  # fmt: skip


@pytest.mark.parametrize("overrides", GRID)
def test_float64_matches_to_1e_10(plain_torchmdnet, overrides):
    reference, _ = make_reference(64, **overrides)
    dy, df = max_differences(reference, torch.float64)
    assert dy < 1e-10 and df < 1e-10, f"max |dy| {dy:.2e}, max |dF| {df:.2e}"


@pytest.mark.parametrize("overrides", GRID)
def test_float32_matches_to_1e_5(plain_torchmdnet, overrides):
    reference, _ = make_reference(32, **overrides)
    dy, df = max_differences(reference, torch.float32)
    assert dy < 1e-5 and df < 1e-5, f"max |dy| {dy:.2e}, max |dF| {df:.2e}"


def test_shifted_softplus(plain_torchmdnet):
    """torchmd-net's ``ssp`` subtracts log 2 rounded to float32 (``torch.log(torch.tensor(2.0))
    .item()``), molgnn's the float64 value: 2e-9 apart per activation, so float64 models agree to
    about 1e-7, float32 ones as closely as the other activations."""
    reference, _ = make_reference(32, activation="ssp")
    dy, df = max_differences(reference, torch.float32)
    assert dy < 1e-5 and df < 1e-5, f"float32: max |dy| {dy:.2e}, max |dF| {df:.2e}"
    reference, _ = make_reference(64, activation="ssp")
    dy, df = max_differences(reference, torch.float64)
    assert dy < 1e-6 and df < 1e-6, f"float64: max |dy| {dy:.2e}, max |dF| {df:.2e}"


@pytest.mark.skipif(not tmdn_tensornet.OPT, reason="torchmd-net runs without its Warp kernels")
@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_matches_torchmdnets_warp_kernels(group):
    """torchmd-net's default path when warp-lang is installed (the bound is explained above)."""
    reference, _ = make_reference(32, equivariance_invariance_group=group, prior_model="Atomref")
    assert reference.representation_model.opt
    dy, df = max_differences(reference, torch.float32)
    assert dy < 1e-5 and df < 1e-5, f"float32: max |dy| {dy:.2e}, max |dF| {df:.2e}"
    reference, _ = make_reference(64, equivariance_invariance_group=group, prior_model="Atomref")
    dy, df = max_differences(reference, torch.float64)
    assert dy < 1e-7 and df < 1e-7, f"float64: max |dy| {dy:.2e}, max |dF| {df:.2e}"


def test_the_so3_variant_is_a_different_model(plain_torchmdnet):
    """The group is carried over: the same weights as O(3) give other numbers."""
    reference, _ = make_reference(64, equivariance_invariance_group="SO(3)")
    ours = from_torchmdnet(reference)
    assert ours.config.equivariance_invariance_group == "SO(3)"
    assert TensorNetConfig.from_dict(ours.config.to_dict()) == ours.config
    o3 = ours.config.replace(equivariance_invariance_group="O(3)").build().double()
    o3.load_state_dict(ours.state_dict())
    z, pos, batch = qm9_batch(10, 8)
    (_, f_o3), (_, f_so3) = outputs(o3.eval(), z, pos, batch), outputs(ours, z, pos, batch)
    assert (f_o3 - f_so3).abs().max() > 1e-7  # 1000 times the conversion's error


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_checkpoint_file_conversion(plain_torchmdnet, tmp_path, group):
    """A checkpoint converts as torchmd-net 3.1 runs it, through the Warp kernels: for SO(3),
    that is the plain model on the inverted molecule, exactly."""
    reference, args = make_reference(
        64, prior_model="Atomref", static_shapes=False, equivariance_invariance_group=group
    )
    path = tmp_path / "tensornet.ckpt"
    torch.save(
        {
            "hyper_parameters": args,
            "state_dict": {f"model.{k}": v for k, v in reference.state_dict().items()},
        },
        path,
    )
    ours = from_torchmdnet(path).double()
    assert ours.config.prior == "atomref" and ours.config.kind == "tensornet"
    z, pos, batch = qm9_batch(10, 8)
    y, f = outputs(ours, z, pos, batch)
    y_ref, f_ref = outputs(reference, z, -pos, batch)  # the mirror image
    assert (y - y_ref).abs().max() < 1e-10 and (f + f_ref).abs().max() < 1e-10
    y_ref, f_ref = outputs(reference, z, pos, batch)
    if group == "O(3)":  # invariant under inversion: the same model
        assert (y - y_ref).abs().max() < 1e-10 and (f - f_ref).abs().max() < 1e-10
    else:  # it tells mirror images apart
        assert (f - f_ref).abs().max() > 1e-7


def test_periodic_models_are_refused():
    reference, _ = make_reference(64, box_vecs=[[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    with pytest.raises(ValueError, match="periodic box vectors"):
        from_torchmdnet(reference)


ARGS = dict(
    model="tensornet", embedding_dimension=32, num_layers=2, num_rbf=16, rbf_type="expnorm",
    trainable_rbf=False, activation="silu", cutoff_lower=0.0, cutoff_upper=5.0, max_z=128,
    max_num_neighbors=64, equivariance_invariance_group="SO(3)", output_model="Scalar",
    reduce_op="add", prior_model="Atomref", derivative=True, atom_filter=-1, precision=32,
    charge=False, spin=False,
)  # fmt: skip


def test_hyperparameters_map_to_the_config():
    config = config_from_torchmdnet_args(ARGS)
    assert isinstance(config, TensorNetConfig)
    assert config.to_dict() == {
        "kind": "tensornet", "hidden_channels": 32, "num_layers": 2, "num_rbf": 16,
        "rbf_type": "expnorm", "trainable_rbf": False, "activation": "silu",
        "cutoff_lower": 0.0, "cutoff_upper": 5.0, "max_z": 128, "max_num_neighbors": 64,
        "equivariance_invariance_group": "SO(3)", "head": "scalar", "reduce_op": "sum",
        "prior": "atomref", "out_channels": 1, "derivative": True,
    }  # fmt: skip
    mean = config_from_torchmdnet_args(
        {**ARGS, "reduce_op": "mean", "output_model": "DipoleMoment"}
    )
    assert mean.reduce_op == "torchmdnet_mean" and mean.head == "dipole_moment"
    assert mean.prior is None  # torchmd-net drops priors on the dipole head too
    older = {k: v for k, v in ARGS.items() if k != "equivariance_invariance_group"}
    assert config_from_torchmdnet_args(older).equivariance_invariance_group == "O(3)"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"charge": True}, "charge=True.*total charge"),
        ({"box_vecs": [[10, 0, 0], [0, 10, 0], [0, 0, 10]]}, "box_vecs"),
        ({"atom_filter": 1}, "atom_filter=1"),
        ({"precision": 16}, "precision=16"),
        ({"output_model": "EquivariantScalar"}, "EquivariantScalar head: it reads vector"),
        ({"output_model": "EquivariantVectorOutput"}, "reads vector features"),
        ({"output_model": "ScalarPlusWeightedCoulomb"}, "ScalarPlusWeightedCoulomb"),
        ({"output_model": "Magic"}, "output model 'Magic'"),
        ({"prior_model": "ZBL"}, "'ZBL'.*nuclear-repulsion"),
        ({"reduce_op": "max"}, "reduce_op 'max'"),
        ({"equivariance_invariance_group": "O(2)"}, "equivariance_invariance_group 'O\\(2\\)'"),
        ({"model": "tensornet2"}, "model='tensornet2'"),
    ],
)
def test_unconvertible_options_are_refused_by_name(option, message):
    with pytest.raises(ValueError, match=message):
        config_from_torchmdnet_args({**ARGS, **option})


@pytest.mark.slow
@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_torchmd_train_checkpoint(tiny_qm9, tmp_path, monkeypatch, group):
    """A checkpoint ``torchmd-train`` wrote for ``model: tensornet`` (U0, standardised, forces).

    Compared with torchmd-net's ``load_model`` of it on held-out molecules: as torchmd-net runs
    it by default (Warp kernels), and in its plain-PyTorch formulation (on the inverted molecule
    for SO(3)), which agrees to 1e-10 in float64.
    """
    pytest.importorskip("lightning", reason="torchmd-net trains with Lightning")
    from torchmdnet.models.model import load_model

    from molgnn.data import QM9
    from tests.interop.test_torchmd_train import as_batch, torchmd_train, training_conf

    data = QM9(str(tiny_qm9), target="U0", first=30, progress=False)
    mols = [data[i] for i in range(len(data))]
    train, held_out = mols[:24], mols[24:]
    conf = training_conf(
        tmp_path, train, column=0, model="tensornet", embedding_dimension=32, num_layers=2,
        num_rbf=16, equivariance_invariance_group=group, standardize=True, derivative=True,
        train_size=16, val_size=4, test_size=4, batch_size=8,
    )  # fmt: skip
    ckpt = torchmd_train(tmp_path, conf)
    hparams = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hparams["model"] == "tensornet" and hparams["equivariance_invariance_group"] == group
    ours = from_torchmdnet(ckpt)
    config = ours.config
    assert config.kind == "tensornet" and config.equivariance_invariance_group == group
    assert config.reduce_op == "sum" and config.derivative and config.head == "scalar"
    assert ours.std.item() != 1.0 and ours.mean.item() != 0.0  # standardisation carried over

    measured = {}
    for dtype in (torch.float32, torch.float64):
        z, pos, batch = as_batch(held_out, dtype)
        y, f = outputs(ours.to(dtype), z, pos, batch)
        y_ref, f_ref = outputs(load_model(str(ckpt)).to(dtype).eval(), z, pos, batch)
        measured[dtype] = ((y - y_ref).abs().max().item(), (f - f_ref).abs().max().item())
    # U0 totals are ~1e4 eV and the standardised model scales its forces by the std, so float32
    # carries rounding in proportion: compare relatively.
    y_scale, f_scale = y_ref.abs().max().item(), f_ref.abs().max().item()
    de, df = measured[torch.float32]
    assert de < 2e-6 * y_scale and df < 1e-5 * f_scale, (
        f"float32 (Warp): |dE| {de:.2e} of {y_scale:.2e}, |dF| {df:.2e} of {f_scale:.2e}"
    )
    # torchmd-net's Warp kernels hold a float32 constant (see the module docstring).
    de, df = measured[torch.float64]
    assert de < 1e-8 * y_scale and df < 1e-6 * f_scale, (
        f"float64 (Warp): |dE| {de:.2e} of {y_scale:.2e}, |dF| {df:.2e} of {f_scale:.2e}"
    )

    for name, plain in _PLAIN_OPS.items():
        monkeypatch.setattr(tmdn_tensornet, name, getattr(tmdn_tensornet, plain))
    monkeypatch.setattr(tmdn_tensornet, "OPT", False)
    plain_reference = load_model(str(ckpt)).double().eval()
    assert not plain_reference.representation_model.opt
    z, pos, batch = as_batch(held_out, torch.float64)
    y, f = outputs(ours.double(), z, pos, batch)
    y_ref, f_ref = outputs(plain_reference, z, -pos, batch)  # the Warp orientation: inverted
    de, df = (y - y_ref).abs().max().item(), (f + f_ref).abs().max().item()
    assert de < 1e-10 and df < 1e-10, f"float64 (plain): |dE| {de:.2e}, |dF| {df:.2e}"
    print(f"{group}: float64 vs plain |dE| {de:.1e} |dF| {df:.1e}; vs Warp {measured}", end=" ")
    print(f"(|E| up to {y_scale:.3g}, |F| up to {f_scale:.3g})")
