import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from molgnn.data.keys import ATOMIC_MASSES, ELEMENT_SYMBOLS, atomic_mass_table
from molgnn.testing import molecules
from molgnn.transforms import COVALENT_RADII, Center


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


def test_the_mass_table_has_every_standard_atomic_weight_and_nothing_made_up():
    """IUPAC gives a standard atomic weight to H-Bi except Tc and Pm, and to Th, Pa and U."""
    have_weight = set(range(1, 84)) - {43, 61} | {90, 91, 92}
    assert set(ATOMIC_MASSES) == have_weight
    table = atomic_mass_table()
    assert len(table) == len(ELEMENT_SYMBOLS) and table[0] == 0.0
    assert [z for z, m in enumerate(table) if m == 0.0] == sorted(
        set(range(len(ELEMENT_SYMBOLS))) - have_weight
    )
    ase_data = pytest.importorskip("ase.data")  # an independent copy of the IUPAC table
    for z, mass in ATOMIC_MASSES.items():
        assert mass == pytest.approx(float(ase_data.atomic_masses[z]), rel=1e-4), z


def test_mass_mode_refuses_every_element_without_a_standard_atomic_weight():
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    for z, symbol in ((43, "Tc"), (61, "Pm"), (86, "Rn"), (93, "Np")):
        data = Data(z=torch.tensor([1, z]), pos=pos.clone(), name="mol3")
        with pytest.raises(ValueError, match=rf"mol3.*no atomic mass for element\(s\) {symbol}:"):
            Center(mode="mass")(data)
    iodide = Data(z=torch.tensor([1, 53]), pos=pos.clone())  # a heavy element with a weight
    com = 126.90 / (1.008 + 126.90)
    assert torch.allclose(Center(mode="mass")(iodide).pos[:, 0], torch.tensor([-com, 1 - com]))


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
