import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from molgnn.nn import scatter


@pytest.fixture(params=scatter.available_backends())
def backend(request):
    previous = scatter.get_backend()
    scatter.set_backend(request.param)
    yield request.param
    scatter.set_backend(previous)


def reference(src, index, dim_size, reduce):
    """Loop over destination rows; empty rows are zero."""
    rows = []
    for k in range(dim_size):
        part = src[index == k]
        if part.size(0) == 0:
            rows.append(torch.zeros(src.shape[1:], dtype=src.dtype))
        elif reduce == "sum":
            rows.append(part.sum(0))
        elif reduce == "mean":
            rows.append(part.mean(0))
        else:
            rows.append(part.max(0).values)
    return torch.stack(rows) if rows else src.new_zeros(0, *src.shape[1:])


def test_sum_mean_max_exact(backend):
    src = torch.tensor([[1.0, -1.0], [2.0, 5.0], [4.0, 0.0], [-3.0, 2.0]])
    index = torch.tensor([0, 0, 2, 2])
    assert scatter.scatter_sum(src, index, 4).tolist() == [[3, 4], [0, 0], [1, 2], [0, 0]]
    assert scatter.scatter_mean(src, index, 4).tolist() == [[1.5, 2], [0, 0], [0.5, 1], [0, 0]]
    assert scatter.scatter_max(src, index, 3).tolist() == [[2, 5], [0, 0], [4, 2]]
    # an all-negative group keeps its (negative) maximum, not 0
    neg = torch.tensor([[-5.0], [-2.0], [-7.0]])
    assert scatter.scatter_max(neg, torch.tensor([1, 1, 1]), 2).tolist() == [[0.0], [-2.0]]


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 30),
    st.integers(1, 6),
    st.sampled_from([(), (3,), (3, 2)]),
    st.sampled_from(["sum", "mean", "max"]),
    st.integers(0, 2**31 - 1),
)
def test_against_reference(m, dim_size, trailing, reduce, seed):
    gen = torch.Generator().manual_seed(seed)
    src = torch.randn(m, *trailing, generator=gen, dtype=torch.float64)
    index = torch.randint(dim_size, (m,), generator=gen)
    fn = {"sum": scatter.scatter_sum, "mean": scatter.scatter_mean, "max": scatter.scatter_max}
    for name in scatter.available_backends():
        previous = scatter.get_backend()
        scatter.set_backend(name)
        try:
            out = fn[reduce](src, index, dim_size)
        finally:
            scatter.set_backend(previous)
        assert out.shape == (dim_size, *trailing)
        assert torch.allclose(out, reference(src, index, dim_size, reduce), atol=1e-12), name


def test_gradients(backend):
    src = torch.randn(10, 3, 4, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])
    scatter.scatter_sum(src, index, 3).sum().backward()
    assert torch.equal(src.grad, torch.ones_like(src))
    src.grad = None
    scatter.scatter_mean(src, index, 4).sum().backward()
    counts = torch.tensor([3.0, 3.0, 4.0], dtype=torch.float64)
    assert torch.allclose(src.grad, (1 / counts[index]).view(-1, 1, 1).expand_as(src))
    src.grad = None
    scatter.scatter_max(src, index, 3).sum().backward()
    # each output element sends gradient 1 to its arg-max (values are distinct almost surely)
    assert torch.equal(src.grad.sum(0), torch.full((3, 4), 3.0, dtype=torch.float64))
    assert set(src.grad.unique().tolist()) <= {0.0, 1.0}


def test_backend_switching():
    assert scatter.get_backend() in scatter.available_backends()
    with pytest.raises(ValueError, match="valid backends"):
        scatter.set_backend("cuda_magic")
    if "torch_scatter" not in scatter.available_backends():
        with pytest.raises(ValueError, match="torch-scatter"):
            scatter.set_backend("torch_scatter")


def test_sum_gradients_first_and_second_order(backend):
    """scatter_sum's backward (index_select for both backends) is exact and differentiable."""
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(9, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    index = torch.tensor([0, 2, 2, 1, 0, 4, 4, 4, 1])
    assert torch.autograd.gradcheck(lambda s: scatter.scatter_sum(s, index, 5), (src,))
    assert torch.autograd.gradgradcheck(lambda s: scatter.scatter_sum(s, index, 5) ** 2, (src,))
