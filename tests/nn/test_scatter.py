import pytest
import torch

from molgnn.nn import scatter


@pytest.fixture(params=scatter.available_backends())
def backend(request):
    previous = scatter.get_backend()
    scatter.set_backend(request.param)
    yield request.param
    scatter.set_backend(previous)


def test_sum_mean_max(backend):
    src = torch.tensor([[1.0, -1.0], [2.0, 5.0], [4.0, 0.0], [-3.0, 2.0]])
    index = torch.tensor([0, 0, 2, 2])
    assert scatter.scatter_sum(src, index, 4).tolist() == [[3, 4], [0, 0], [1, 2], [0, 0]]
    assert scatter.scatter_mean(src, index, 4).tolist() == [[1.5, 2], [0, 0], [0.5, 1], [0, 0]]
    assert scatter.scatter_max(src, index, 3).tolist() == [[2, 5], [0, 0], [4, 2]]


def test_sum_gradient_and_3d(backend):
    src = torch.randn(10, 3, 4, dtype=torch.float64, requires_grad=True)
    index = torch.randint(3, (10,))
    out = scatter.scatter_sum(src, index, 3)
    ref = torch.stack([src[index == k].sum(0) for k in range(3)])
    assert torch.allclose(out, ref)
    out.sum().backward()
    assert torch.equal(src.grad, torch.ones_like(src))


def test_unknown_backend():
    with pytest.raises(ValueError, match="valid backends"):
        scatter.set_backend("cuda_magic")
