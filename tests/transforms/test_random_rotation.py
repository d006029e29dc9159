import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from molgnn.testing import molecules
from molgnn.transforms import Distance, RadiusGraph, RandomRotation, random_orthogonal_matrix

EYE = torch.eye(3, dtype=torch.float64)


def test_matrices_are_rotations():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        r = random_orthogonal_matrix(generator=gen)
        assert r.dtype == torch.float64
        assert torch.allclose(r @ r.T, EYE, atol=1e-12)
        assert torch.det(r).item() == pytest.approx(1.0, abs=1e-12)


def test_reflections_happen_about_half_the_time():
    gen = torch.Generator().manual_seed(0)
    dets = torch.tensor(
        [torch.det(random_orthogonal_matrix(True, gen)).item() for _ in range(400)],
        dtype=torch.float64,
    )
    assert torch.allclose(dets.abs(), torch.ones(400, dtype=torch.float64))
    # Binomial(400, 1/2): std 10, so 150..250 fails with probability ~1e-6 for a fair coin.
    assert 150 < int((dets < 0).sum()) < 250


def test_uniform_on_so3_loosely():
    gen = torch.Generator().manual_seed(1)
    r = torch.stack([random_orthogonal_matrix(generator=gen) for _ in range(3000)])  # [M, 3, 3]
    # Haar measure: every entry has mean 0 and variance 1/3 (std of each mean ~0.011), and
    # the rotation angle has E[trace] = 0 (a biased sampler such as Euler angles drawn
    # uniformly fails the trace test).
    assert r.mean(0).abs().max() < 0.05
    assert torch.allclose((r**2).mean(0), torch.full((3, 3), 1 / 3, dtype=torch.float64), atol=0.03)
    trace = r.diagonal(dim1=1, dim2=2).sum(-1)
    assert abs(trace.mean().item()) < 0.06
    assert trace.var().item() == pytest.approx(1.0, abs=0.1)  # Var[trace] = 1 under Haar


def test_seed_and_generator_reproduce_the_matrix():
    data = Data(pos=torch.eye(3), edge_vec=torch.ones(2, 3), forces=torch.ones(3, 3))
    a, b = RandomRotation(seed=3), RandomRotation(seed=3)
    out_a, out_b = a(data.clone()), b(data.clone())
    assert torch.equal(out_a.pos, out_b.pos)
    expected = random_orthogonal_matrix(generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.last_matrix, expected)
    c = RandomRotation(generator=torch.Generator().manual_seed(3))
    c(data.clone())
    assert torch.equal(c.last_matrix, expected)
    # pos, edge_vec and forces all rotate as v @ R.T
    r = expected.float()
    assert torch.allclose(out_a.pos, torch.eye(3) @ r.T)
    assert torch.allclose(out_a.edge_vec, torch.ones(2, 3) @ r.T)
    assert torch.allclose(out_a.forces, torch.ones(3, 3) @ r.T)
    assert out_a.pos.dtype == torch.float32
    assert repr(a) == "RandomRotation(reflect=False, seed=3)"


def test_errors():
    with pytest.raises(ValueError, match=r"needs data\.pos"):
        RandomRotation()(Data(z=torch.tensor([1])))
    with pytest.raises(ValueError, match=r"edge_vec .* must be \[\*, 3\]"):
        RandomRotation()(Data(pos=torch.zeros(2, 3), edge_vec=torch.zeros(2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        RandomRotation()(Data(pos=torch.tensor([[0.0, float("inf"), 0.0]])))


@settings(max_examples=25, deadline=None)
@given(molecules(2, 15, dtype=torch.float64), st.booleans(), st.integers(0, 10_000))
def test_rotation_keeps_all_distances(mol, reflect, seed):
    before = torch.cdist(mol.pos, mol.pos)
    mol = Distance()(RadiusGraph(5.0)(mol))
    edge_vec, edge_weight = mol.edge_vec.clone(), mol.edge_weight.clone()
    t = RandomRotation(reflect=reflect, seed=seed)
    out = t(mol)
    assert torch.allclose(torch.cdist(out.pos, out.pos), before, atol=1e-10)
    assert torch.allclose(out.edge_vec, edge_vec @ t.last_matrix.T, atol=1e-12)
    assert torch.allclose(out.edge_vec.norm(dim=-1), edge_weight, atol=1e-12)
    assert torch.equal(out.edge_weight, edge_weight)  # scalars are left alone
