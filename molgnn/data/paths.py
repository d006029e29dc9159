"""Where molgnn keeps its datasets."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_data_root", "qm9_root"]


def default_data_root() -> Path:
    """``$MOLGNN_DATA`` if set, else ``~/.cache/molgnn``; QM9 lives in its ``qm9`` folder."""
    return Path(os.environ.get("MOLGNN_DATA", Path.home() / ".cache" / "molgnn")).expanduser()


def qm9_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """The absolute folder of the processed QM9 dataset.

    Args:
        data_root: A folder the user chose (``~`` is expanded); ``None`` for
            ``default_data_root() / "qm9"``.
    """
    root = Path(data_root).expanduser() if data_root else default_data_root() / "qm9"
    return root.resolve()
