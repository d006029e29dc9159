import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from molgnn.testing import molecules
from molgnn.transforms import ATOMIC_MASSES, COVALENT_RADII, Center


def test_centroid_exact():
    line = Data(pos=torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]]))
    out = Center()(line)
    assert torch.allclose(out.pos[:, 0], torch.tensor([-4 / 3, -1 / 3, 5 / 3]))
    assert out.pos[:, 1:].abs().max() == 0


def test_centre_of_mass_exact():
    two = Data(z=torch.tensor([1, 8]), pos=torch.tensor([[0.0, 0, 0], [1.0, 0, 0]]))
    com = 15.999 / (1.008 + 15.999)  # from the H atom along x
    out = Center(mode="mass")(two)
    assert torch.allclose(out.pos[:, 0], torch.tensor([-com, 1 - com]))
    assert repr(Center(mode="mass")) == "Center(mode='mass')"


def test_errors():
    with pytest.raises(ValueError, match="centring mode"):
        Center(mode="median")
    with pytest.raises(ValueError, match=r"no atomic mass for element.*Og"):
        Center(mode="mass")(Data(z=torch.tensor([118]), pos=torch.zeros(1, 3)))
    with pytest.raises(ValueError, match=r"needs data\.z"):
        Center(mode="mass")(Data(pos=torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="2 atomic numbers but 1 positions"):
        Center(mode="mass")(Data(z=torch.tensor([1, 1]), pos=torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="no atoms"):
        Center()(Data(pos=torch.zeros(0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        Center()(Data(pos=torch.tensor([[float("nan"), 0.0, 0.0]])))


def test_masses_cover_the_covalent_radii_elements():
    assert set(COVALENT_RADII) <= set(ATOMIC_MASSES)


@settings(max_examples=25, deadline=None)
@given(
    molecules(1, 15, dtype=torch.float64),
    st.sampled_from(["centroid", "mass"]),
    st.lists(st.floats(-50, 50), min_size=3, max_size=3),
)
def test_centre_is_origin_and_translation_invariant(mol, mode, shift):
    out = Center(mode=mode)(mol.clone())
    moved = mol.clone()
    moved.pos = moved.pos + torch.tensor(shift, dtype=torch.float64)
    assert torch.allclose(Center(mode=mode)(moved).pos, out.pos, atol=1e-9)
    weights = torch.ones(mol.num_nodes, dtype=torch.float64)
    if mode == "mass":
        weights = torch.tensor([ATOMIC_MASSES[z] for z in mol.z.tolist()], dtype=torch.float64)
    assert torch.allclose(weights @ out.pos, torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(torch.cdist(out.pos, out.pos), torch.cdist(mol.pos, mol.pos), atol=1e-9)
