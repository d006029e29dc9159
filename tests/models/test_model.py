"""MolecularModel: the order of head, standardisation and prior, forces, PyG batches."""

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from molgnn.models import MolecularModel, build_model
from molgnn.nn import Atomref, Scalar
from molgnn.testing import random_molecule
from molgnn.transforms import RadiusGraph


class SquaredDistanceToOrigin(nn.Module):
    """A toy representation: x_i = |r_i|^2 repeated over C channels, no vectors."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.seen_edge_index: Tensor | None = None

    def forward(self, z, pos, batch, edge_index=None, edge_weight=None, edge_vec=None):
        self.seen_edge_index = edge_index
        return (pos * pos).sum(-1, keepdim=True).expand(-1, self.channels), None


class FirstChannel(nn.Module):
    """A toy head: per-atom first channel, summed, plus 1 after the reduction."""

    def pre_reduce(self, x, vec, z, pos, batch):
        return x[:, :1]

    def reduce(self, h, batch, num_graphs):
        return torch.zeros(num_graphs, h.size(1), dtype=h.dtype).index_add_(0, batch, h)

    def post_reduce(self, y):
        return y + 1.0


def toy_inputs():
    z = torch.tensor([1, 6, 8, 1, 1])
    pos = torch.tensor(
        [[1.0, 0, 0], [0, 2, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.float64
    )
    batch = torch.tensor([0, 0, 0, 1, 1])
    return z, pos, batch


def test_head_then_standardisation_then_prior():
    reference = torch.zeros(10)
    reference[1], reference[6], reference[8] = -0.5, -37.8, -75.0
    model = MolecularModel(
        SquaredDistanceToOrigin(), FirstChannel(), Atomref(reference), mean=3.0, std=2.0
    ).double()
    z, pos, batch = toy_inputs()
    y = model(z, pos, batch)
    # molecule 0: sum |r|^2 = 1 + 4 + 1 = 6 -> post 7 -> 7 * 2 + 3 = 17 -> + (-0.5 - 37.8 - 75)
    # molecule 1: 2 + 2 = 4 -> 5 -> 13 -> + (-1.0)
    expected = torch.tensor([[17.0 - 113.3], [13.0 - 1.0]], dtype=torch.float64)
    assert y.shape == (2, 1)
    assert torch.allclose(y, expected, atol=1e-12)


def test_forces_are_minus_the_energy_gradient():
    model = MolecularModel(SquaredDistanceToOrigin(), FirstChannel(), std=2.0, derivative=True)
    z, pos, batch = toy_inputs()
    _, forces = model(z, pos, batch)
    assert forces.shape == (5, 3)
    # E = 2 * sum |r|^2 + const per molecule -> F = -4 r
    assert torch.allclose(forces, -4.0 * pos, atol=1e-12)
    assert not pos.requires_grad  # the caller's tensor is left alone


def test_single_molecule_without_batch_and_standardisation_setter():
    model = MolecularModel(SquaredDistanceToOrigin(), FirstChannel())
    z, pos, _ = toy_inputs()
    assert model(z, pos).shape == (1, 1)
    model.set_standardization(torch.tensor([10.0]), torch.tensor([0.5]))
    assert torch.allclose(model.mean, torch.tensor([10.0])) and "mean" in model.state_dict()
    # one molecule: sum |r|^2 = 10 -> post 11 -> 11 * 0.5 + 10
    assert torch.allclose(model(z, pos), torch.tensor([[15.5]], dtype=torch.float64))
    with pytest.raises(ValueError, match="std must be positive"):
        model.set_standardization(0.0, -1.0)


def test_bad_inputs_raise_value_errors():
    model = MolecularModel(SquaredDistanceToOrigin(), FirstChannel())
    z, pos, batch = toy_inputs()
    with pytest.raises(ValueError, match="1-D integer"):
        model(z.float(), pos)
    with pytest.raises(ValueError, match="pos must have shape"):
        model(z, pos[:3])
    with pytest.raises(ValueError, match="batch must have shape"):
        model(z, pos, batch[:2])
    bad = pos.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(z, bad)


def test_forward_data_uses_precomputed_edges_from_radius_graph():
    transform = RadiusGraph(cutoff=5.0)
    mols = [transform(random_molecule(n, seed=n, dtype=torch.float64)) for n in (4, 7)]
    representation = SquaredDistanceToOrigin()
    model = MolecularModel(representation, FirstChannel())
    data = Batch.from_data_list(mols)
    y = model.forward_data(data)
    assert y.shape == (2, 1)
    assert representation.seen_edge_index is not None
    assert torch.equal(representation.seen_edge_index, data.edge_index)
    assert torch.allclose(y, model(data.z, data.pos, data.batch))


def test_et_model_on_a_pyg_batch_matches_per_molecule_calls():
    model = build_model("et-small", hidden_channels=16, num_layers=1, num_heads=2, num_rbf=8)
    model = model.double().eval()
    mols = [RadiusGraph(5.0)(random_molecule(n, seed=n, dtype=torch.float64)) for n in (3, 6, 9)]
    batched = model.forward_data(Batch.from_data_list(mols))
    alone = torch.cat([model(m.z, m.pos) for m in mols])
    assert torch.allclose(batched, alone, atol=1e-10)


def test_scalar_head_and_repr():
    model = MolecularModel(SquaredDistanceToOrigin(4), Scalar(4), derivative=True)
    assert "derivative=True" in repr(model)
    model.reset_parameters()
    z, pos, batch = toy_inputs()
    y, forces = model(z, pos.float(), batch)
    assert y.shape == (2, 1) and forces.shape == (5, 3)
