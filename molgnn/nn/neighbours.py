r"""Edges grouped by atom, and the fused per-channel message sum of compiled TensorNet layers.

A message sum $\mathbf{m}_i = \sum_{j \to i} \mathbf{f}_{ji} \odot \mathbf{y}_j$ written as a
gather, a product and a scatter materialises ``[E, *, C]`` tensors three times forward and
again backward, and the scatter's gradient is a sum over the sources that the compiler can only
write with atomic adds. Grouping the edges by centre and by source in padded tables
([`neighbour_table`][molgnn.nn.neighbour_table]) turns the sum and its gradient with
respect to $\mathbf{y}$ into the same plain reduction over each atom's row of the table, which
``torch.compile`` fuses into one loop over the atoms with no atomics and no ``[E, *, C]``
intermediates ([`message_sum`][molgnn.nn.message_sum]). It is meant for compiled
code: run eagerly it materialises ``[N, K, *, C]`` tensors, which the gather-and-scatter form
does not.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["NeighbourTable", "message_sum", "neighbour_table"]


class NeighbourTable(NamedTuple):
    """A graph's edges grouped by centre and by source, padded to the largest degree.

    Row ``i`` of ``centre_edges`` lists the edges into atom ``i`` (``edge_index[1] == i``) and
    ``centre_sources`` their source atoms; row ``j`` of ``source_edges`` the edges out of
    atom ``j`` and ``source_centres`` their centres. Padding entries point at edge and atom 0
    and are ``False`` in the masks. The ``source_*`` tables serve only the gradient and are
    ``None`` in a table built with ``backward=False``.

    Shapes:
        ``centre_*`` ``[N, K]`` (``K``: the largest in-degree), ``source_*`` ``[N, K']`` (the
        largest out-degree), ``src`` and ``dst`` ``[E]``.
    """

    centre_edges: Tensor
    centre_sources: Tensor
    centre_mask: Tensor
    source_edges: Tensor | None
    source_centres: Tensor | None
    source_mask: Tensor | None
    src: Tensor
    dst: Tensor


def _group(key: Tensor, other: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Edges grouped by ``key`` into a padded ``[N, K]`` table, the ``other`` end of each, and
    the mask of real entries."""
    num_edges = key.numel()
    order = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=num_nodes)
    width = max(int(counts.max()), 1) if num_edges else 1
    start = torch.cumsum(counts, 0) - counts
    sorted_key = key[order]
    rank = torch.arange(num_edges, device=key.device) - start[sorted_key]
    # Stored [K, N] and returned as [N, K] views: compiled sums over a row then vectorise
    # over the channels (with [N, K] storage the compiler vectorises over the row instead,
    # about 5x slower).
    edges = key.new_zeros(width, num_nodes)
    mask = torch.zeros(width, num_nodes, dtype=torch.bool, device=key.device)
    edges[rank, sorted_key] = order
    mask[rank, sorted_key] = True
    ends = other[edges] if num_edges else torch.zeros_like(edges)
    return edges.t(), ends.t(), mask.t()


def neighbour_table(edge_index: Tensor, num_nodes: int, backward: bool = True) -> NeighbourTable:
    """Group the edges of ``edge_index`` by centre and by source (see
    [`NeighbourTable`][molgnn.nn.NeighbourTable]).

    Build it once per batch and pass it to every layer: it costs a sort of the edges, and one
    more for the grouping by source that the gradient needs (skipped with
    ``backward=False``, e.g. under ``torch.no_grad``).

    Shapes:
        - **input:** edge_index ``[2, E]`` (int64, values in ``[0, num_nodes)``)
        - **output:** a [`NeighbourTable`][molgnn.nn.NeighbourTable]
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
    src, dst = edge_index[0], edge_index[1]
    centre_edges, centre_sources, centre_mask = _group(dst, src, num_nodes)
    source_edges = source_centres = source_mask = None
    if backward:
        source_edges, source_centres, source_mask = _group(src, dst, num_nodes)
    return NeighbourTable(
        centre_edges, centre_sources, centre_mask, source_edges, source_centres, source_mask,
        src, dst,
    )  # fmt: skip


def _table_sum(
    filters: Tensor, values: Tensor, edges: Tensor, ends: Tensor, mask: Tensor,
    parts: tuple[int, ...],
) -> Tensor:  # fmt: skip
    """``out[a, r] = sum_k mask[a, k] * filters[edges[a, k], p(r)] * values[ends[a, k], r]``.

    One broadcast product per row group (an expanded, concatenated filter would be
    stored by the compiler), each summed over the table's rows.
    """
    keep = mask.to(values.dtype).unsqueeze(-1).unsqueeze(-1)  # [N, K, 1, 1]
    neighbours = values[ends]  # [N, K, R, C]
    sums, row = [], 0
    for p, size in enumerate(parts):
        # each group gathers its own filter: one use each, so the compiler computes the
        # gathered filters inside the sum instead of storing them padded to [N, K, P, C]
        weight = filters[:, p : p + 1][edges] * keep  # [N, K, 1, C]
        sums.append((neighbours[:, :, row : row + size] * weight).sum(1))
        row += size
    return torch.cat(sums, dim=1)


class _MessageSum(torch.autograd.Function):
    """The message sum with its gradients written as table sums and per-edge products."""

    @staticmethod
    def forward(
        filters: Tensor, values: Tensor, table: NeighbourTable, parts: tuple[int, ...]
    ) -> Tensor:
        return _table_sum(
            filters, values, table.centre_edges, table.centre_sources, table.centre_mask, parts
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        filters, values, table, parts = inputs
        ctx.parts = parts
        ctx.save_for_backward(
            filters, values, table.source_edges, table.source_centres, table.source_mask,
            table.src, table.dst,
        )  # fmt: skip

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        filters, values, source_edges, source_centres, source_mask, src, dst = ctx.saved_tensors
        parts = ctx.parts
        grad_filters = grad_values = None
        if ctx.needs_input_grad[1]:
            if source_edges is None:
                raise RuntimeError(
                    "message_sum: this NeighbourTable was built with backward=False and cannot "
                    "give gradients with respect to the values; build it with backward=True"
                )
            # d m_i / d y_j = f_ji: the same sum over each source's edges, into their centres.
            grad_values = _table_sum(
                filters, grad, source_edges, source_centres, source_mask, parts
            )
        if ctx.needs_input_grad[0]:
            pieces, row = [], 0
            for size in parts:  # gathered per group, each once: computed in the sum, not stored
                rows = slice(row, row + size)
                product = grad[:, rows].index_select(0, dst) * values[:, rows].index_select(0, src)
                pieces.append(product.sum(1))
                row += size
            grad_filters = torch.stack(pieces, dim=1)  # [E, P, C]
        return grad_filters, grad_values, None, None


def message_sum(
    filters: Tensor, values: Tensor, table: NeighbourTable, parts: tuple[int, ...]
) -> Tensor:
    r"""Per-channel message sums $m_{i,r,c} = \sum_{j \to i} f_{ji,p(r),c}\, y_{j,r,c}$.

    The rows of ``values`` come in ``len(parts)`` groups of ``parts[p]`` rows, each weighted by
    filter ``p`` (TensorNet's ``(1, 3, 5)``: the scalar, the axial vector and the symmetric
    traceless entries, under the filters $f^I, f^A, f^S$). Equal to
    ``scatter_sum(filters[:, rows] * values[src], dst)`` with ``rows`` the group of each row;
    differentiable once, in both ``filters`` and ``values``.

    Args:
        filters: Per-edge filters ``[E, P, C]``.
        values: Per-atom values ``[N, R, C]`` with ``R = sum(parts)``.
        table: The edges grouped by atom ([`neighbour_table`][molgnn.nn.neighbour_table]).
        parts: The size of each row group (``P`` entries).

    Shapes:
        - **input:** filters ``[E, P, C]``, values ``[N, R, C]``
        - **output:** ``[N, R, C]``
    """
    if filters.size(1) != len(parts) or values.size(1) != sum(parts):
        raise ValueError(
            f"filters [E, {len(parts)}, C] and values [N, {sum(parts)}, C] expected for parts "
            f"{parts}, got {list(filters.shape)} and {list(values.shape)}"
        )
    if filters.size(0) == 0:  # no edges: no messages (and the padding would index nothing)
        return values * 0.0 + filters.sum() * 0.0  # zero gradients for both
    out: Tensor = _MessageSum.apply(filters, values, table, parts)
    return out
