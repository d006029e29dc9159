import pytest
import torch
from torch_geometric.data import Data

from molgnn.transforms import OneHotAtoms


def water() -> Data:
    return Data(z=torch.tensor([8, 1, 1]), pos=torch.zeros(3, 3))


def test_exact_default_and_custom_elements():
    data = OneHotAtoms()(water())
    assert data.x.tolist() == [[0, 0, 0, 1, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert data.x.dtype == torch.get_default_dtype()
    data = OneHotAtoms(elements=(8, 1))(water())
    assert data.x.tolist() == [[1, 0], [0, 1], [0, 1]]
    assert repr(OneHotAtoms()) == "OneHotAtoms(elements=[H, C, N, O, F], cat=False)"


def test_cat_appends_to_existing_features():
    data = water()
    data.x = torch.tensor([[0.5], [1.5], [2.5]])
    out = OneHotAtoms(elements=(1, 8), cat=True)(data)
    assert out.x.tolist() == [[0.5, 0, 1], [1.5, 1, 0], [2.5, 1, 0]]
    data.x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="2 rows but there are 3 atoms"):
        OneHotAtoms(cat=True)(data)


def test_unknown_element_names_element_and_molecule():
    with pytest.raises(
        ValueError, match=r"molecule 'gdb_9' contains element\(s\) S.*H, C, N, O, F"
    ):
        OneHotAtoms()(Data(z=torch.tensor([1, 16]), name="gdb_9"))
    with pytest.raises(ValueError, match="invalid atomic numbers"):
        OneHotAtoms()(Data(z=torch.tensor([-1, 1])))
    with pytest.raises(ValueError, match="integer"):
        OneHotAtoms()(Data(z=torch.tensor([1.0])))
    with pytest.raises(ValueError, match=r"needs data\.z"):
        OneHotAtoms()(Data(pos=torch.zeros(1, 3)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="duplicate"):
        OneHotAtoms(elements=(1, 1))
    with pytest.raises(ValueError, match="at least one"):
        OneHotAtoms(elements=())
    with pytest.raises(ValueError, match="atomic numbers"):
        OneHotAtoms(elements=(0, 1))
