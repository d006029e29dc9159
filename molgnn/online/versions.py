"""Content-addressed data versions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from torch_geometric.data import Data

__all__ = ["DataVersion", "molecule_hash", "version_id"]


def molecule_hash(mol_id: str, data: Data) -> str:
    """SHA-256 of a molecule's id and contents, identical on every machine.

    Hashes the id, ``z`` as little-endian int64, and ``pos`` and ``y`` as little-endian
    float64, each prefixed by its shape, so float32 and float64 copies of the same values
    hash alike.

    Args:
        mol_id: The molecule's id.
        data: The molecule, with ``z``, ``pos`` and ``y``.

    Returns:
        64 hexadecimal digits.

    Raises:
        ValueError: if ``data`` lacks ``z``, ``pos`` or ``y``.

    Shapes:
        - **input:** ``z`` ``[N]``, ``pos`` ``[N, 3]``, ``y`` ``[1, T]`` (any shape is hashed
          as it is)
    """
    digest = hashlib.sha256()
    digest.update(mol_id.encode())
    for key, dtype in (("z", "<i8"), ("pos", "<f8"), ("y", "<f8")):
        value = getattr(data, key, None)
        if value is None:
            raise ValueError(f"molecule {mol_id} has no {key}")
        array = np.ascontiguousarray(value.detach().cpu().numpy().astype(dtype))
        digest.update(key.encode() + str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def version_id(members: Iterable[tuple[str, str]]) -> str:
    """Id of the data made of ``(molecule id, molecule hash)`` pairs: SHA-256 of its manifest.

    The manifest is the text of one ``<molecule id>\\t<molecule hash>`` line per molecule,
    sorted by id, so the id depends only on the data, never on the order of arrival, the parent
    or the time.

    Args:
        members: ``(molecule id, molecule hash)`` pairs, in any order.

    Returns:
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    for mol_id, mol_hash in sorted(members):
        digest.update(f"{mol_id}\t{mol_hash}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class DataVersion:
    """One immutable state of the available training data.

    Attributes:
        id: Content hash ([`version_id`][molgnn.online.version_id]) of the manifest.
        parent: Id of the previous version, or ``None`` for the first.
        size: Number of training-pool molecules.
        seq: Position in the store's history (0, 1, 2, ...).
        created: Unix time of creation.
    """

    id: str
    parent: str | None
    size: int
    seq: int
    created: float
