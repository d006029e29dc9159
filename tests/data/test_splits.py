import numpy as np
import pytest

from molgnn.data import load_split, named_split, save_split, split_indices


def test_split_sizes_disjoint_and_reproducible():
    tr, va, te = split_indices(100, 70, 10, seed=3)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    assert len(set(tr) | set(va) | set(te)) == 100
    again = split_indices(100, 70, 10, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))
    assert not np.array_equal(split_indices(100, 70, 10, seed=4)[0], tr)
    tr, va, te = split_indices(10, 0.5, 0.2, 0.1)
    assert (len(tr), len(va), len(te)) == (5, 2, 1)
    with pytest.raises(ValueError, match="does not fit"):
        split_indices(10, 8, 5)


def test_torchmdnet_convention():
    tr, va, te = named_split("torchmdnet-qm9")
    assert (len(tr), len(va), len(te)) == (110_000, 10_000, 10_831)
    perm = np.random.default_rng(1).permutation(130_831)
    assert np.array_equal(tr, perm[:110_000]) and np.array_equal(te, perm[120_000:])
    with pytest.raises(ValueError, match="named splits"):
        named_split("random")


def test_save_and_load(tmp_path):
    parts = split_indices(50, 30, 10, seed=0)
    path = save_split(tmp_path / "split.npz", *parts)
    assert all(np.array_equal(a, b) for a, b in zip(parts, load_split(path)))
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "missing.npz")
