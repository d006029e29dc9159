"""Input checks shared by the transforms."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data


def describe(data: Data) -> str:
    """A short name for a molecule in error messages."""
    for key in ("name", "idx"):
        value = getattr(data, key, None)
        if value is not None:
            return f"molecule {value.item() if isinstance(value, Tensor) else value!r}"
    return "molecule"


def require(data: Data, *keys: str, transform: str) -> None:
    """Raise ValueError if ``data`` lacks one of ``keys``."""
    for key in keys:
        if getattr(data, key, None) is None:
            raise ValueError(f"{transform} needs data.{key}, which {describe(data)} does not have")


def check_pos(pos: Tensor, where: str = "molecule") -> None:
    """Raise ValueError unless ``pos`` is a finite ``[N, 3]`` tensor."""
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"pos of {where} must have shape [N, 3], got {list(pos.shape)}")
    if pos.numel() and not torch.isfinite(pos).all():
        bad = (~torch.isfinite(pos)).any(dim=1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"{where} has NaN or infinite coordinates (atoms {bad})")
