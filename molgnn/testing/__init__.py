"""Helpers for testing molecular models, importable from users' own tests."""

from molgnn.testing.equivariance import KINDS, TOLERANCES, assert_equivariant, assert_invariant
from molgnn.testing.molecules import batch_of, molecules, random_molecule

__all__ = [
    "KINDS",
    "TOLERANCES",
    "assert_equivariant",
    "assert_invariant",
    "batch_of",
    "molecules",
    "random_molecule",
]
