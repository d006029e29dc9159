"""TensorNet's compiled hot path gives the eager numbers (outputs, forces and gradients)."""

import pytest
import torch

from molgnn.models import build_model
from molgnn.testing import batch_of, random_molecule

TINY = dict(hidden_channels=16, num_layers=2, num_rbf=8)


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_compiled_tensornet_matches_eager_outputs_forces_and_gradients(group):
    """model.compile() compiles the embedding's and every layer's hot path; numbers match eager
    to float32 rounding, in training, at inference with forces, and training on forces (which
    falls back to eager)."""
    pytest.importorskip("torch._inductor")
    torch._dynamo.reset()  # nothing compiled by another test is reused
    inductor = torch._dynamo.lookup_backend("inductor")
    graphs: list[torch.fx.GraphModule] = []

    def counting_inductor(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        # A backend of its own, so that nothing compiled elsewhere is reused.
        graphs.append(gm)
        return inductor(gm, example_inputs)

    torch.manual_seed(0)
    config = {"preset": "tensornet-small", **TINY, "equivariance_invariance_group": group}
    eager = build_model(config)
    compiled = build_model(config)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile(backend=counting_inductor)
    representation = compiled.representation
    assert representation.tensor_embedding._compile_options is not None
    assert all(layer._compile_options is not None for layer in representation.layers)
    assert not graphs  # torch.compile is lazy: nothing compiled before the first call

    def close(a, b, rtol=1e-4):
        return torch.allclose(a, b, rtol=rtol, atol=1e-5)

    for sizes in ((3, 7, 12), (5, 9), (4, 6, 8, 11)):  # new sizes: dynamic shapes
        z, pos, batch = batch_of([random_molecule(n, seed=n) for n in sizes])
        grads = []
        for model in (eager, compiled):
            model.train().zero_grad()
            model(z, pos, batch).square().sum().backward()
            grads.append(
                torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            )
        assert close(grads[0], grads[1], rtol=1e-3)
        # every compiled graph sums into atoms: the embedding's through the opaque scatter, the
        # layers' over the neighbour table (an autograd function, molgnn.nn.neighbours)
        text = [str(gm.graph) for gm in graphs]
        assert text and all("scatter_sum" in t or "autograd_function_apply" in t for t in text)
        assert any("autograd_function_apply" in t and "scatter_sum" not in t for t in text)
        for model in (eager, compiled):
            model.eval().derivative = True
        (y0, f0), (y1, f1) = eager(z, pos, batch), compiled(z, pos, batch)
        assert close(y0, y1) and close(f0, f1)
        for model in (eager, compiled):
            model.train()
        f_loss = [model(z, pos, batch)[1].square().sum() for model in (eager, compiled)]
        g0, g1 = (torch.autograd.grad(f, list(m.parameters()), allow_unused=True)
                  for f, m in zip(f_loss, (eager, compiled), strict=True))  # fmt: skip
        for a, b in zip(g0, g1, strict=True):
            assert (a is None and b is None) or close(a, b, rtol=1e-3)
        for model in (eager, compiled):
            model.derivative = False
