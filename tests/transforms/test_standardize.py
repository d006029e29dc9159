import math

import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset

from molgnn.transforms import Standardize


class Toy(InMemoryDataset):
    def __init__(self, values, transform=None):
        super().__init__(None, transform)
        data = [Data(y=torch.tensor([v])) for v in values]
        self.data, self.slices = self.collate(data)


def test_fit_on_training_rows_exact():
    y = torch.tensor([[1.0, 10.0], [3.0, 30.0], [100.0, -5.0]])
    st_ = Standardize.fit(y, indices=[0, 1])  # training rows only
    assert st_.mean.tolist() == [2.0, 20.0]
    assert st_.std.tolist() == pytest.approx([math.sqrt(2), math.sqrt(200)])
    z = st_.transform(y[:2])
    assert torch.allclose(z, torch.tensor([[-1, -1], [1, 1]]) / math.sqrt(2))
    assert torch.allclose(st_.inverse(z), y[:2])
    data = st_(Data(y=torch.tensor([[2.0, 20.0]])))
    assert data.y.tolist() == [[0.0, 0.0]]
    assert repr(st_) == "Standardize(mean=[2, 20], std=[1.414, 14.14])"


def test_checkpoint_round_trip():
    st_ = Standardize([1.0, -2.0], [0.5, 3.0])
    again = Standardize.from_dict(st_.to_dict())
    assert torch.equal(again.mean, st_.mean) and torch.equal(again.std, st_.std)
    assert Standardize.from_dict(st_.state_dict()).mean.tolist() == [1.0, -2.0]
    with pytest.raises(ValueError, match="lacks 'std'"):
        Standardize.from_dict({"mean": [0.0]})


def test_fit_on_datasets():
    items = [Data(y=torch.tensor([[float(v)]])) for v in (1, 2, 3, 4)]
    assert Standardize.fit(items, indices=[0, 2]).mean.tolist() == [2.0]
    toy = Toy([[1.0], [2.0], [3.0], [7.0]])
    assert Standardize.fit(toy, indices=[1, 3]).mean.tolist() == [4.5]  # from the storage
    assert Standardize.fit(toy[1:], indices=[0, 2]).mean.tolist() == [4.5]  # an index view
    # with a transform, items are read through it
    shifted = Toy([[1.0], [2.0], [3.0], [7.0]], transform=lambda d: Data(y=d.y + 100))
    assert Standardize.fit(shifted, indices=[1, 3]).mean.tolist() == [104.5]


def test_errors():
    with pytest.raises(ValueError, match=r"column\(s\) \[0\].*constant"):
        Standardize.fit(torch.ones(4, 1))
    with pytest.raises(ValueError, match="at least 2"):
        Standardize.fit(torch.ones(1, 1))
    with pytest.raises(ValueError, match="NaN or infinite in rows \\[1\\]"):
        Standardize.fit(torch.tensor([[1.0], [float("nan")], [2.0]]))
    with pytest.raises(ValueError, match="out of range"):
        Standardize.fit(torch.arange(3.0), indices=[5, 0])
    st_ = Standardize([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="2 target"):
        st_.transform(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="same non-zero length"):
        Standardize([0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"needs data\.y"):
        st_(Data(z=torch.tensor([1])))
