"""Scatter/gather backend: torch-scatter when it is installed, torch's native ops otherwise.

Every molgnn layer reduces over edges or atoms through this module, so the backend is chosen in one
place. The choice is made once at import time and can be changed with
[`set_backend`][molgnn.nn.scatter.set_backend] or the ``MOLGNN_SCATTER`` environment variable
(``"torch"`` or ``"torch_scatter"``).

All reductions run along dimension 0: ``src`` is ``[M, *]``, ``index`` is ``[M]`` with values in
``[0, dim_size)`` and the result is ``[dim_size, *]``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch
from torch import Tensor

__all__ = ["available_backends", "get_backend", "scatter_mean", "scatter_sum", "set_backend"]

_BACKENDS = ("torch", "torch_scatter")
_torch_scatter: Any = None


def available_backends() -> tuple[str, ...]:
    """The backends that can be used in this environment."""
    if importlib.util.find_spec("torch_scatter") is None:
        return ("torch",)
    return _BACKENDS


def set_backend(name: str) -> None:
    """Select the scatter backend (``"torch"`` or ``"torch_scatter"``).

    Raises:
        ValueError: for an unknown name, or ``"torch_scatter"`` when it is not installed.
    """
    global _backend, _torch_scatter
    if name not in _BACKENDS:
        raise ValueError(
            f"unknown scatter backend {name!r}; valid backends: {', '.join(_BACKENDS)}"
        )
    if name == "torch_scatter":
        if "torch_scatter" not in available_backends():
            raise ValueError(
                "scatter backend 'torch_scatter' needs the torch-scatter package: "
                "pip install 'molgnn[scatter]'"
            )
        import torch_scatter

        _torch_scatter = torch_scatter
    _backend = name


def get_backend() -> str:
    """The name of the scatter backend in use."""
    return _backend


def _out_shape(src: Tensor, dim_size: int) -> tuple[int, ...]:
    return (dim_size, *src.shape[1:])


def _expand_index(index: Tensor, src: Tensor) -> Tensor:
    return index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)


def scatter_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Sum the rows of ``src`` that share an ``index``.

    Args:
        src: Values to reduce, ``[M, *]``.
        index: Destination row of each value, ``[M]`` (int64).
        dim_size: Number of destination rows.

    Returns:
        ``[dim_size, *]``; rows that receive nothing are zero.
    """
    if _backend == "torch_scatter":
        return _TorchScatterSum.apply(src, index, dim_size)
    return _index_add_sum(src, index, dim_size)


def _index_add_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """The ``"torch"`` backend's sum (also the kernel of the compiled-code op below)."""
    return src.new_zeros(_out_shape(src, dim_size)).index_add_(0, index, src)


class _TorchScatterSum(torch.autograd.Function):
    """torch-scatter's sum, with the gradient taken by ``index_select``.

    torch-scatter's own backward gathers with an index expanded to the full size of ``src``,
    about 10x slower than ``index_select`` on ``[E, 3, C]`` messages; this one stays
    differentiable (for forces in training) since its backward is an ordinary torch op.
    """

    @staticmethod
    def forward(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
        return _torch_scatter.scatter(src, index, dim=0, dim_size=dim_size, reduce="sum")

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _save_index(ctx, inputs, output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return _sum_backward(ctx, grad)


def _save_index(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(inputs[1])


def _sum_backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
    """The gradient of a scatter sum with respect to ``src``: ``grad[index]``."""
    (index,) = ctx.saved_tensors
    return grad.index_select(0, index), None, None


def scatter_mean(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Average the rows of ``src`` that share an ``index``; empty rows are zero.

    Shapes as in [`scatter_sum`][molgnn.nn.scatter_sum].
    """
    if _backend == "torch_scatter":
        return _torch_scatter.scatter(src, index, dim=0, dim_size=dim_size, reduce="mean")
    total = scatter_sum(src, index, dim_size)
    count = torch.bincount(index, minlength=dim_size).clamp_(min=1).to(src.dtype)
    return total / count.view(-1, *([1] * (src.dim() - 1)))


def scatter_max(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Maximum over the rows of ``src`` that share an ``index``; empty rows are zero.

    Shapes as in [`scatter_sum`][molgnn.nn.scatter_sum].
    """
    if _backend == "torch_scatter":
        return _torch_scatter.scatter(src, index, dim=0, dim_size=dim_size, reduce="max")
    out = src.new_zeros(_out_shape(src, dim_size))
    return out.scatter_reduce_(0, _expand_index(index, src), src, reduce="amax", include_self=False)


_backend = "torch"
_requested = os.environ.get("MOLGNN_SCATTER")
if _requested:
    set_backend(_requested)
elif "torch_scatter" in available_backends():
    set_backend("torch_scatter")
__all__ += ["scatter_max"]


# Compiled code: torch.compile lowers ``index_add`` (the backward of every gather) to a loop of
# atomic adds when it runs on several threads, several times slower than torch's own kernels on
# the CPU. Behind this op, the compiler calls torch's ``index_add_`` instead, whatever the
# backend: on the [E, C] and [E, 3, C] edge tensors of compiled code it is about 5-10% faster than
# torch-scatter's sum (a compiled small-ET training step: 384 against 374 mol/s). The op is
# defined through ``torch.library.Library`` rather than ``torch.library.custom_op``: a call then
# costs about 7 us instead of about 40 us, and a compiled training step makes dozens of them.
_LIBRARY = torch.library.Library("molgnn", "DEF")
_LIBRARY.define("scatter_sum(Tensor src, Tensor index, SymInt dim_size) -> Tensor")


_LIBRARY.impl("scatter_sum", _index_add_sum, "CompositeExplicitAutograd")


@torch.library.register_fake("molgnn::scatter_sum")
def _(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    return src.new_empty(_out_shape(src, dim_size))


torch.library.register_autograd("molgnn::scatter_sum", _sum_backward, setup_context=_save_index)
_opaque_scatter_sum = torch.ops.molgnn.scatter_sum.default


class _Gather(torch.autograd.Function):
    """``src.index_select(0, index)`` whose gradient goes through the opaque scatter."""

    @staticmethod
    def forward(src: Tensor, index: Tensor) -> Tensor:
        return src.index_select(0, index)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.save_for_backward(inputs[1])
        ctx.num_rows = inputs[0].size(0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors
        return _opaque_scatter_sum(grad, index, ctx.num_rows), None


def gather(src: Tensor, index: Tensor) -> Tensor:
    """Rows ``src[index]``, ``[M, *]`` from ``[N, *]`` and ``[M]``.

    ``index_select`` in eager code; inside ``torch.compile`` its gradient (a sum over
    ``index``) runs through the scatter backend rather than compiled atomic adds.
    """
    if torch.compiler.is_compiling():
        return _Gather.apply(src, index)
    return src.index_select(0, index)


def reduce_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """[`scatter_sum`][molgnn.nn.scatter_sum], kept opaque to ``torch.compile`` (see ``gather``)."""
    if torch.compiler.is_compiling():
        return _opaque_scatter_sum(src, index, dim_size)
    return scatter_sum(src, index, dim_size)


__all__ += ["gather", "reduce_sum"]
