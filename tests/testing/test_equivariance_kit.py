import pytest
import torch

from molgnn.testing import assert_equivariant, assert_invariant, random_molecule


def test_kit_accepts_correct_functions():
    mol = random_molecule(7, seed=0, dtype=torch.float64)

    def fn(z, pos, batch):
        centred = pos - pos.mean(0)
        return {
            "dists": torch.cdist(pos, pos).sum(1),  # per atom, invariant
            "radius": centred.norm(dim=1).sum().reshape(1),  # per molecule
            "dipole": (z[:, None].double() * centred).sum(0, keepdim=True),  # vector
            "atom_vec": centred,
        }

    kinds = {
        "dists": "atom_scalar",
        "radius": "scalar",
        "dipole": "vector",
        "atom_vec": "atom_vector",
    }
    assert_equivariant(fn, mol.z, mol.pos, kinds=kinds, trials=5)


def test_kit_catches_broken_functions():
    mol = random_molecule(6, seed=1, dtype=torch.float64)
    with pytest.raises(AssertionError, match="not scalar-equivariant"):
        assert_invariant(
            lambda z, pos, b: pos[:, 0].sum().reshape(1), mol.z, mol.pos
        )  # not rotation invariant
    with pytest.raises(AssertionError, match="not atom_scalar"):
        assert_invariant(
            lambda z, pos, b: torch.arange(len(z)).double() * pos.norm(dim=1).sum(),
            mol.z,
            mol.pos,
            per_atom=True,
        )
    with pytest.raises(AssertionError):  # position itself is not translation invariant as a vector
        assert_equivariant(lambda z, pos, b: pos, mol.z, mol.pos, kinds="atom_vector")
    # pos is fine without translations
    assert_equivariant(
        lambda z, pos, b: pos, mol.z, mol.pos, kinds="atom_vector", translations=False
    )
    # a cross product is a pseudovector: it fails as a vector under reflections
    cross = lambda z, pos, b: torch.linalg.cross(pos[1] - pos[0], pos[2] - pos[0]).reshape(1, 3)  # noqa: E731
    assert_equivariant(cross, mol.z, mol.pos, kinds="pseudovector", permutations=False)
    with pytest.raises(AssertionError, match="det"):
        assert_equivariant(cross, mol.z, mol.pos, kinds="vector", permutations=False, trials=8)
    with pytest.raises(ValueError, match="kind"):
        assert_equivariant(lambda z, pos, b: pos, mol.z, mol.pos, kinds="tensor")


def test_kit_takes_a_data_object_and_checks_batches():
    from torch_geometric.data import Batch

    mols = [random_molecule(n, seed=n, dtype=torch.float64) for n in (3, 5)]
    data = Batch.from_data_list(mols)

    def per_molecule_radius(z, pos, batch):
        centre = torch.zeros(2, 3, dtype=pos.dtype).index_add_(0, batch, pos)
        centre = centre / torch.bincount(batch, minlength=2).unsqueeze(1)
        dist = (pos - centre[batch]).norm(dim=1, keepdim=True)
        return torch.zeros(2, 1, dtype=pos.dtype).index_add_(0, batch, dist)

    assert_invariant(per_molecule_radius, data)
    assert_invariant(per_molecule_radius, mols[0])

    def leaks_across_molecules(z, pos, batch):  # uses the first atom of the whole batch
        return per_molecule_radius(z, pos, batch) + pos[0].norm()

    with pytest.raises(AssertionError):
        assert_invariant(leaks_across_molecules, data)
    with pytest.raises(ValueError, match="pos must have shape"):
        assert_invariant(per_molecule_radius, data.z, data.pos[:2])
