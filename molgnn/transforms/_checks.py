"""Input checks shared by the transforms."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Data

from molgnn.data.keys import ELEMENT_SYMBOLS


def describe(data: Data) -> str:
    """A short name for a molecule in error messages (its ``name``, ``idx`` or ``smiles``)."""
    for key in ("name", "idx", "smiles"):
        value = getattr(data, key, None)
        if value is None:
            continue
        if isinstance(value, Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        return f"molecule {value!r}"
    return "molecule"


def element_name(z: int) -> str:
    """Chemical symbol of atomic number ``z`` (the number itself when out of range)."""
    return ELEMENT_SYMBOLS[z] if 0 < z < len(ELEMENT_SYMBOLS) else f"Z={z}"


def require(data: Data, *keys: str, transform: str) -> None:
    """Raise ValueError if ``data`` lacks one of ``keys``."""
    for key in keys:
        if getattr(data, key, None) is None:
            raise ValueError(f"{transform} needs data.{key}, which {describe(data)} does not have")


def check_pos(pos: Tensor, where: str = "molecule") -> None:
    """Raise ValueError unless ``pos`` is a finite floating-point ``[N, 3]`` tensor."""
    if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.size(1) != 3:
        shape = list(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
        raise ValueError(f"pos of {where} must have shape [N, 3], got {shape}")
    if not pos.is_floating_point():
        raise ValueError(f"pos of {where} must be floating point, got {pos.dtype}")
    # One reduction is cheaper than isfinite(); NaN and inf always make the sum non-finite.
    if pos.numel() and not math.isfinite(float(pos.detach().sum())):
        bad = (~torch.isfinite(pos)).any(dim=1).nonzero().flatten()[:5].tolist()
        if bad:
            raise ValueError(f"{where} has NaN or infinite coordinates (atoms {bad})")


def check_z(z: Tensor, num_atoms: int | None, where: str = "molecule") -> None:
    """Raise ValueError unless ``z`` is an integer ``[N]`` tensor of valid atomic numbers."""
    if not isinstance(z, Tensor) or z.dim() != 1:
        shape = list(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"z of {where} must have shape [N], got {shape}")
    if z.is_floating_point() or z.is_complex() or z.dtype == torch.bool:
        raise ValueError(f"z of {where} must hold integer atomic numbers, got {z.dtype}")
    if num_atoms is not None and z.numel() != num_atoms:
        raise ValueError(f"{where} has {z.numel()} atomic numbers but {num_atoms} positions")
    if z.numel() and (int(z.min()) < 1 or int(z.max()) >= len(ELEMENT_SYMBOLS)):
        bad = z[(z < 1) | (z >= len(ELEMENT_SYMBOLS))].unique().tolist()
        raise ValueError(f"{where} has invalid atomic numbers {bad}")


def check_edge_index(edge_index: Tensor, num_atoms: int, where: str = "molecule") -> None:
    """Raise ValueError unless ``edge_index`` is an integer ``[2, E]`` tensor of atom indices."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = list(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise ValueError(f"edge_index of {where} must have shape [2, E], got {shape}")
    if edge_index.is_floating_point() or edge_index.dtype == torch.bool:
        raise ValueError(f"edge_index of {where} must hold integer indices, got {edge_index.dtype}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_atoms):
        raise ValueError(
            f"edge_index of {where} points outside its {num_atoms} atoms "
            f"(indices {int(edge_index.min())}..{int(edge_index.max())})"
        )
