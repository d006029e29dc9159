import pytest
import torch
from hypothesis import given, settings

from molgnn.models import PRESETS, EquivariantTransformer, build_model, model_config
from molgnn.testing import assert_equivariant, batch_of, molecules, random_molecule

TINY = dict(hidden_channels=16, num_layers=2, num_heads=4, num_rbf=8)


def tiny(**kw):
    torch.manual_seed(0)
    return build_model("et-small", **{**TINY, **kw}).double().eval()


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"distance_influence": "keys", "vector_cutoff": False},
        {"distance_influence": "values", "rbf_type": "gauss", "trainable_rbf": True},
        {"distance_influence": "none", "neighbor_embedding": False, "head": "scalar"},
        {"cutoff_lower": 0.5, "attn_activation": "tanh"},
    ],
)
def test_output_shapes(kw):
    model = tiny(**kw)
    z, pos, batch = batch_of([random_molecule(n, seed=n, dtype=torch.float64) for n in (3, 7, 12)])
    assert model(z, pos, batch).shape == (3, 1)
    rep = model.representation
    x, vec = rep(z, pos, batch)
    assert x.shape == (22, 16) and vec.shape == (22, 3, 16)


@settings(max_examples=8, deadline=None)
@given(molecules(2, 14, dtype=torch.float64))
def test_energy_invariant_forces_and_vectors_equivariant(mol):
    model = tiny(derivative=True)

    def fn(z, pos, batch):
        y, forces = model(z, pos, batch)
        x, vec = model.representation(z, pos, batch)
        return {"y": y, "forces": forces, "x": x, "vec": vec}

    kinds = {"y": "scalar", "forces": "atom_vector", "x": "atom_scalar", "vec": "atom_vector"}
    assert_equivariant(fn, mol.z, mol.pos, kinds=kinds)


@settings(max_examples=6, deadline=None)
@given(molecules(2, 10, dtype=torch.float64), molecules(2, 10, dtype=torch.float64))
def test_batching_invariance(a, b):
    model = tiny()
    alone = torch.cat([model(m.z, m.pos) for m in (a, b)])
    z, pos, batch = batch_of([a, b])
    assert torch.allclose(model(z, pos, batch), alone, atol=1e-10)


def test_precomputed_edges_give_the_same_result():
    from molgnn.nn import radius_graph

    model = tiny()
    mol = random_molecule(10, seed=4, dtype=torch.float64)
    ei = radius_graph(mol.pos, 5.0)  # RadiusGraph's default: no self loops
    assert torch.allclose(model(mol.z, mol.pos, edge_index=ei), model(mol.z, mol.pos), atol=1e-12)


def test_smooth_at_the_cutoff():
    model = tiny(vector_cutoff=True)
    z = torch.tensor([6, 8])
    energies = []
    for d in (4.999, 4.99999, 5.0, 5.00001, 5.001):
        pos = torch.tensor([[0.0, 0.0, 0.0], [d, 0.0, 0.0]], dtype=torch.float64)
        energies.append(model(z, pos).item())
    # Crossing the cutoff changes the energy continuously (no jump when the pair appears).
    assert abs(energies[1] - energies[3]) < 1e-6
    assert abs(energies[0] - energies[4]) < 1e-3


def test_gradients_finite_even_for_very_close_atoms():
    model = tiny(derivative=True).train()
    for gap in (1e-6, 1e-3, 0.5):
        pos = torch.tensor([[0.0, 0.0, 0.0], [gap, 0.0, 0.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
        y, forces = model(torch.tensor([1, 1, 6]), pos)
        y.sum().backward()
        assert torch.isfinite(forces).all()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()


def test_bad_input_is_refused_with_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match="NaN"):
        model(torch.tensor([1, 1]), torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]]))
    with pytest.raises(ValueError, match="empty molecule"):
        model(torch.zeros(0, dtype=torch.long), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="atomic numbers"):
        model(torch.tensor([1, 150]), torch.tensor([[0.0, 0, 0], [1.0, 0, 0]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"pos must have shape \[2, 3\]"):
        model(torch.tensor([1, 1]), torch.zeros(3, 3))


def test_factory_presets_and_config_roundtrip():
    assert PRESETS["et-qm9"].hidden_channels == 256 and PRESETS["et-qm9"].num_layers == 8
    assert PRESETS["et-small"].hidden_channels == 128 and PRESETS["et-small"].num_rbf == 32
    model = tiny(prior="atomref")
    again = build_model(model.config.to_dict()).double()
    again.load_state_dict(model.state_dict())
    mol = random_molecule(5, seed=5, dtype=torch.float64)
    assert torch.equal(again(mol.z, mol.pos), model(mol.z, mol.pos))
    with pytest.raises(
        ValueError, match=r"unknown model preset 'et-huge'; presets: .*et-qm9, et-small"
    ):
        build_model("et-huge")
    with pytest.raises(ValueError, match=r"unknown ETConfig field.*num_layer"):
        model_config("et-small", num_layer=3)
    with pytest.raises(ValueError, match="unknown head"):
        build_model("et-small", head="mlp")
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model({"kind": "schnet"})
    assert "EquivariantTransformer(hidden_channels=16" in repr(model)
    assert isinstance(model.representation, EquivariantTransformer)


def test_precomputed_edges_with_a_larger_cutoff_are_trimmed():
    from molgnn.nn import radius_graph

    model = tiny(vector_cutoff=False, cutoff_upper=3.0, distance_influence="keys")
    mol = random_molecule(12, seed=6, dtype=torch.float64)
    wide = radius_graph(mol.pos, 8.0, max_num_neighbors=64)
    assert (mol.pos[wide[0]] - mol.pos[wide[1]]).norm(dim=-1).max() > 3.0  # really wider
    assert torch.allclose(model(mol.z, mol.pos, edge_index=wide), model(mol.z, mol.pos), atol=1e-12)
