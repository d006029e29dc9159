"""Every package re-exports exactly its ``__all__``; everything else in it is private."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import molgnn

_OPTIONAL = {"molgnn.tune": "ray.tune"}


def _packages() -> list[str]:
    names = ["molgnn"]
    for info in pkgutil.walk_packages(molgnn.__path__, "molgnn."):
        if info.ispkg:
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _packages())
def test_package_exports_exactly_its_all(name: str) -> None:
    if name in _OPTIONAL:
        pytest.importorskip(_OPTIONAL[name])
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats names"
    for attr in exported:
        assert hasattr(package, attr), f"{name}.__all__ names {attr!r}, which it lacks"
    public = {
        attr
        for attr, value in vars(package).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules are reached as attributes
        # names imported from outside molgnn (typing helpers, __future__ features)
        and str(getattr(value, "__module__", "molgnn")).startswith("molgnn")
        and attr not in ("annotations", "TYPE_CHECKING")
    }
    extra = sorted(public - set(exported))
    assert not extra, f"{name} defines public names outside __all__: {extra}"
