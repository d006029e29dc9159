"""Reading molecules from XYZ files, with errors that name the file, the line and the problem."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch_geometric.data import Data

from molgnn.data.keys import ATOMIC_NUMBERS, ELEMENT_SYMBOLS

__all__ = ["parse_xyz", "read_xyz"]

_LOWER = {s.lower(): z for s, z in ATOMIC_NUMBERS.items()}


def _shown(text: str, limit: int = 60) -> str:
    """``repr`` of a token or line for a message, cut when long (a binary or garbage file)."""
    text = text.strip()
    return (
        repr(text) if len(text) <= limit else f"{text[: limit - 20]!r}... ({len(text)} characters)"
    )


def _element(token: str, where: str) -> int:
    if token.isascii() and token.isdigit():
        z = int(token)
        if 1 <= z < len(ELEMENT_SYMBOLS):
            return z
        raise ValueError(f"{where}: atomic number {z} is not an element")
    found = _LOWER.get(token.lower())
    if found is None:
        raise ValueError(f"{where}: unknown element {_shown(token)}")
    z = found
    return z


def _float(token: str, where: str) -> float:
    try:
        value = float(token.replace("*^", "e"))
    except ValueError:
        raise ValueError(f"{where}: cannot read coordinate {_shown(token)} as a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: coordinate {token!r} is NaN or infinite")
    return value


def parse_xyz(text: str, source: str = "<string>", min_distance: float = 1e-3) -> list[Data]:
    """Parse XYZ text holding one or more molecules.

    Each molecule is a count line, a comment line (kept as ``name``) and one line per atom:
    an element symbol or atomic number and three coordinates in Å (extra columns are ignored).

    Args:
        text: The file's contents.
        source: Name used in error messages (a file path).
        min_distance: Two atoms closer than this (Å) are an error (default: ``1e-3``).

    Returns:
        A list of ``Data`` with ``z`` ``[N]``, ``pos`` ``[N, 3]`` and ``name``.

    Raises:
        ValueError: naming ``source``, the line and the problem: an unknown element, a NaN or
            infinite coordinate, a truncated file, a count line that disagrees with the atoms,
            an empty molecule, or two atoms at the same position.
    """
    lines = text.splitlines()
    molecules: list[Data] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        count_line = i + 1
        token = lines[i].split()[0]
        if not (token.isascii() and token.isdigit()):
            where = f"{source}, line {count_line}"
            if molecules:
                previous = molecules[-1].z.numel()
                raise ValueError(
                    f"{where}: expected the atom count of a new molecule, found "
                    f"{_shown(lines[i])}"
                    f" (the count line of the previous molecule says {previous} atoms, but more"
                    " atom lines follow)"
                )
            raise ValueError(f"{where}: expected the number of atoms, found {_shown(lines[i])}")
        n = int(token)
        if n == 0:
            raise ValueError(f"{source}, line {count_line}: empty molecule (0 atoms)")
        if i + 1 >= len(lines):
            raise ValueError(f"{source}, line {count_line}: truncated file, no comment line")
        name = lines[i + 1].strip()
        z: list[int] = []
        pos: list[list[float]] = []
        for k in range(n):
            line_no = i + 3 + k
            if line_no > len(lines):
                raise ValueError(
                    f"{source}, line {line_no}: truncated file: the count line (line {count_line}) "
                    f"says {n} atoms, found {k}"
                )
            parts = lines[line_no - 1].split()
            where = f"{source}, line {line_no}"
            if len(parts) < 4:
                if not parts or (parts[0].isascii() and parts[0].isdigit()):
                    raise ValueError(
                        f"{where}: the count line (line {count_line}) says {n} atoms, found {k}"
                    )
                raise ValueError(
                    f"{where}: expected 'element x y z', found {_shown(lines[line_no - 1])}"
                )
            z.append(_element(parts[0], where))
            pos.append([_float(t, where) for t in parts[1:4]])
        pos_t = torch.tensor(pos, dtype=torch.float64)
        if n > 1:
            dist = torch.cdist(pos_t, pos_t) + torch.eye(n, dtype=torch.float64) * 1e9
            close = (dist < min_distance).nonzero()
            if close.numel():
                a, b = sorted(close[0].tolist())
                raise ValueError(
                    f"{source}, lines {i + 3 + a} and {i + 3 + b}: atoms {a + 1} and {b + 1} are "
                    f"at the same position"
                )
        molecules.append(
            Data(z=torch.tensor(z, dtype=torch.long), pos=pos_t.float(), name=name or f"{source}")
        )
        i += 2 + n
    if not molecules:
        raise ValueError(f"{source}: no molecule found (empty file)")
    return molecules


def read_xyz(path: str | Path) -> Data | list[Data]:
    """Read an XYZ file: a ``Data`` for one molecule, a list for several.

    See [`parse_xyz`][molgnn.data.parse_xyz] for the format and the errors.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for a folder, a file that cannot be read or is not UTF-8 text, and
            malformed content, naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an XYZ file")
    if not path.is_file():
        raise FileNotFoundError(f"no XYZ file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the file: {err.strerror or err}") from None
    if "\x00" in text:
        raise ValueError(f"{path}: not a text file (it holds NUL bytes)")
    molecules = parse_xyz(text, str(path))
    return molecules[0] if len(molecules) == 1 else molecules
