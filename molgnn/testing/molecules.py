"""Random molecules for tests: plain generators and hypothesis strategies.

The generators need only torch; [`molecules`][molgnn.testing.molecules] needs
``hypothesis`` (extra ``test``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = ["molecules", "random_molecule"]

_QM9_ELEMENTS = (1, 6, 7, 8, 9)


def random_molecule(
    num_atoms: int = 10,
    seed: int | None = None,
    elements: tuple[int, ...] = _QM9_ELEMENTS,
    min_distance: float = 0.9,
    box: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """A random molecule-like point cloud with atoms at least ``min_distance`` apart.

    Atoms are placed one at a time at random in a cube whose side grows with the number of atoms
    (about the density of a small organic molecule), rejecting positions closer than
    ``min_distance`` Å to an atom already placed.

    Args:
        num_atoms: Number of atoms ``N`` (>= 1).
        seed: Seed of the generator (default: torch's global generator).
        elements: Atomic numbers to draw from (default: H, C, N, O, F).
        min_distance: Smallest distance between two atoms in Å (default: ``0.9``).
        box: Side of the cube in Å (default: ``1.6 * N ** (1/3) + 1``).
        dtype: Floating dtype of ``pos`` (default: ``torch.float32``).

    Returns:
        ``Data`` with ``z`` ``[N]`` (int64) and ``pos`` ``[N, 3]``.
    """
    if num_atoms < 1:
        raise ValueError(f"num_atoms must be at least 1, got {num_atoms}")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    side = box if box is not None else 1.6 * num_atoms ** (1.0 / 3.0) + 1.0
    pos = torch.empty(num_atoms, 3, dtype=torch.float64)
    placed = 0
    tries = 0
    while placed < num_atoms:
        cand = (torch.rand(3, generator=gen, dtype=torch.float64) - 0.5) * side
        if placed == 0 or torch.cdist(cand[None], pos[:placed]).min() >= min_distance:
            pos[placed] = cand
            placed += 1
        tries += 1
        if tries > 1000 * num_atoms:
            side *= 1.2  # too crowded: grow the box and keep going
            tries = 0
    idx = torch.randint(len(elements), (num_atoms,), generator=gen)
    z = torch.tensor(elements, dtype=torch.long)[idx]
    return Data(z=z, pos=pos.to(dtype))


def _molecule_from_seed(num_atoms: int, seed: int, kwargs: dict[str, Any]) -> Data:
    return random_molecule(num_atoms, seed=seed, **kwargs)


def molecules(min_atoms: int = 2, max_atoms: int = 20, **kwargs: Any) -> Any:
    """A hypothesis strategy drawing [`random_molecule`][molgnn.testing.random_molecule] molecules.

    Args:
        min_atoms: Fewest atoms (default: ``2``).
        max_atoms: Most atoms (default: ``20``).
        **kwargs: Passed on to [`random_molecule`][molgnn.testing.random_molecule] (``elements``,
            ``dtype``, ...).

    Returns:
        A ``hypothesis`` strategy of ``Data`` objects.
    """
    from hypothesis import strategies as st

    return st.builds(
        _molecule_from_seed,
        st.integers(min_atoms, max_atoms),
        st.integers(0, 2**31 - 1),
        st.just(kwargs),
    )


def batch_of(mols: list[Data]) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenate molecules into ``(z [N], pos [N, 3], batch [N])``."""
    z = torch.cat([m.z for m in mols])
    pos = torch.cat([m.pos for m in mols])
    batch = torch.cat([torch.full((m.z.numel(),), i, dtype=torch.long) for i, m in enumerate(mols)])
    return z, pos, batch


__all__ += ["batch_of"]
