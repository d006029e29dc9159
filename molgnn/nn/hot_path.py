"""Compiling layers' hot paths: the options a layer stores, a shared cache, and the eager switch."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeGuard

import torch

__all__ = ["CompileOptions", "compile_options", "compiled", "eager_hot_path", "runs_compiled"]

#: ``torch.compile``'s positional and keyword arguments, in a hashable form.
CompileOptions = tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]

_CACHE: dict[Any, Callable[..., Any]] = {}
_EAGER = threading.local()  # .active: set inside eager_hot_path(), per thread


def compile_options(args: tuple[Any, ...], kwargs: dict[str, Any]) -> CompileOptions:
    """``torch.compile`` arguments as a layer stores them (a layer's ``compile(*args, **kwargs)``)."""
    return args, tuple(sorted(kwargs.items()))


def runs_compiled(options: CompileOptions | None) -> TypeGuard[CompileOptions]:
    """Whether a layer compiled with ``options`` (``None``: not compiled) runs compiled here."""
    return options is not None and not getattr(_EAGER, "active", False)


def compiled(
    options: CompileOptions, key: Any, build: Callable[[], Callable[..., Any]]
) -> Callable[..., Any]:
    """``torch.compile(build(), ...)`` for ``(options, key)``, built once and shared.

    Layers of the same shape pass the same ``key`` and so share one set of kernels.
    """
    entry = (options, key)
    if entry not in _CACHE:
        _CACHE[entry] = torch.compile(build(), *options[0], **dict(options[1]))
    return _CACHE[entry]


@contextlib.contextmanager
def eager_hot_path() -> Iterator[None]:
    r"""Run compiled layers eagerly inside this block.

    For graphs that will be differentiated twice (training on forces, where the loss holds
    $-\partial E / \partial \mathbf{r}$): torch.compile does not support double backward.
    [`MolecularModel`][molgnn.models.MolecularModel] enters it by itself when it needs to.
    """
    previous = getattr(_EAGER, "active", False)
    _EAGER.active = True
    try:
        yield
    finally:
        _EAGER.active = previous
