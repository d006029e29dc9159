"""The neighbour table and the fused message sum: equal to gather-and-scatter, forward and
backward, eager and compiled, on graphs of any shape (asymmetric, repeated edges, isolated
atoms, no edges)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from molgnn.nn.neighbours import message_sum, neighbour_table

PARTS = (1, 3, 5)
ROWS = torch.tensor([0, 1, 1, 1, 2, 2, 2, 2, 2])  # the filter of each of the 9 rows


def reference(filters: Tensor, values: Tensor, edge_index: Tensor) -> Tensor:
    """The gather-and-scatter form the fused sum replaces."""
    src, dst = edge_index
    messages = filters[:, ROWS] * values[src]  # [E, 9, C]
    return values.new_zeros(values.shape).index_add(0, dst, messages)


def assert_same_gradients(out: Tensor, ref: Tensor, inputs: tuple[Tensor, ...], atol: float):
    """The gradients of ``out`` and ``ref`` with respect to ``inputs``, for one random upstream
    gradient, agree to ``atol``."""
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(ref, inputs, grad)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=atol)


def random_case(num_nodes: int, num_edges: int, channels: int, seed: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    filters = torch.randn(num_edges, 3, channels, generator=gen, dtype=dtype, requires_grad=True)
    values = torch.randn(num_nodes, 9, channels, generator=gen, dtype=dtype, requires_grad=True)
    return edge_index, filters, values


@settings(max_examples=40, deadline=None)
@given(
    num_nodes=st.integers(1, 12),
    num_edges=st.integers(0, 40),
    channels=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_message_sum_equals_gather_and_scatter(num_nodes, num_edges, channels, seed):
    """Random directed graphs (repeated edges, self loops, atoms with no edges in or out)."""
    edge_index, filters, values = random_case(num_nodes, num_edges, channels, seed)
    table = neighbour_table(edge_index, num_nodes)
    out = message_sum(filters, values, table, PARTS)
    ref = reference(filters, values, edge_index)
    assert torch.allclose(out, ref, atol=1e-12)
    assert_same_gradients(out, ref, (filters, values), atol=1e-12)


def test_message_sum_gradcheck():
    edge_index, filters, values = random_case(7, 25, 3, seed=1)
    table = neighbour_table(edge_index, 7)
    assert torch.autograd.gradcheck(lambda f, v: message_sum(f, v, table, PARTS), (filters, values))


def test_table_groups_every_edge_once_by_centre_and_by_source():
    edge_index = torch.tensor([[0, 1, 2, 2, 2, 3], [1, 0, 0, 1, 1, 3]])
    table = neighbour_table(edge_index, 5)
    for edges, mask, key in (
        (table.centre_edges, table.centre_mask, edge_index[1]),
        (table.source_edges, table.source_mask, edge_index[0]),
    ):
        assert edges.shape[0] == 5 and edges.shape == mask.shape
        listed = edges[mask]
        assert sorted(listed.tolist()) == list(range(6))  # each edge exactly once
        rows = torch.arange(5).unsqueeze(1).expand_as(edges)[mask]
        assert torch.equal(key[listed], rows)  # in the row of its centre (or source)
    assert table.centre_mask.sum(1).tolist() == [2, 3, 0, 1, 0]  # atom 4 has no edges


def test_no_edges_give_zero_messages_and_gradients():
    filters = torch.zeros(0, 3, 4, requires_grad=True)
    values = torch.randn(3, 9, 4, requires_grad=True)
    table = neighbour_table(torch.zeros(2, 0, dtype=torch.long), 3)
    out = message_sum(filters, values, table, PARTS)
    assert torch.equal(out, torch.zeros(3, 9, 4))
    out.sum().backward()
    assert torch.equal(values.grad, torch.zeros(3, 9, 4))


def test_table_without_backward_names_the_problem():
    edge_index, filters, values = random_case(4, 6, 2, seed=2)
    table = neighbour_table(edge_index, 4, backward=False)
    assert table.source_edges is None
    out = message_sum(filters, values, table, PARTS)
    assert torch.allclose(out, reference(filters, values, edge_index))
    with pytest.raises(RuntimeError, match="backward=False"):
        out.sum().backward()


def test_bad_shapes_are_refused():
    edge_index, filters, values = random_case(4, 6, 2, seed=3)
    table = neighbour_table(edge_index, 4)
    with pytest.raises(ValueError, match="parts"):
        message_sum(filters, values[:, :8], table, PARTS)
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        neighbour_table(edge_index[0], 4)


def test_compiled_message_sum_equals_gather_and_scatter():
    """Under torch.compile (the layers' use), on graphs of new sizes (dynamic shapes)."""
    pytest.importorskip("torch._inductor")
    torch._dynamo.reset()
    fused = torch.compile(lambda f, v, t: message_sum(f, v, t, PARTS))
    for num_nodes, num_edges, seed in ((9, 40, 4), (13, 70, 5), (6, 20, 6)):
        edge_index, filters, values = random_case(
            num_nodes, num_edges, 8, seed, dtype=torch.float32
        )
        out = fused(filters, values, neighbour_table(edge_index, num_nodes))
        ref = reference(filters, values, edge_index)
        assert torch.allclose(out, ref, atol=1e-5)
        assert_same_gradients(out, ref, (filters, values), atol=1e-4)
