"""TensorNet as a molgnn model: config, presets, forces, equivariance, training from the CLI."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

import molgnn
from molgnn.cli import main
from molgnn.io import load_checkpoint
from molgnn.models import MODEL_CONFIGS, PRESETS, build_model, model_config, stored_model_config
from molgnn.models.configs import TensorNetConfig
from molgnn.models.tensornet import TensorNet
from molgnn.nn import radius_graph
from molgnn.testing import assert_equivariant, batch_of, molecules, random_molecule

TINY = dict(hidden_channels=16, num_layers=2, num_rbf=8)


def tiny(**kw) -> molgnn.models.MolecularModel:
    torch.manual_seed(0)
    model = build_model("tensornet-small", **{**TINY, **kw}).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the initialisation, so that every weight matters
        for name, p in model.named_parameters():
            if "distance_expansion" not in name:
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.2)
    return model.eval()


def test_presets():
    assert MODEL_CONFIGS["tensornet"] is TensorNetConfig
    qm9 = PRESETS["tensornet-qm9"]  # torchmd-net's examples/TensorNet-QM9.yaml
    assert (qm9.hidden_channels, qm9.num_layers, qm9.num_rbf) == (256, 3, 64)
    assert (qm9.rbf_type, qm9.trainable_rbf, qm9.activation) == ("expnorm", False, "silu")
    assert (qm9.cutoff_lower, qm9.cutoff_upper, qm9.max_num_neighbors) == (0.0, 5.0, 64)
    assert qm9.equivariance_invariance_group == "O(3)" and qm9.head == "scalar"
    assert qm9.reduce_op == "sum" and qm9.prior == "auto"
    assert qm9.for_target("U0").prior == "atomref" and qm9.for_target("gap").prior is None
    small = build_model("tensornet-small")
    rep = small.representation
    assert isinstance(rep, TensorNet)
    assert (rep.hidden_channels, rep.num_layers, rep.num_rbf) == (64, 2, 32)
    z, pos, batch = batch_of([random_molecule(n, seed=n) for n in (3, 8, 12)])
    assert small(z, pos, batch).shape == (3, 1)
    x, vec = rep(z, pos, batch)
    assert x.shape == (23, 64) and vec is None


def test_config_checks_names_and_round_trips():
    config = model_config({"kind": "tensornet", "num_layers": 1, "head": "dipole_moment"})
    assert isinstance(config, TensorNetConfig) and config.prior is None  # "auto": no prior here
    assert TensorNetConfig.from_dict(config.to_dict()) == config
    assert stored_model_config(config.to_dict()) == config
    assert build_model(config.to_dict()).config == config
    for bad, message in (
        ({"head": "equivariant_scalar"}, "reads vector features, which TensorNet does not"),
        ({"head": "equivariant_vector"}, "valid heads: scalar, dipole_moment"),
        ({"head": "magic"}, "unknown head 'magic'"),
        ({"equivariance_invariance_group": "O(2)"}, "equivariance_invariance_group 'O\\(2\\)'"),
        ({"rbf_type": "bessel"}, "unknown rbf_type 'bessel'"),
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"reduce_op": "max"}, "unknown reduce_op 'max'"),
        ({"prior": "zbl"}, "unknown prior 'zbl'"),
        ({"head": "dipole_moment", "prior": "atomref"}, "takes no prior"),
        ({"num_heads": 8}, "unknown TensorNetConfig field 'num_heads'"),
    ):
        with pytest.raises(ValueError, match=message):
            model_config({"kind": "tensornet", **bad})
    with pytest.raises(ValueError, match="num_layers must be at least 0"):
        TensorNet(num_layers=-1)


def test_embedding_only_and_every_scalar_head_run():
    z, pos, batch = batch_of([random_molecule(n, seed=n, dtype=torch.float64) for n in (4, 9)])
    for kw in ({"num_layers": 0}, {"head": "dipole_moment"}, {"head": "electronic_spatial_extent"}):
        y = tiny(**kw)(z, pos, batch)
        assert y.shape == (2, 1) and torch.isfinite(y).all()


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_forces_are_minus_the_energy_gradient(group):
    """Forces (derivative=True) against central finite differences, float64."""
    model = tiny(derivative=True, equivariance_invariance_group=group, prior="atomref")
    mol = random_molecule(7, seed=11, dtype=torch.float64)
    _, forces = model(mol.z, mol.pos)
    assert forces.shape == (7, 3) and forces.abs().max() > 1e-3
    h = 1e-5
    numeric = torch.zeros_like(mol.pos)
    for atom in range(7):
        for axis in range(3):
            step = torch.zeros_like(mol.pos)
            step[atom, axis] = h
            up = model(mol.z, mol.pos + step)[0].sum()
            down = model(mol.z, mol.pos - step)[0].sum()
            numeric[atom, axis] = -(up - down).item() / (2 * h)
    assert (forces - numeric).abs().max() < 1e-7


def test_training_on_forces_differentiates_twice():
    model = tiny(derivative=True).train()
    mol = random_molecule(6, seed=2, dtype=torch.float64)
    y, forces = model(mol.z, mol.pos)
    (y.sum() + forces.square().sum()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    layer = model.representation.layers[0]
    assert layer.distance_mlp[0].weight.grad.abs().max() > 0  # through the forces, too


@settings(max_examples=6, deadline=None)
@given(molecules(2, 14, dtype=torch.float64))
def test_energy_invariant_and_forces_equivariant(mol):
    for group, reflections in (("O(3)", True), ("SO(3)", False)):
        model = tiny(derivative=True, equivariance_invariance_group=group)

        def fn(z, pos, batch, model=model):
            y, forces = model(z, pos, batch)
            return {"y": y, "forces": forces}

        kinds = {"y": "scalar", "forces": "atom_vector"}
        assert_equivariant(fn, mol.z, mol.pos, kinds=kinds, reflections=reflections, trials=4)


def test_precomputed_edges_give_the_same_result():
    model = tiny(cutoff_lower=0.5)
    mol = random_molecule(12, seed=4, dtype=torch.float64)
    for cutoff in (5.0, 7.0):  # RadiusGraph's default has no self loops; a wider one is cut
        edge_index = radius_graph(mol.pos, cutoff)
        assert torch.allclose(
            model(mol.z, mol.pos, edge_index=edge_index), model(mol.z, mol.pos), atol=1e-12
        )


def test_smooth_at_the_cutoff():
    model = tiny()
    z = torch.tensor([6, 8])
    energies = []
    for d in (4.999, 4.99999, 5.0, 5.00001, 5.001):
        pos = torch.tensor([[0.0, 0.0, 0.0], [d, 0.0, 0.0]], dtype=torch.float64)
        energies.append(model(z, pos).item())
    assert abs(energies[1] - energies[3]) < 1e-6 and abs(energies[0] - energies[4]) < 1e-3


def test_unknown_elements_are_refused():
    model = tiny(max_z=10)
    with pytest.raises(ValueError, match=r"atomic numbers must lie in 0\.\.9"):
        model(torch.tensor([6, 17]), torch.randn(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("target", ["gap", "U0"])
def test_molgnn_train_cli(tiny_qm9, tmp_path, capsys, target):
    """``molgnn train --model tensornet-small`` end to end; U0 gets the Atomref prior."""
    out = tmp_path / "run"
    args = [
        "train", "--model", "tensornet-small", "--target", target, "--subset", "30",
        "--epochs", "1", "--batch-size", "8", "--data-root", str(tiny_qm9),
        "--out-dir", str(out), "--quiet",
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    payload = load_checkpoint(out / "best.ckpt")
    assert payload["model_config"]["kind"] == "tensornet"
    model = molgnn.load(out / "best.ckpt")
    assert isinstance(model.representation, TensorNet)
    assert model.config == PRESETS["tensornet-small"].for_target(target)
    assert (model.prior is not None) == (target == "U0")
    from molgnn.data import QM9

    mol = QM9(str(tiny_qm9), first=30, progress=False)[0]
    y = model(mol.z, mol.pos)
    assert y.shape == (1, 1) and torch.isfinite(y).all()
    if target == "U0":  # about the molecule's total energy: the prior carries the atoms' part
        assert abs(y.item()) > 100


def test_online_loop_registers_tensornet_models_that_predict(tiny_qm9, tmp_path, capsys):
    store = tmp_path / "store"
    args = ["online", "--store", str(store), "--data-root", str(tiny_qm9), "--subset", "30",
            "--val", "4", "--test", "4", "--initial", "10", "--chunk", "5", "--epochs", "1",
            "--max-chunks", "1", "--quiet", "--model", "tensornet-small",
            "--set", "model.hidden_channels=16", "--set", "model.num_layers=1"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    from molgnn.online import Store

    (record,) = Store(store).models()
    assert record.config["kind"] == "tensornet"
    capsys.readouterr()
    assert main(["predict", str(store / record.checkpoint), "CCO", "--json"]) == 0
    assert '"gap"' in capsys.readouterr().out
