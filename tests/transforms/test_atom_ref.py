import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from molgnn.data.keys import HARTREE_TO_EV
from molgnn.testing import batch_of, molecules
from molgnn.transforms import AtomRef


def methane() -> Data:
    # QM9 molecule 1: U0 = -40.47893 Ha.
    y = torch.tensor([[-40.47893 * HARTREE_TO_EV, 5.0]], dtype=torch.float64)
    return Data(z=torch.tensor([6, 1, 1, 1, 1]), pos=torch.zeros(5, 3), y=y)


def test_qm9_u0_exact():
    # QM9 atom references: C -37.846772 Ha, H -0.500273 Ha.
    out = AtomRef(target="U0", columns=[0])(methane())
    atomization = (-40.47893 - (-37.846772 - 4 * 0.500273)) * HARTREE_TO_EV
    assert out.y[0, 0].item() == pytest.approx(atomization, abs=1e-9)
    assert out.y[0, 1].item() == 5.0  # column 1 untouched
    assert repr(AtomRef(columns=[0])) == "AtomRef(target='U0', columns=[0])"


def test_custom_table_and_batched_restore():
    ref = AtomRef({1: 1.0, 6: 10.0}, columns=[1])
    y = torch.zeros(2, 2, dtype=torch.float64)
    restored = ref.restore(y, torch.tensor([6, 1, 1]), torch.tensor([0, 0, 1]))
    assert restored.tolist() == [[0.0, 11.0], [0.0, 1.0]]
    # unsorted batch, float32 predictions
    restored = ref.restore(torch.zeros(2, 2), torch.tensor([1, 6, 1]), torch.tensor([1, 0, 1]))
    assert restored.tolist() == [[0.0, 10.0], [0.0, 2.0]] and restored.dtype == torch.float32
    assert ref.offsets(torch.tensor([6, 1, 1])).tolist() == [12.0]
    table = AtomRef([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 10.0])  # indexed by atomic number
    assert table.offsets(torch.tensor([6, 1])).tolist() == [11.0]
    assert repr(ref) == "AtomRef(reference=[H, C], columns=[1])"


def test_missing_elements_are_refused():
    with pytest.raises(ValueError, match=r"no reference value for element\(s\) C"):
        AtomRef({1: 1.0}).offsets(torch.tensor([6, 1]))
    with pytest.raises(ValueError, match=r"no reference value for element\(s\) Li"):
        AtomRef({1: 1.0, 6: 2.0}).offsets(torch.tensor([3]))  # inside the table, not given
    mol = Data(z=torch.tensor([16, 1]), y=torch.zeros(1, 1), name="gdb_5")
    with pytest.raises(ValueError, match=r"gdb_5.*S"):
        AtomRef()(mol)  # QM9 has no sulphur reference
    with pytest.raises(ValueError, match="has no atom references"):
        AtomRef(target="gap")
    with pytest.raises(ValueError, match="unknown QM9 target"):
        AtomRef(target="energy")


def test_shape_errors():
    ref = AtomRef({1: 1.0})
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        ref(Data(z=torch.tensor([1]), y=torch.zeros(3)))
    with pytest.raises(ValueError, match="out of range"):
        AtomRef({1: 1.0}, columns=[2])(Data(z=torch.tensor([1]), y=torch.zeros(1, 2)))
    with pytest.raises(ValueError, match="molecule 2 but there are 2 rows"):
        ref.restore(torch.zeros(2, 1), torch.tensor([1, 1]), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="3 rows but there are 1 molecules"):
        ref.inverse(Data(z=torch.tensor([1]), y=torch.zeros(3, 1)))
    with pytest.raises(ValueError, match=r"needs data\.y"):
        ref(Data(z=torch.tensor([1])))


@settings(max_examples=25, deadline=None)
@given(
    molecules(1, 20, dtype=torch.float64),
    st.lists(st.floats(-1e4, 1e4), min_size=2, max_size=2),
    st.sampled_from(["U0", "U", "H", "G", "cv", "zpve"]),
)
def test_atomref_then_inverse_is_identity(mol, y, target):
    mol.y = torch.tensor([y], dtype=torch.float64)
    ref = AtomRef(target=target)
    original = mol.y.clone()
    shifted = ref(mol)
    expected = ref.offsets(mol.z).item()
    assert torch.allclose(original - shifted.y, torch.full_like(original, expected), atol=1e-9)
    assert torch.allclose(ref.inverse(shifted).y, original, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.lists(molecules(1, 8, dtype=torch.float64), min_size=1, max_size=5))
def test_restore_of_batch_equals_per_molecule_inverse(mols):
    ref = AtomRef(target="U0")
    z, _, batch = batch_of(mols)
    y = torch.arange(len(mols), dtype=torch.float64)[:, None]
    restored = ref.restore(y, z, batch)
    for k, mol in enumerate(mols):
        single = ref.inverse(Data(z=mol.z, y=y[k : k + 1].clone()))
        assert torch.allclose(restored[k], single.y[0], atol=1e-9)
