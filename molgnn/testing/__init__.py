"""Helpers for testing molecular models, importable from users' own tests."""

from molgnn.testing.molecules import batch_of, molecules, random_molecule

__all__ = ["batch_of", "molecules", "random_molecule"]
