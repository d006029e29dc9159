"""Interoperability with other libraries: torchmd-net models and an ASE calculator.

[`Calculator`][molgnn.interop.Calculator] ([`molgnn.interop.ase`][molgnn.interop.ase]) needs ASE
(extra ``chem``), so it is imported on first use: ``import molgnn.interop`` never imports ASE.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from molgnn.interop.torchmdnet import config_from_torchmdnet_args, from_torchmdnet

if TYPE_CHECKING:  # pragma: no cover
    from molgnn.interop.ase import Calculator

__all__ = ["Calculator", "config_from_torchmdnet_args", "from_torchmdnet"]

# Names that need an optional extra, imported from their module on first use.
_LAZY = {"Calculator": "molgnn.interop.ase"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molgnn.interop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
