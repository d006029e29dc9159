"""The printed table of a benchmark (on stdout) and its progress lines (on stderr)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Column", "format_cell", "format_table", "log", "print_table"]


def log(message: str) -> None:
    """A progress line, on stderr: stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Column:
    """A column: the row key it shows, its title, a :func:`format` spec for numbers (``".1f"``,
    ``","``), its alignment and its least width (it widens to fit its title and cells)."""

    key: str
    title: str
    spec: str = ""
    align: Literal["<", ">"] = ">"
    width: int = 0


def format_cell(value: Any, spec: str = "") -> str:
    """``value`` as a cell: ``-`` for ``None``, strings as they are, numbers with ``spec``."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return format(value, spec)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[str]:
    """The lines of a table: header, rule, one line per row.

    A row with an ``"error"`` key shows its leading left-aligned (label) columns, then
    ``ERROR: <error>``.
    """
    labels = 0
    while labels < len(columns) and columns[labels].align == "<":
        labels += 1
    cells = [
        [format_cell(row.get(c.key), c.spec) for c in columns[: labels if "error" in row else None]]
        for row in rows
    ]
    widths = [
        max([c.width, len(c.title)] + [len(line[j]) for line in cells if j < len(line)])
        for j, c in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        return " ".join(f"{v:{c.align}{w}}" for v, c, w in zip(values, columns, widths)).rstrip()

    header = line([c.title for c in columns])
    out = [header, "-" * len(header)]
    for row, values in zip(rows, cells):
        text = line(values)
        out.append(f"{text} ERROR: {row['error']}".lstrip() if "error" in row else text)
    return out


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], title: str | None = None
) -> None:
    """Print :func:`format_table` on stdout, after a blank line and ``title`` if given."""
    print()
    if title:
        print(title)
    print("\n".join(format_table(rows, columns)), flush=True)
