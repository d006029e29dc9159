import dataclasses
import inspect
import itertools
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from molgnn.data import QM9, qm9pack_dir
from molgnn.models import (
    AUTO_PRIOR,
    MODEL_CONFIGS,
    PooledGNN,
    PooledGNNConfig,
    build_model,
    degree_histogram,
    model_config,
    stored_model_config,
)
from molgnn.models.pooled_gnn import EDGE_FEATURES
from molgnn.nn import CONVS, POOLS, Atomref, GlobalPool, PooledHead
from molgnn.testing import assert_invariant, batch_of, molecules, random_molecule
from molgnn.transforms import BOND_TOLERANCE, CovalentBonds
from tests.conftest import FIXTURE_QM9


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny graphs: a second OpenMP thread only adds overhead, and on a busy machine its
    spin-waiting made the overfit test 20x slower (80 s instead of 4 s of CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("conv", "pool"), list(itertools.product(CONVS, POOLS)))
def test_every_conv_and_pool_gives_one_value_per_molecule(conv, pool):
    torch.manual_seed(0)
    z, pos, batch = batch_of([random_molecule(n, seed=n) for n in (2, 5, 9)])
    model = PooledGNNConfig(
        hidden_channels=16, num_layers=2, conv=conv, pool=pool, out_channels=2
    ).build()
    out = model(z, pos, batch)
    assert out.shape == (3, 2) and torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("edge_source", ["radius", "bonds"])
@pytest.mark.parametrize("edge_features", [("distance",), ("ratio",), ("distance", "ratio")])
def test_edge_sources_features_and_onehot_atoms(edge_source, edge_features):
    mol = random_molecule(7, seed=3)
    model = PooledGNNConfig(
        16, 2, "nnconv", "mean", edge_source=edge_source, edge_features=edge_features,
        atom_embedding="onehot",
    ).build()  # fmt: skip
    enc = model.representation
    edges = enc.edges(mol.z, mol.pos)
    attr = enc.edge_attr(mol.z, mol.pos, edges)
    width = ("distance" in edge_features) * enc.num_rbf + ("ratio" in edge_features)
    assert attr.shape == (edges.size(1), width)
    assert model(mol.z, mol.pos).shape == (1, 1)


def test_bond_edges_are_the_covalent_bonds_of_methane():
    # C at the origin, four H at 1.09 Å: 4 C-H bonds, no H-H bond (1.78 Å apart).
    d = 1.09 / 3**0.5
    pos = torch.tensor([[0.0, 0, 0], [d, d, d], [d, -d, -d], [-d, d, -d], [-d, -d, d]])
    z = torch.tensor([6, 1, 1, 1, 1])
    enc = PooledGNN(8, 1, edge_source="bonds")
    edges = enc.edges(z, pos)
    assert edges.size(1) == 8
    assert sorted(edges[1].tolist()) == [0, 0, 0, 0, 1, 2, 3, 4]
    ratio = PooledGNN(8, 1, edge_features=("ratio",)).edge_attr(z, pos, edges)
    assert torch.allclose(ratio, torch.full((8, 1), 1.09 / (0.76 + 0.31)), atol=1e-3)


def test_bond_tolerance_defaults_are_the_covalent_bonds_constant():
    for fn in (PooledGNN, degree_histogram):
        assert inspect.signature(fn).parameters["bond_tolerance"].default is BOND_TOLERANCE, fn
    fields = {f.name: f.default for f in dataclasses.fields(PooledGNNConfig)}
    assert fields["bond_tolerance"] is BOND_TOLERANCE
    assert build_model("pooled").representation.bond_tolerance is BOND_TOLERANCE
    # 1.79 Å: the 1,3 carbons of a strained QM9 bicyclic, bonded at 1.2 (a five-bonded carbon)
    # but not at the default, in the pooled GNN's bond graph as in the CovalentBonds transform.
    cc = random_molecule(2, seed=0)
    cc.z, cc.pos = torch.tensor([6, 6]), torch.tensor([[0.0, 0, 0], [1.79, 0, 0]])
    default = PooledGNN(8, 1, edge_source="bonds")
    loose = PooledGNN(8, 1, edge_source="bonds", bond_tolerance=1.2)
    assert default.edges(cc.z, cc.pos).size(1) == 0 and loose.edges(cc.z, cc.pos).size(1) == 2
    assert CovalentBonds()(cc.clone()).edge_index.size(1) == 0
    assert degree_histogram([cc], edge_source="bonds").tolist() == [2]  # two atoms of degree 0


def test_config_fields_are_the_representations_arguments_with_its_defaults():
    """The signature is written twice (PooledGNN, PooledGNNConfig): they must not drift."""
    params = inspect.signature(PooledGNN).parameters
    fields = {f.name: f.default for f in dataclasses.fields(PooledGNNConfig)}
    assert set(fields) - {"pool", "out_channels", "prior", "derivative"} == set(params)
    for name, param in params.items():
        assert fields[name] == param.default, name
    head = inspect.signature(PooledHead).parameters
    assert (fields["pool"], fields["out_channels"]) == (
        head["pool"].default,
        head["out_channels"].default,
    )
    config = PooledGNNConfig(
        hidden_channels=16, num_layers=1, conv="gatv2", pool="attention", cutoff_upper=3.0,
        num_heads=2, dropout=0.2, out_channels=3,
    )  # fmt: skip
    model = config.build()
    rep, head_module = model.representation, model.head
    assert isinstance(rep, PooledGNN) and isinstance(head_module, PooledHead)
    assert (rep.conv, rep.num_heads, rep.cutoff_upper, rep.convs[0].heads) == ("gatv2", 2, 3.0, 2)
    assert rep.expansion.cutoff_upper == 3.0
    assert head_module.pooling.pool == "attention" and head_module.dropout.p == 0.2
    z, pos, batch = batch_of([random_molecule(n, seed=n) for n in (3, 5)])
    assert model(z, pos, batch).shape == (2, 3)


def test_prior_works_like_the_ets():
    config = PooledGNNConfig(hidden_channels=8, num_layers=1)
    assert config.prior == AUTO_PRIOR and config.build().prior is None  # resolved by training
    assert config.for_target("U0").prior == "atomref" and config.for_target("gap").prior is None
    assert PooledGNNConfig(8, 1, prior=None).build().prior is None
    fixed = PooledGNNConfig(8, 1, prior="atomref").build().prior
    learned = PooledGNNConfig(8, 1, prior="learnable_atomref", max_z=20).build().prior
    assert isinstance(fixed, Atomref) and not fixed.weight.requires_grad
    assert isinstance(learned, Atomref) and learned.weight.requires_grad
    assert fixed.weight.numel() == 100 and learned.weight.numel() == 20
    with pytest.raises(ValueError, match="valid priors: None, auto, atomref, learnable_atomref"):
        PooledGNNConfig(prior="gaussian")


def test_renamed_fields_name_their_new_names_and_old_checkpoints_still_load():
    with pytest.raises(ValueError, match="'heads' was renamed to 'num_heads'"):
        model_config("pooled", heads=2)
    with pytest.raises(ValueError, match="'cutoff' was renamed to 'cutoff_upper'"):
        model_config({"kind": "pooled", "cutoff": 4.0})
    old = {"kind": "pooled", "hidden_channels": 8, "heads": 2, "cutoff": 4.0, "prior": None}
    config = stored_model_config(old)
    assert isinstance(config, PooledGNNConfig) and MODEL_CONFIGS["pooled"] is PooledGNNConfig
    assert (config.num_heads, config.cutoff_upper, config.prior) == (2, 4.0, None)
    assert config.build().representation.cutoff_upper == 4.0


def test_unknown_names_and_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="valid convs: gine, nnconv, gatv2, pna"):
        PooledGNN(conv="gcn")
    with pytest.raises(ValueError, match="valid pools: sum, mean, max, attention, set2set"):
        PooledGNNConfig(pool="median")
    with pytest.raises(ValueError, match="valid pools"):
        GlobalPool("median", 8)
    with pytest.raises(ValueError, match="valid pools"):
        PooledHead(8, pool="median")
    with pytest.raises(ValueError, match="valid edge_sources: radius, bonds"):
        PooledGNN(edge_source="knn")
    with pytest.raises(ValueError, match="edge_features must be distinct names"):
        PooledGNN(edge_features=("angle",))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        PooledGNN(hidden_channels=10, conv="gatv2", num_heads=4)
    with pytest.raises(ValueError, match="unknown PooledGNNConfig field"):
        build_model("pooled", width=3)
    with pytest.raises(ValueError, match="valid convs"):
        model_config("pooled", conv="gcn")
    model = PooledGNNConfig(8, 1).build()
    mol = random_molecule(4, seed=0)
    with pytest.raises(ValueError, match="pos must have shape"):
        model(mol.z, mol.pos[:3])
    with pytest.raises(ValueError, match="NaN"):
        model(mol.z, torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match="atomic numbers must be in"):
        model(torch.tensor([0, 6, 1, 1]), mol.pos)
    with pytest.raises(ValueError, match="edge_index must have shape"):
        model(mol.z, mol.pos, edge_index=torch.zeros(3, 2, dtype=torch.long))
    onehot = PooledGNNConfig(8, 1, atom_embedding="onehot").build()
    with pytest.raises(ValueError, match="S not among the one-hot elements H, C, N, O, F"):
        onehot(torch.tensor([16, 1, 1, 1]), mol.pos)


@settings(max_examples=10, deadline=None)
@given(
    molecules(2, 12, dtype=torch.float64),
    st.sampled_from(list(CONVS)),
    st.sampled_from(list(POOLS)),
    st.sampled_from(["radius", "bonds"]),
)
def test_invariant_to_rotation_translation_permutation(mol, conv, pool, edges):
    torch.manual_seed(0)
    config = PooledGNNConfig(16, 2, conv, pool, edge_source=edges, edge_features=EDGE_FEATURES)
    model = config.build().double().eval()
    assert_invariant(lambda z, pos, b: model(z, pos, b), mol.z, mol.pos, rtol=1e-6, atol=1e-8)


@settings(max_examples=8, deadline=None)
@given(
    molecules(2, 10, dtype=torch.float64),
    molecules(2, 10, dtype=torch.float64),
    st.sampled_from(list(CONVS)),
    st.sampled_from(list(POOLS)),
)
def test_batching_invariance(a, b, conv, pool):
    torch.manual_seed(0)
    model = PooledGNNConfig(16, 2, conv, pool).build().double().eval()
    alone = torch.cat([model(m.z, m.pos) for m in (a, b)])
    assert torch.allclose(model(*batch_of([a, b])), alone, atol=1e-8)


def test_plugs_into_molecular_model_with_prior_and_standardization():
    model = PooledGNNConfig(hidden_channels=16, num_layers=1, prior="atomref").build()
    with torch.no_grad():
        model.prior.weight.normal_()
    model.set_standardization(2.0, 3.0)
    mol = random_molecule(4, seed=0)
    batch = torch.zeros(4, dtype=torch.long)
    x, vec = model.representation(mol.z, mol.pos, batch)
    assert vec is None and x.shape == (4, 16)
    raw = model.head.post_reduce(model.head.reduce(x, batch, 1))
    prior = model.prior(mol.z, batch, 1)
    assert prior.abs().sum() > 0
    assert torch.allclose(model(mol.z, mol.pos), raw * 3.0 + 2.0 + prior)


def test_forces_from_the_wrapper_are_minus_the_gradient():
    model = PooledGNNConfig(hidden_channels=16, num_layers=2, derivative=True).build().double()
    mol = random_molecule(5, seed=1, dtype=torch.float64)
    y, forces = model(mol.z, mol.pos)
    pos = mol.pos.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(mol.z, pos)[0].sum(), pos)
    assert y.shape == (1, 1) and forces.shape == (5, 3) and torch.allclose(forces, -grad)


def test_config_round_trips_through_json_and_rebuilds_the_same_model():
    mols = [random_molecule(n, seed=n) for n in (3, 6, 8)]
    cfg = PooledGNNConfig(hidden_channels=16, num_layers=2, conv="pna", pool="set2set")
    cfg = cfg.with_degree_histogram(mols)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["kind"] == "pooled" and data["deg"] == list(cfg.deg)
    assert model_config(data) == cfg
    torch.manual_seed(0)
    model = build_model(data)
    copy = build_model(model.config.to_dict())
    copy.load_state_dict(model.state_dict())
    z, pos, batch = batch_of(mols)
    assert torch.equal(model(z, pos, batch), copy(z, pos, batch))


def test_degree_histogram_counts_incoming_edges():
    # A 4-atom chain along x, 1.5 Å apart, with a 2 Å cutoff: end atoms have 1 neighbour,
    # middle atoms 2.
    pos = torch.tensor([[0.0, 0, 0], [1.5, 0, 0], [3.0, 0, 0], [4.5, 0, 0]])
    chain = random_molecule(4, seed=0)
    chain.pos = pos
    assert degree_histogram([chain], cutoff_upper=2.0).tolist() == [0, 2, 2]
    assert degree_histogram([chain, chain], cutoff_upper=2.0).tolist() == [0, 4, 4]
    with pytest.raises(ValueError, match="at least one molecule"):
        degree_histogram([])


@pytest.mark.slow
def test_pyg_layers_work_without_torch_scatter():
    """PyG 2.8 must fall back to torch ops for every conv and pool when torch-scatter is absent."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torch_scatter"] = None  # make `import torch_scatter` fail
        sys.modules["torch_sparse"] = None
        import torch, torch_geometric.typing as t
        assert not t.WITH_TORCH_SCATTER
        from molgnn.models import PooledGNNConfig
        from molgnn.nn import CONVS, POOLS
        from molgnn.testing import batch_of, random_molecule
        z, pos, batch = batch_of([random_molecule(n, seed=n) for n in (3, 6)])
        for conv in CONVS:
            for pool in POOLS:
                out = PooledGNNConfig(8, 1, conv, pool).build()(z, pos, batch)
                out.sum().backward()
                assert out.shape == (2, 1) and torch.isfinite(out).all(), (conv, pool)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_overfits_32_qm9_molecules(tmp_path, monkeypatch):
    if qm9pack_dir() is None:
        monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    data = QM9(str(tmp_path), target="gap", first=32, progress=False)
    mols = [data[i] for i in range(len(data))]
    assert len(mols) >= 30
    z, pos, batch = batch_of(mols)
    y = torch.cat([m.y for m in mols])  # [B, 1], eV
    torch.manual_seed(0)
    model = build_model("pooled", hidden_channels=64, num_layers=3)
    model.set_standardization(y.mean(0), y.std(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 400)
    edges = model.representation.edges(z, pos, batch)
    start = (model(z, pos, batch, edge_index=edges) - y).abs().mean().item()
    for _ in range(400):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(z, pos, batch, edge_index=edges), y)
        loss.backward()
        opt.step()
        schedule.step()
    mae = (model(z, pos, batch) - y).abs().mean().item()
    assert mae < 0.02 * y.std().item() < start, f"MAE {mae:.4f} eV (from {start:.4f}) not ~0"


@pytest.mark.parametrize("norm", ["layer", "batch", "none", None])
def test_norms_train_and_evaluate(norm):
    z, pos, batch = batch_of([random_molecule(n, seed=n) for n in (4, 6)])
    model = PooledGNNConfig(8, 2, norm=norm, dropout=0.1).build()
    assert model(z, pos, batch).shape == (2, 1)
    model.eval()
    assert torch.equal(model(z, pos, batch), model(z, pos, batch))
    assert PooledGNNConfig(norm=norm).norm == ("none" if norm is None else norm)
