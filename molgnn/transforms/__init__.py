"""Dataset transforms: PyG ``BaseTransform`` subclasses, one per file."""

from molgnn.transforms.atom_ref import AtomRef
from molgnn.transforms.center import ATOMIC_MASSES, Center
from molgnn.transforms.covalent_bonds import COVALENT_RADII, CovalentBonds, covalent_bonds
from molgnn.transforms.distance import Distance
from molgnn.transforms.one_hot_atoms import OneHotAtoms
from molgnn.transforms.radius_graph import RadiusGraph
from molgnn.transforms.random_rotation import RandomRotation, random_orthogonal_matrix
from molgnn.transforms.standardize import Standardize

__all__ = [
    "ATOMIC_MASSES",
    "COVALENT_RADII",
    "AtomRef",
    "Center",
    "CovalentBonds",
    "Distance",
    "OneHotAtoms",
    "RadiusGraph",
    "RandomRotation",
    "Standardize",
    "covalent_bonds",
    "random_orthogonal_matrix",
]
