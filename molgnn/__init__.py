"""molgnn: equivariant graph neural networks for molecules.

Subpackages are imported lazily, so ``import molgnn`` is fast and never imports Ray, RDKit or ASE:

```python
import molgnn
molgnn.data.QM9          # imports molgnn.data on first use
molgnn.__version__
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from molgnn._version import __version__

_SUBPACKAGES = (
    "cli",
    "data",
    "inference",
    "interop",
    "io",
    "models",
    "nn",
    "online",
    "testing",
    "training",
    "transforms",
    "tune",
    "uncertainty",
)

# Top-level conveniences: name -> module that exports it.
_ATTRIBUTES: dict[str, str] = {
    "load": "molgnn.inference",
    "predict": "molgnn.inference",
}

__all__ = ["__version__", *_SUBPACKAGES, *_ATTRIBUTES]

if TYPE_CHECKING:  # pragma: no cover
    from molgnn import data, inference, io, models, nn, testing, transforms  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"molgnn.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'molgnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
