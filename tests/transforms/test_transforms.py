import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from molgnn.data.keys import HARTREE_TO_EV
from molgnn.testing import molecules
from molgnn.transforms import (
    AtomRef,
    Center,
    CovalentBonds,
    Distance,
    OneHotAtoms,
    RadiusGraph,
    RandomRotation,
    Standardize,
    covalent_bonds,
    random_orthogonal_matrix,
)


def water() -> Data:
    # O at the origin, two H at 0.96 Å, one H-O-H angle of 104.5 degrees.
    a = math.radians(104.5)
    pos = torch.tensor(
        [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [0.96 * math.cos(a), 0.96 * math.sin(a), 0.0]],
        dtype=torch.float64,
    )
    return Data(z=torch.tensor([8, 1, 1]), pos=pos, y=torch.tensor([[1.0, 2.0]]))


def line() -> Data:
    # Three atoms on the x axis at 0, 1 and 3 Å.
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]])
    return Data(z=torch.tensor([6, 1, 8]), pos=pos)


def test_radius_graph_exact_edges():
    data = RadiusGraph(cutoff=2.5)(line())
    # centre 0: neighbour 1 (1 Å); centre 1: 0 (1 Å), 2 (2 Å); centre 2: 1 (2 Å); 0-2 is 3 Å.
    assert data.edge_index.tolist() == [[1, 0, 2, 1], [0, 1, 1, 2]]
    data = RadiusGraph(cutoff=2.5, max_num_neighbors=1)(line())
    assert data.edge_index.tolist() == [[1, 0, 1], [0, 1, 2]]  # centre 1 keeps the nearer atom 0
    assert "cutoff=2.5" in repr(RadiusGraph(cutoff=2.5))


def test_distance_exact():
    data = Distance()(RadiusGraph(cutoff=2.5)(line()))
    assert data.edge_weight.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert data.edge_vec.tolist() == [[1, 0, 0], [-1, 0, 0], [2, 0, 0], [-2, 0, 0]]
    with pytest.raises(ValueError, match="edge_index"):
        Distance()(line())


def test_covalent_bonds_water():
    data = CovalentBonds()(water())
    # O-H bonds only (0.96 Å < 1.2 * (0.66 + 0.31)); H...H is 1.52 Å > 1.2 * 0.62.
    assert sorted(map(tuple, data.edge_index.T.tolist())) == [(0, 1), (0, 2), (1, 0), (2, 0)]
    assert torch.allclose(data.edge_attr, torch.full((4, 1), 0.96, dtype=torch.float64))


def test_covalent_bonds_batched_and_unknown_element():
    w = water()
    pos = torch.cat([w.pos, w.pos + 10])
    z = torch.cat([w.z, w.z])
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    edges = covalent_bonds(z, pos, batch)
    assert edges.size(1) == 8
    assert (batch[edges[0]] == batch[edges[1]]).all()
    with pytest.raises(ValueError, match="Xe"):
        covalent_bonds(torch.tensor([54, 1]), torch.tensor([[0.0, 0, 0], [1.0, 0, 0]]))


def test_one_hot_atoms():
    data = OneHotAtoms()(water())
    assert data.x.tolist() == [[0, 0, 0, 1, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]]
    data = OneHotAtoms(elements=(8, 1))(water())
    assert data.x.tolist() == [[1, 0], [0, 1], [0, 1]]
    with pytest.raises(ValueError, match=r"S.*does not encode"):
        OneHotAtoms()(Data(z=torch.tensor([16]), pos=torch.zeros(1, 3)))
    assert "H, C, N, O, F" in repr(OneHotAtoms())


def test_center_exact():
    data = Center()(line())
    assert torch.allclose(data.pos[:, 0], torch.tensor([-4 / 3, -1 / 3, 5 / 3]))
    two = Data(z=torch.tensor([1, 8]), pos=torch.tensor([[0.0, 0, 0], [1.0, 0, 0]]))
    com = Center(mode="mass")(two).pos[:, 0]
    expected_origin = 15.999 / (1.008 + 15.999)
    assert torch.allclose(com, torch.tensor([-expected_origin, 1 - expected_origin]))
    with pytest.raises(ValueError, match="centring mode"):
        Center(mode="median")


def test_random_rotation_matrix_is_rotation():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        r = random_orthogonal_matrix(generator=gen)
        assert torch.allclose(r @ r.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
        assert torch.det(r).item() == pytest.approx(1.0)
    dets = {round(torch.det(random_orthogonal_matrix(True, gen)).item()) for _ in range(40)}
    assert dets == {-1, 1}


def test_random_rotation_is_uniform_enough():
    gen = torch.Generator().manual_seed(1)
    e = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    rotated = torch.stack([random_orthogonal_matrix(generator=gen) @ e for _ in range(2000)])
    # Uniform on the sphere: mean ~0 (std of each mean ~ 0.013), second moment 1/3 per axis.
    assert rotated.mean(0).abs().max() < 0.06
    assert torch.allclose(
        (rotated**2).mean(0), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.04
    )


@settings(max_examples=25, deadline=None)
@given(molecules(2, 15, dtype=torch.float64), st.booleans(), st.integers(0, 1000))
def test_rotation_keeps_all_distances(mol, reflect, seed):
    before = torch.cdist(mol.pos, mol.pos)
    mol = Distance()(RadiusGraph(5.0)(mol))
    edge_vec = mol.edge_vec.clone()
    t = RandomRotation(reflect=reflect, seed=seed)
    out = t(mol)
    assert torch.allclose(torch.cdist(out.pos, out.pos), before, atol=1e-10)
    assert torch.allclose(out.edge_vec, edge_vec @ t.last_matrix.T, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    molecules(1, 20, dtype=torch.float64), st.lists(st.floats(-100, 100), min_size=2, max_size=2)
)
def test_atomref_then_inverse_is_identity(mol, y):
    mol.y = torch.tensor([y], dtype=torch.float64)
    ref = AtomRef(target="U0")
    original = mol.y.clone()
    out = ref.inverse(ref(mol))
    assert torch.allclose(out.y, original, atol=1e-9)


def test_atomref_exact_methane():
    # QM9 molecule 1: U0 = -40.47893 Ha; refs C -37.846772, H -0.500273 Ha.
    methane = Data(z=torch.tensor([6, 1, 1, 1, 1]), pos=torch.zeros(5, 3))
    methane.y = torch.tensor([[-40.47893 * HARTREE_TO_EV]], dtype=torch.float64)
    out = AtomRef(target="U0")(methane)
    atomization = (-40.47893 - (-37.846772 - 4 * 0.500273)) * HARTREE_TO_EV
    assert out.y.item() == pytest.approx(atomization, abs=1e-9)
    ref = AtomRef({1: 1.0, 6: 10.0}, columns=[1])
    y = torch.zeros(2, 2, dtype=torch.float64)
    restored = ref.restore(y, torch.tensor([6, 1, 1]), torch.tensor([0, 0, 1]))
    assert restored.tolist() == [[0.0, 11.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="element"):
        AtomRef({1: 1.0}).offsets(torch.tensor([6]))


def test_standardize_fit_and_inverse():
    y = torch.tensor([[1.0, 10.0], [3.0, 30.0], [100.0, -5.0]])
    st_ = Standardize.fit(y, indices=[0, 1])  # training rows only
    assert st_.mean.tolist() == [2.0, 20.0]
    assert st_.std.tolist() == pytest.approx([math.sqrt(2), math.sqrt(200)])
    z = st_.transform(y[:2])
    assert torch.allclose(z, torch.tensor([[-1, -1], [1, 1]]) / math.sqrt(2))
    assert torch.allclose(st_.inverse(z), y[:2])
    again = Standardize.from_dict(st_.to_dict())
    assert torch.equal(again.mean, st_.mean) and torch.equal(again.std, st_.std)
    data = st_(Data(y=torch.tensor([[2.0, 20.0]])))
    assert data.y.tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="positive"):
        Standardize.fit(torch.ones(4, 1))
    with pytest.raises(ValueError, match="2 target"):
        st_.transform(torch.zeros(3, 1))


def test_standardize_fit_on_dataset_items():
    items = [Data(y=torch.tensor([[float(v)]])) for v in (1, 2, 3, 4)]
    st_ = Standardize.fit(items, indices=[0, 2])
    assert st_.mean.tolist() == [2.0]


def test_nan_coordinates_are_refused():
    bad = Data(z=torch.tensor([1, 1]), pos=torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]]))
    for t in (RadiusGraph(), CovalentBonds(), Center()):
        with pytest.raises(ValueError, match="NaN"):
            t(bad.clone())
