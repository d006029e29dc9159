"""Crash-safe file writes: write a temporary file beside the target, then rename it over.

A reader (or a process restarted after a crash) sees either the old file or the new one, never
a half-written one. With ``durable=True`` the data and the rename are also flushed to disk
(``fsync`` of the file and of its folder), so they survive a power cut as well.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["fsync_dir", "write_atomic", "write_atomic_with"]


def fsync_dir(path: str | Path) -> None:
    """Make renames inside the folder ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic_with(
    path: str | Path, write: Callable[[IO[Any]], Any], binary: bool = True, durable: bool = False
) -> Path:
    """Replace ``path`` atomically with what ``write(file)`` writes to an open temporary file.

    Args:
        path: The file to create or replace; its folder is created if needed.
        write: Called once with the temporary file, opened ``"wb"`` (or ``"w"``).
        binary: Open the temporary file in binary mode (default: ``True``).
        durable: ``fsync`` the file and its folder before returning (default: ``False``).

    Returns:
        ``path``, as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def write_atomic(path: str | Path, data: str | bytes, durable: bool = False) -> Path:
    """Replace ``path`` atomically with ``data`` (text or bytes).

    Args:
        path: The file to create or replace.
        data: Its new content.
        durable: ``fsync`` the file and its folder (default: ``False``).

    Returns:
        ``path``, as a ``Path``.
    """
    return write_atomic_with(
        path, lambda f: f.write(data), binary=isinstance(data, bytes), durable=durable
    )
