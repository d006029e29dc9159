import pytest
import torch
from hypothesis import given, settings
from torch_geometric.data import Data

from molgnn.testing import molecules
from molgnn.transforms import Distance, RadiusGraph


def line() -> Data:
    return Data(
        z=torch.tensor([6, 1, 8]), pos=torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]])
    )


def test_exact_lengths_and_vectors():
    data = Distance()(RadiusGraph(cutoff=2.5)(line()))  # edges (1,0), (0,1), (2,1), (1,2)
    assert data.edge_weight.tolist() == [1.0, 1.0, 2.0, 2.0]
    # neighbour minus centre
    assert data.edge_vec.tolist() == [[1, 0, 0], [-1, 0, 0], [2, 0, 0], [-2, 0, 0]]


def test_without_vectors_and_3d():
    data = Data(
        pos=torch.tensor([[0.0, 0, 0], [1.0, 2.0, 2.0]]), edge_index=torch.tensor([[1], [0]])
    )
    out = Distance(vectors=False)(data)
    assert out.edge_weight.tolist() == [3.0]
    assert "edge_vec" not in out
    assert repr(Distance(vectors=False)) == "Distance(vectors=False)"


def test_bad_input():
    with pytest.raises(ValueError, match="edge_index"):
        Distance()(line())
    with pytest.raises(ValueError, match="outside its 3 atoms"):
        Distance()(Data(pos=line().pos, edge_index=torch.tensor([[0], [3]])))
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        Distance()(Data(pos=line().pos, edge_index=torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="NaN"):
        Distance()(Data(pos=torch.full((2, 3), float("nan")), edge_index=torch.tensor([[0], [1]])))


@settings(max_examples=20, deadline=None)
@given(molecules(2, 15, dtype=torch.float64))
def test_matches_pairwise_distances(mol):
    out = Distance()(RadiusGraph(4.0)(mol))
    j, i = out.edge_index
    assert torch.allclose(out.edge_weight, torch.cdist(mol.pos, mol.pos)[j, i], atol=1e-12)
    assert torch.equal(out.edge_vec, mol.pos[j] - mol.pos[i])
