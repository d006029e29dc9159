"""Reductions of per-atom values into per-molecule values, chosen by name.

Heads and priors share this table, so a model's head and its prior always reduce alike when
they are meant to (see [`REDUCE_OPS`][molgnn.nn.REDUCE_OPS]).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from molgnn.nn.scatter import scatter_mean, scatter_sum

__all__ = ["REDUCE_OPS", "check_reduce_op", "reduce_atoms", "scatter_mean_with_zero"]


def scatter_mean_with_zero(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    r"""torchmd-net 3.x's ``"mean"``: each molecule's sum divided by its atom count plus one.

    torchmd-net averages with ``torch.scatter_reduce(..., reduce="mean")`` into a tensor of
    zeros with ``include_self=True``, so the zero it starts from counts as one more value:
    $y_b = \sum_{i \in b} h_i / (n_b + 1)$. molgnn's own ``"mean"`` divides by
    $n_b$; this reduction exists so that converted torchmd-net models give torchmd-net's
    numbers.

    Args:
        src: Per-atom values ``[N, *]``.
        index: Molecule of each atom ``[N]``.
        dim_size: Number of molecules $B$.

    Returns:
        ``[B, *]``.
    """
    total = scatter_sum(src, index, dim_size)
    count = torch.bincount(index, minlength=dim_size).to(src.dtype) + 1
    return total / count.view(-1, *([1] * (src.dim() - 1)))


#: Reduction name -> function ``(src [N, *], index [N], dim_size) -> [B, *]``.
#:
#: - ``"sum"``: the sum over the atoms of each molecule (extensive targets such as energies).
#: - ``"mean"``: the average over the atoms of each molecule.
#: - ``"torchmdnet_mean"``: torchmd-net 3.x's "mean", the sum divided by (atoms + 1); see
#:   [`scatter_mean_with_zero`][molgnn.nn.scatter_mean_with_zero]. Used by models converted from
#:   torchmd-net.
REDUCE_OPS: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "sum": scatter_sum,
    "mean": scatter_mean,
    "torchmdnet_mean": scatter_mean_with_zero,
}


def check_reduce_op(reduce_op: str) -> str:
    """Return ``reduce_op`` if it names a reduction, else raise ``ValueError`` listing them."""
    if reduce_op not in REDUCE_OPS:
        raise ValueError(f"unknown reduce_op {reduce_op!r}; valid: {', '.join(REDUCE_OPS)}")
    return reduce_op


def reduce_atoms(src: Tensor, batch: Tensor, num_graphs: int, reduce_op: str = "sum") -> Tensor:
    """Reduce per-atom values ``[N, *]`` into per-molecule values ``[B, *]`` by name."""
    return REDUCE_OPS[check_reduce_op(reduce_op)](src, batch, num_graphs)
