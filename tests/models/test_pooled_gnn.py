import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from molgnn.data import QM9, qm9pack_dir
from molgnn.models import CONVS, PooledGNN, PooledGNNConfig, build_model
from molgnn.nn import POOLS
from molgnn.testing import assert_invariant, batch_of, molecules, random_molecule
from tests.conftest import FIXTURE_QM9


@pytest.mark.parametrize(("conv", "pool"), list(itertools.product(CONVS, POOLS)))
def test_every_conv_and_pool_gives_one_value_per_molecule(conv, pool):
    torch.manual_seed(0)
    z, pos, batch = batch_of([random_molecule(n, seed=n) for n in (2, 5, 9)])
    model = PooledGNN(hidden_channels=16, num_layers=2, conv=conv, pool=pool, out_channels=2)
    out = model(z, pos, batch)
    assert out.shape == (3, 2) and torch.isfinite(out).all()


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid convs: gine, nnconv, gatv2, pna"):
        PooledGNN(conv="gcn")
    with pytest.raises(ValueError, match="valid pools: sum, mean, max, attention, set2set"):
        PooledGNN(pool="median")
    with pytest.raises(ValueError, match="unknown PooledGNNConfig field"):
        build_model("pooled", width=3)


@settings(max_examples=10, deadline=None)
@given(
    molecules(2, 12, dtype=torch.float64),
    st.sampled_from(list(CONVS)),
    st.sampled_from(list(POOLS)),
    st.sampled_from(["radius", "bonds"]),
)
def test_invariant_to_rotation_translation_permutation(mol, conv, pool, edges):
    torch.manual_seed(0)
    model = PooledGNN(16, 2, conv, pool, edge_source=edges).double().eval()
    assert_invariant(lambda z, pos, b: model(z, pos, b), mol.z, mol.pos, rtol=1e-6, atol=1e-8)


@settings(max_examples=6, deadline=None)
@given(
    molecules(2, 10, dtype=torch.float64),
    molecules(2, 10, dtype=torch.float64),
    st.sampled_from(list(POOLS)),
)
def test_batching_invariance(a, b, pool):
    torch.manual_seed(0)
    model = PooledGNN(16, 2, "gine", pool).double().eval()
    alone = torch.cat([model(m.z, m.pos) for m in (a, b)])
    assert torch.allclose(model(*batch_of([a, b])), alone, atol=1e-8)


def test_plugs_into_molecular_model_with_prior_and_standardization():
    model = PooledGNNConfig(hidden_channels=16, num_layers=1, prior="atomref").build()
    model.set_standardization(2.0, 3.0)
    mol = random_molecule(4, seed=0)
    raw = model.head.post_reduce(
        model.head.reduce(
            model.representation(mol.z, mol.pos, torch.zeros(4, dtype=torch.long))[0],
            torch.zeros(4, dtype=torch.long),
            1,
        )
    )
    assert torch.allclose(model(mol.z, mol.pos), raw * 3.0 + 2.0)
    assert build_model(model.config.to_dict()).config == model.config


def test_overfits_32_qm9_molecules(tmp_path, monkeypatch):
    if qm9pack_dir() is None:
        monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    data = QM9(str(tmp_path), target="gap", limit=32, progress=False)
    mols = [data[i] for i in range(len(data))]
    z, pos, batch = batch_of(mols)
    y = torch.cat([m.y for m in mols])
    torch.manual_seed(0)
    model = build_model("pooled", hidden_channels=64, num_layers=3)
    model.set_standardization(y.mean(0), y.std(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 400)
    edges = model.representation.edges(z, pos, batch)
    for _ in range(400):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(z, pos, batch, edge_index=edges), y)
        loss.backward()
        opt.step()
        schedule.step()
    mae = (model(z, pos, batch) - y).abs().mean().item()
    assert mae < 0.02 * y.std().item(), f"MAE {mae:.4f} eV did not approach zero"
