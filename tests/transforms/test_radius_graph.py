import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from molgnn.nn import radius_graph
from molgnn.testing import molecules
from molgnn.transforms import RadiusGraph


def line() -> Data:
    # Three atoms on the x axis at 0, 1 and 3 Å.
    return Data(
        z=torch.tensor([6, 1, 8]), pos=torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]])
    )


def test_exact_edges():
    data = RadiusGraph(cutoff=2.5)(line())
    # centre 0: neighbour 1 (1 Å); centre 1: 0 (1 Å), 2 (2 Å); centre 2: 1 (2 Å); 0-2 is 3 Å.
    assert data.edge_index.tolist() == [[1, 0, 2, 1], [0, 1, 1, 2]]
    assert data.edge_index.dtype == torch.long


def test_cutoff_is_strict_and_loops():
    data = RadiusGraph(cutoff=2.0)(line())  # the 2 Å pair is not closer than 2 Å
    assert data.edge_index.tolist() == [[1, 0], [0, 1]]
    data = RadiusGraph(cutoff=1.5, loop=True)(line())
    assert data.edge_index.tolist() == [[0, 1, 0, 1, 2], [0, 0, 1, 1, 2]]


def test_max_num_neighbors_keeps_the_nearest():
    data = RadiusGraph(cutoff=2.5, max_num_neighbors=1)(line())
    assert data.edge_index.tolist() == [[1, 0, 1], [0, 1, 2]]  # centre 1 keeps atom 0 (1 Å)


def test_repr_and_bad_arguments():
    assert (
        repr(RadiusGraph(cutoff=2.5)) == "RadiusGraph(cutoff=2.5, max_num_neighbors=32, loop=False)"
    )
    with pytest.raises(ValueError, match="cutoff"):
        RadiusGraph(cutoff=0.0)
    with pytest.raises(ValueError, match="max_num_neighbors"):
        RadiusGraph(max_num_neighbors=0)


def test_bad_molecules_are_named():
    bad = Data(pos=torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]]), name="gdb_7")
    with pytest.raises(ValueError, match=r"gdb_7.*NaN.*atoms \[1\]"):
        RadiusGraph()(bad)
    with pytest.raises(ValueError, match=r"needs data\.pos"):
        RadiusGraph()(Data(z=torch.tensor([1])))
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        RadiusGraph()(Data(pos=torch.zeros(3, 2)))


@settings(max_examples=20, deadline=None)
@given(molecules(1, 20, dtype=torch.float64), st.floats(1.0, 6.0))
def test_transform_matches_functional(mol, cutoff):
    out = RadiusGraph(cutoff=cutoff)(mol.clone())
    assert torch.equal(out.edge_index, radius_graph(mol.pos, cutoff))
    # every edge is shorter than the cutoff and no pair closer than the cutoff is missing
    dist = torch.cdist(mol.pos, mol.pos)
    close = (dist < cutoff) & ~torch.eye(mol.num_nodes, dtype=torch.bool)
    assert out.edge_index.size(1) == int(close.sum())  # at most 19 neighbours: no truncation
    j, i = out.edge_index
    assert bool(close[i, j].all())
