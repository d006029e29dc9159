"""Dataset transforms: PyG ``BaseTransform`` subclasses, one per file."""

from molgnn.transforms.atom_ref import AtomRef
from molgnn.transforms.center import Center
from molgnn.transforms.covalent_bonds import (
    BOND_FEATURES,
    BOND_TOLERANCE,
    COVALENT_RADII,
    CovalentBonds,
    covalent_bonds,
    covalent_radii,
)
from molgnn.transforms.distance import Distance
from molgnn.transforms.one_hot_atoms import OneHotAtoms
from molgnn.transforms.radius_graph import RadiusGraph
from molgnn.transforms.random_rotation import VECTOR_KEYS, RandomRotation, random_orthogonal_matrix
from molgnn.transforms.standardize import Standardize

__all__ = [
    "BOND_FEATURES",
    "BOND_TOLERANCE",
    "COVALENT_RADII",
    "VECTOR_KEYS",
    "AtomRef",
    "Center",
    "CovalentBonds",
    "Distance",
    "OneHotAtoms",
    "RadiusGraph",
    "RandomRotation",
    "Standardize",
    "covalent_bonds",
    "covalent_radii",
    "random_orthogonal_matrix",
]
