"""The ET's fast paths (per-pair distance filters, compiled hot path) give the same numbers."""

import pytest
import torch

from molgnn.models import build_model, edge_geometry, edge_pairs
from molgnn.nn import EquivariantMultiHeadAttention, ExpNormalSmearing, radius_graph
from molgnn.testing import batch_of, random_molecule

TINY = dict(hidden_channels=16, num_layers=2, num_heads=4, num_rbf=8)


def test_edge_pairs_groups_both_directions_and_all_self_loops():
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 1.5, 0], [3.0, 3, 3]])
    ei = radius_graph(pos, 2.0, loop=True)
    pair, first = edge_pairs(ei, pos.size(0))
    src, dst = ei
    pairs = {frozenset((int(a), int(b))) for a, b in zip(src, dst, strict=True) if a != b}
    assert first.numel() == len(pairs) + 1  # one row per unordered pair, one for all loops
    # each edge's row holds the same unordered pair (or a self loop)
    rep_src, rep_dst = src[first[pair]], dst[first[pair]]
    loop = src == dst
    assert torch.equal(rep_src == rep_dst, loop)
    same = (torch.minimum(rep_src, rep_dst) == torch.minimum(src, dst)) & (
        torch.maximum(rep_src, rep_dst) == torch.maximum(src, dst)
    )
    assert bool((same | loop).all())
    assert torch.equal(first[pair[first]], first)  # first is the lowest edge of its row


def test_edge_pairs_on_a_one_directional_graph():
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])  # no reverse edges: every row used once
    pair, first = edge_pairs(ei, 3)
    assert sorted(pair.tolist()) == [0, 1, 2] and first.numel() == 3


@pytest.mark.parametrize("influence", ["both", "keys", "values", "none"])
@pytest.mark.parametrize("vector_cutoff", [True, False])
def test_layer_with_pair_table_equals_per_edge(influence, vector_cutoff):
    torch.manual_seed(0)
    layer = EquivariantMultiHeadAttention(
        16, 8, influence, num_heads=4, vector_cutoff=vector_cutoff
    ).double()
    mol = random_molecule(9, seed=3, dtype=torch.float64)
    ei = radius_graph(mol.pos, 5.0, loop=True)
    length, unit = edge_geometry(mol.pos, ei)
    rbf = ExpNormalSmearing(0.0, 5.0, 8, trainable=False).double()
    x = torch.randn(9, 16, dtype=torch.float64)
    vec = torch.randn(9, 3, 16, dtype=torch.float64)
    pair, first = edge_pairs(ei, 9)
    dx, dvec = layer(x, vec, ei, length, rbf(length), unit)
    dx_p, dvec_p = layer(x, vec, ei, length, rbf(length[first]), unit, edge_pair=pair)
    assert torch.allclose(dx, dx_p, atol=1e-12) and torch.allclose(dvec, dvec_p, atol=1e-12)


def test_compiled_model_matches_eager_outputs_forces_and_gradients():
    """model.compile() compiles the per-edge hot path; numbers match eager to float32 rounding."""
    pytest.importorskip("torch._inductor")
    inductor = torch._dynamo.lookup_backend("inductor")
    graphs: list[torch.fx.GraphModule] = []

    def counting_inductor(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        # A backend of its own, so that nothing compiled by other tests is reused: every graph
        # the compiled model runs must pass through here.
        graphs.append(gm)
        return inductor(gm, example_inputs)

    torch.manual_seed(0)
    eager = build_model("et-small", **TINY)
    compiled = build_model("et-small", **TINY)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile(backend=counting_inductor)
    assert compiled.representation.attention_layers[0]._compile_options is not None
    assert not graphs  # torch.compile is lazy: nothing compiled before the first call

    def close(a, b, rtol=1e-4):
        return torch.allclose(a, b, rtol=rtol, atol=1e-5)

    for sizes in ((3, 7, 12), (5, 9), (4, 6, 8, 11)):  # new sizes: dynamic shapes
        z, pos, batch = batch_of([random_molecule(n, seed=n) for n in sizes])
        # training step (parameter gradients) through the compiled forward and backward
        grads = []
        for model in (eager, compiled):
            model.train().zero_grad()
            model(z, pos, batch).square().sum().backward()
            grads.append(
                torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            )
        assert close(grads[0], grads[1], rtol=1e-3)
        # the calls compiled the per-edge hot path: every graph holds its messages' scatters
        assert graphs and all("scatter_sum" in str(gm.graph) for gm in graphs)
        # forces at inference: one backward, through compiled code
        for model in (eager, compiled):
            model.eval().derivative = True
        (y0, f0), (y1, f1) = eager(z, pos, batch), compiled(z, pos, batch)
        assert close(y0, y1) and close(f0, f1)
        # training on forces differentiates twice: the compiled model falls back to eager
        for model in (eager, compiled):
            model.train()
        f_loss = [model(z, pos, batch)[1].square().sum() for model in (eager, compiled)]
        g0, g1 = (torch.autograd.grad(f, list(m.parameters()), allow_unused=True)
                  for f, m in zip(f_loss, (eager, compiled), strict=True))  # fmt: skip
        for a, b in zip(g0, g1, strict=True):
            assert (a is None and b is None) or close(a, b, rtol=1e-3)
        for model in (eager, compiled):
            model.derivative = False


def test_train_config_compile_compiles_the_model(tiny_qm9):
    from molgnn.training import TrainConfig, Trainer

    config = TrainConfig(model={"preset": "et-small", **TINY}, subset=20, compile=True,
                         data_root=str(tiny_qm9), out_dir=str(tiny_qm9.parent / "run"))  # fmt: skip
    trainer = Trainer(config, progress=False)
    assert trainer.model.representation.attention_layers[0]._compile_options is not None


def test_skipping_unused_vectors_changes_nothing_else():
    """vectors=False (a scalar head) skips the last vector update; the scalars are unchanged."""
    torch.manual_seed(0)
    model = build_model("et-small", **TINY, head="scalar").double()
    z, pos, batch = batch_of([random_molecule(n, seed=n, dtype=torch.float64) for n in (4, 9)])
    rep = model.representation
    x_full, vec = rep(z, pos, batch)
    x_skip, none = rep(z, pos, batch, vectors=False)
    assert none is None and vec.shape == (13, 3, 16)
    assert torch.allclose(x_full, x_skip, atol=1e-12)
    assert not model.head.uses_vectors  # the Scalar head: MolecularModel asks for no vectors
    expected = model.head.post_reduce(model.head.reduce(model.head.pre_reduce(
        x_full, vec, z, pos, batch), batch, 2)) * model.std + model.mean  # fmt: skip
    assert torch.allclose(model(z, pos, batch), expected, atol=1e-12)


def test_neighbor_embedding_ignores_self_loops():
    from molgnn.nn import NeighborEmbedding

    torch.manual_seed(0)
    emb = NeighborEmbedding(8, 4).double()
    z = torch.tensor([1, 6, 8])
    pos = torch.tensor([[0.0, 0, 0], [1.1, 0, 0], [0, 1.3, 0]], dtype=torch.float64)
    x = torch.randn(3, 8, dtype=torch.float64)
    rbf = ExpNormalSmearing(0.0, 5.0, 4, trainable=False).double()
    with_loops = radius_graph(pos, 5.0, loop=True)
    without = radius_graph(pos, 5.0, loop=False)
    out = []
    for ei in (with_loops, without):
        length, _ = edge_geometry(pos, ei)
        out.append(emb(z, x, ei, length, rbf(length)))
    assert torch.allclose(out[0], out[1], atol=1e-12)
