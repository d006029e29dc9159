"""How molecules and texts are named in messages: file names in full, long SMILES cut."""

from __future__ import annotations

from torch_geometric.data import Data

__all__ = ["molecule_label", "shortened"]


def shortened(text: str, limit: int = 60) -> str:
    """``text`` for a message: long SMILES or lines are cut, with their length."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


def molecule_label(mol: Data) -> str:
    """A molecule's name for messages: file names in full, generated (SMILES) names cut."""
    name = str(getattr(mol, "name", None) or "molecule")
    return shortened(name) if getattr(mol, "generated_geometry", False) else name
