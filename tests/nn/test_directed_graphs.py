"""Every layer and model sends messages from ``edge_index[0]`` (j) to ``edge_index[1]`` (i).

On a symmetric radius graph the direction is invisible, so each layer and model that accepts an
``edge_index`` gets a directed one here: a radius graph with some edges removed in one direction
only. Its output is compared with a plain reference of the layer's documented update rule,
written as Python loops over the target atoms and their incoming edges, in float64.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molgnn.models import (
    PRESETS,
    EquivariantTransformer,
    PooledGNN,
    PooledGNNConfig,
    build_model,
    edge_geometry,
    edge_pairs,
)
from molgnn.nn import (
    CONVS,
    EquivariantMultiHeadAttention,
    ExpNormalSmearing,
    NeighborEmbedding,
    radius_graph,
)
from molgnn.testing import batch_of, random_molecule

C, H, R = 16, 4, 8  # channels, heads, radial basis functions
ET_SMALL = dict(hidden_channels=C, num_layers=2, num_heads=H, num_rbf=R)
POOLED_SMALL = dict(hidden_channels=C, num_layers=2, num_rbf=R)
ATOL = 1e-10


# ------------------------------------------------------------------------------------------
# The directed graph and plain helpers
# ------------------------------------------------------------------------------------------


def directed_graph() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``z, pos, batch, edge_index`` of two molecules (float64) with a directed graph.

    The 3 Å radius graph loses the edge ``j -> i`` (but keeps ``i -> j``) for about half of the
    pairs, and every edge into atom 0, which keeps its outgoing ones; atoms 2 and 9 get a self
    loop.
    """
    mols = [random_molecule(n, seed=s, dtype=torch.float64) for n, s in ((8, 1), (11, 2))]
    z, pos, batch = batch_of(mols)
    src, dst = radius_graph(pos, 3.0, batch, max_num_neighbors=None)
    drop = ((src < dst) & ((src + dst) % 2 == 0)) | (dst == 0)
    src, dst = src[~drop], dst[~drop]
    loops = torch.tensor([2, 9])
    edge_index = torch.stack([torch.cat([src, loops]), torch.cat([dst, loops])])
    pairs = {(int(j), int(i)) for j, i in edge_index.T}
    one_way = [(j, i) for j, i in pairs if (i, j) not in pairs]
    assert len(one_way) >= 10 and (0, 0) not in pairs  # really directed
    assert any(j == 0 for j, _ in pairs) and not any(i == 0 for _, i in pairs)
    return z, pos, batch, edge_index


def incoming(edge_index: Tensor, i: int) -> list[int]:
    """Sources ``j`` of the edges ``j -> i``, in edge order."""
    return [int(j) for j, t in edge_index.T if int(t) == i]


def lin(layer: nn.Linear, v: Tensor) -> Tensor:
    """``W v + b`` of one vector."""
    out = layer.weight @ v
    return out if layer.bias is None else out + layer.bias


def geometry(pos: Tensor, i: int, j: int) -> tuple[Tensor, Tensor]:
    """Distance ``d_ij`` and unit vector from atom ``i`` to its neighbour ``j`` (zero for i = j)."""
    r = pos[j] - pos[i]
    d = r.norm()
    return d, (r / d if i != j else torch.zeros(3, dtype=pos.dtype))


def reversed_graph(edge_index: Tensor) -> Tensor:
    return edge_index.flip(0)


# ------------------------------------------------------------------------------------------
# References, one per documented update rule
# ------------------------------------------------------------------------------------------


def ref_neighbor_embedding(
    emb: NeighborEmbedding, rbf: nn.Module, z: Tensor, x: Tensor, pos: Tensor, edge_index: Tensor
) -> Tensor:
    """x_i <- W_c [x_i, sum_{j -> i, j != i} (W_d e(d_ij) f_cut(d_ij)) * u(z_j)]."""
    rows = []
    for i in range(z.numel()):
        total = torch.zeros(emb.hidden_channels, dtype=x.dtype)
        for j in incoming(edge_index, i):
            if j == i:
                continue  # self loops are ignored
            d, _ = geometry(pos, i, j)
            filt = lin(emb.distance_proj, rbf(d.view(1))[0]) * emb.cutoff(d)
            total = total + filt * emb.embedding.weight[z[j]]
        rows.append(lin(emb.combine, torch.cat([x[i], total])))
    return torch.stack(rows)


def ref_attention(
    layer: EquivariantMultiHeadAttention,
    rbf: nn.Module,
    x: Tensor,
    vec: Tensor,
    pos: Tensor,
    edge_index: Tensor,
) -> tuple[Tensor, Tensor]:
    """The ET update of the layer's docstring, atom by atom over incoming edges j -> i."""
    c, h, dh = layer.hidden_channels, layer.num_heads, layer.head_dim
    if layer.layer_norm:
        norm = layer.layernorm
        x = F.layer_norm(x, (c,), norm.weight, norm.bias, norm.eps)
    dxs, dvecs = [], []
    for i in range(x.size(0)):
        q_i = lin(layer.q_proj, x[i])
        y = torch.zeros(c, dtype=x.dtype)
        w = torch.zeros(3, c, dtype=x.dtype)
        for j in incoming(edge_index, i):
            d, unit = geometry(pos, i, j)  # r_ij: from i to its neighbour j
            basis = rbf(d.view(1))[0]
            k_j = lin(layer.k_proj, x[j])
            v_j = lin(layer.v_proj, x[j]).view(h, 3, dh)  # per head: s1, s2, s3 blocks
            if layer.dk_proj is not None:
                k_j = k_j * layer.act(lin(layer.dk_proj, basis))
            if layer.dv_proj is not None:
                v_j = v_j * layer.act(lin(layer.dv_proj, basis)).view(h, 3, dh)
            s1, s2, s3 = (v_j[:, b].reshape(c) for b in range(3))
            cut = layer.cutoff(d)
            a = layer.attn_activation((q_i * k_j).view(h, dh).sum(-1)) * cut  # [H]
            y = y + (a.unsqueeze(1) * s1.view(h, dh)).reshape(c)
            message = vec[j] * s2 + unit.unsqueeze(1) * s3  # [3, C]
            w = w + (message * cut if layer.vector_cutoff else message)
        o1, o2, o3 = lin(layer.o_proj, y).split(c)
        u1, u2, u3 = (vec[i] @ layer.vec_proj.weight.T).split(c, dim=-1)  # [3, C] each
        dxs.append((u1 * u2).sum(0) * o2 + o3)
        dvecs.append(u3 * o1 + w)
    return torch.stack(dxs), torch.stack(dvecs)


def ref_et(et: EquivariantTransformer, z: Tensor, pos: Tensor, edge_index: Tensor):
    """The ET: the given edges inside the cutoffs, minus self loops, plus one loop per atom."""
    kept = []
    for j, i in edge_index.T.tolist():
        d, _ = geometry(pos, i, j)
        if j != i and et.cutoff_lower <= float(d.detach()) < et.cutoff_upper:
            kept.append((j, i))
    kept += [(i, i) for i in range(z.numel())]
    graph = torch.tensor(kept).T
    x = et.embedding.weight[z]
    if et.neighbor_embedding is not None:
        x = ref_neighbor_embedding(et.neighbor_embedding, et.distance_expansion, z, x, pos, graph)
    vec = torch.zeros(z.numel(), 3, et.hidden_channels, dtype=x.dtype)
    for layer in et.attention_layers:
        dx, dvec = ref_attention(layer, et.distance_expansion, x, vec, pos, graph)
        x, vec = x + dx, vec + dvec
    norm = et.out_norm
    return F.layer_norm(x, (et.hidden_channels,), norm.weight, norm.bias, norm.eps), vec


def _mean(rows: list[Tensor], width: int, dtype: torch.dtype) -> Tensor:
    return torch.stack(rows).mean(0) if rows else torch.zeros(width, dtype=dtype)


def ref_conv(kind: str, conv: nn.Module, x: Tensor, edge_index: Tensor, attr: Tensor) -> Tensor:
    """PyG's documented update of each conv, over the incoming edges j -> i (attr: e_ji)."""
    n, f = x.shape
    into = {i: [(e, int(edge_index[0, e])) for e in range(edge_index.size(1))
                if int(edge_index[1, e]) == i] for i in range(n)}  # fmt: skip
    rows = []
    for i in range(n):
        edges = into[i]
        if kind == "gine":  # nn((1 + eps) x_i + sum_j relu(x_j + W e_ji))
            total = (1 + conv.eps) * x[i]
            for e, j in edges:
                total = total + torch.relu(x[j] + lin(conv.lin, attr[e]))
            rows.append(conv.nn(total))
        elif kind == "nnconv":  # W x_i + b + mean_j x_j Theta(e_ji)
            messages = [x[j] @ conv.nn(attr[e]).view(f, -1) for e, j in edges]
            out = conv.lin(x[i]) + _mean(messages, conv.out_channels, x.dtype)
            rows.append(out + conv.bias)
        elif kind == "gatv2":  # sum_j alpha_ij W_l x_j over j -> i plus a self loop
            heads, out_ch = conv.heads, conv.out_channels
            others = [(e, j) for e, j in edges if j != i]
            loop_attr = _mean([attr[e] for e, _ in others], attr.size(1), x.dtype)
            terms = [(attr[e], j) for e, j in others] + [(loop_attr, i)]
            x_r = lin(conv.lin_r, x[i]).view(heads, out_ch)
            scores, values = [], []
            for a, j in terms:
                x_l = lin(conv.lin_l, x[j]).view(heads, out_ch)
                hidden = F.leaky_relu(x_r + x_l + (conv.lin_edge.weight @ a).view(heads, out_ch),
                                      conv.negative_slope)  # fmt: skip
                scores.append((hidden * conv.att[0]).sum(-1))  # [heads]
                values.append(x_l)
            alpha = torch.softmax(torch.stack(scores), dim=0)  # over the incoming edges
            out = (alpha.unsqueeze(-1) * torch.stack(values)).sum(0).reshape(-1)
            rows.append(out + conv.bias)
        else:  # pna: mean/min/max/std of pre([x_i, x_j, enc(e_ji)]), degree-scaled, then post
            msgs = [conv.pre_nns[0](torch.cat([x[i], x[j], lin(conv.edge_encoder, attr[e])]))
                    for e, j in edges]  # fmt: skip
            zero = torch.zeros(f, dtype=x.dtype)
            if msgs:
                stack = torch.stack(msgs)
                mean, low, high = stack.mean(0), stack.min(0).values, stack.max(0).values
                var = (stack * stack).mean(0) - mean * mean
            else:
                mean = low = high = var = zero
            std = torch.where(var > 1e-5, var.clamp(min=1e-5).sqrt(), zero)
            aggregated = torch.cat([mean, low, high, std])
            deg, avg = len(edges), conv.aggr_module.avg_deg_log
            scaled = [aggregated, aggregated * math.log(deg + 1) / avg,
                      aggregated * avg / math.log(max(deg, 1) + 1)]  # fmt: skip
            rows.append(conv.lin(conv.post_nns[0](torch.cat([x[i], *scaled]))))
    return torch.stack(rows)


def ref_pooled_gnn(enc, z: Tensor, pos: Tensor, edge_index: Tensor) -> Tensor:
    """x_i <- x_i + act(norm(conv(x, e)_i)), each conv by :func:`ref_conv`."""
    attr = enc.edge_attr(z, pos, edge_index)  # per-edge distances: the same in both directions
    x = enc.embed(z)
    for conv, norm in zip(enc.convs, enc.norms, strict=True):
        x = x + enc.act(norm(ref_conv(enc.conv, conv, x, edge_index, attr)))
    return x


class Reference(nn.Module):
    """A representation computed by the references, to swap into a whole model."""

    def __init__(self, representation: nn.Module) -> None:
        super().__init__()
        self.inner = representation

    def forward(self, z, pos, batch, edge_index=None, edge_weight=None, edge_vec=None):
        assert edge_index is not None
        if isinstance(self.inner, EquivariantTransformer):
            return ref_et(self.inner, z, pos, edge_index)
        return ref_pooled_gnn(self.inner, z, pos, edge_index), None


def with_reference(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model)
    ref.representation = Reference(ref.representation)
    return ref


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and biases everywhere (zero biases would hide terms), in float64."""
    gen = torch.Generator().manual_seed(seed)
    module.double()
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "expansion" not in name:  # keep the radial basis well-formed
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    return module.eval()


def close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=ATOL, rtol=1e-9)


# ------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pairs", [False, True])
def test_neighbor_embedding_sums_the_incoming_edges(pairs):
    z, pos, _, edge_index = directed_graph()
    emb = randomize(NeighborEmbedding(C, R, 0.0, 5.0))
    rbf = ExpNormalSmearing(0.0, 5.0, R, trainable=False).double()
    x = torch.randn(z.numel(), C, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    length, _ = edge_geometry(pos, edge_index)
    if pairs:  # the ET's per-pair distance table
        pair, first = edge_pairs(edge_index, z.numel())
        out = emb(z, x, edge_index, length, rbf(length[first]), edge_pair=pair)
    else:
        out = emb(z, x, edge_index, length, rbf(length))
    expected = ref_neighbor_embedding(emb, rbf, z, x, pos, edge_index)
    assert close(out, expected)
    # the direction matters on this graph: the reversed one gives other numbers
    flipped = ref_neighbor_embedding(emb, rbf, z, x, pos, reversed_graph(edge_index))
    assert not torch.allclose(expected, flipped, atol=1e-3)


@pytest.mark.parametrize(
    ("influence", "vector_cutoff", "zero_vectors"),
    [("both", True, False), ("keys", False, False), ("values", True, True), ("none", False, True)],
)
def test_attention_sums_the_incoming_edges(influence, vector_cutoff, zero_vectors):
    z, pos, _, edge_index = directed_graph()
    layer = randomize(
        EquivariantMultiHeadAttention(C, R, influence, num_heads=H, vector_cutoff=vector_cutoff)
    )
    rbf = ExpNormalSmearing(0.0, 5.0, R, trainable=False).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(z.numel(), C, generator=gen, dtype=torch.float64)
    vec = torch.randn(z.numel(), 3, C, generator=gen, dtype=torch.float64)
    if zero_vectors:
        vec = torch.zeros_like(vec)
    length, unit = edge_geometry(pos, edge_index)
    dx, dvec = layer(x, None if zero_vectors else vec, edge_index, length, rbf(length), unit)
    ref_dx, ref_dvec = ref_attention(layer, rbf, x, vec, pos, edge_index)
    assert close(dx, ref_dx) and close(dvec, ref_dvec)
    _, flipped_dvec = ref_attention(layer, rbf, x, vec, pos, reversed_graph(edge_index))
    assert not torch.allclose(ref_dvec, flipped_dvec, atol=1e-3)


@pytest.mark.parametrize("conv", list(CONVS))
def test_pooled_gnn_convs_sum_the_incoming_edges(conv):
    z, pos, _, edge_index = directed_graph()
    enc = randomize(PooledGNN(C, 1, conv=conv, num_rbf=R))
    layer = enc.convs[0]
    attr = enc.edge_attr(z, pos, edge_index)
    x = torch.randn(z.numel(), C, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = layer(x, edge_index, attr)
    assert close(out, ref_conv(conv, layer, x, edge_index, attr))
    flipped = ref_conv(conv, layer, x, reversed_graph(edge_index), attr)
    assert not torch.allclose(out, flipped, atol=1e-3)


# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"distance_influence": "keys", "vector_cutoff": False},
        {"rbf_type": "gauss", "cutoff_lower": 1.2, "cutoff_upper": 2.8},
        {"neighbor_embedding": False},
    ],
)
def test_et_representation_follows_the_edges(kwargs):
    z, pos, batch, edge_index = directed_graph()
    et = randomize(EquivariantTransformer(**ET_SMALL, **kwargs))
    x, vec = et(z, pos, batch, edge_index)
    ref_x, ref_vec = ref_et(et, z, pos, edge_index)
    assert close(x, ref_x) and close(vec, ref_vec)
    flipped_x, _ = ref_et(et, z, pos, reversed_graph(edge_index))
    assert not torch.allclose(ref_x, flipped_x, atol=1e-3)


def test_et_on_its_own_truncated_radius_graph():
    """With more neighbours than max_num_neighbors, the ET's own radius graph is directed too."""
    z, pos, batch, _ = directed_graph()
    et = randomize(EquivariantTransformer(**ET_SMALL, max_num_neighbors=4))
    graph = radius_graph(pos, et.cutoff_upper, batch, loop=True, max_num_neighbors=4)
    pairs = {(int(j), int(i)) for j, i in graph.T}
    assert any((i, j) not in pairs for j, i in pairs)  # j among i's nearest, i not among j's
    x, vec = et(z, pos, batch)
    ref_x, ref_vec = ref_et(et, z, pos, graph)
    assert close(x, ref_x) and close(vec, ref_vec)


def test_compiled_et_follows_the_edges():
    """The compiled hot paths (neighbour embedding and attention) give the same numbers."""
    pytest.importorskip("torch._inductor")
    z, pos, batch, edge_index = directed_graph()
    et = randomize(EquivariantTransformer(**ET_SMALL))
    et.compile()
    assert et.neighbor_embedding._compile_options is not None
    x, vec = et(z, pos, batch, edge_index)
    ref_x, ref_vec = ref_et(et, z, pos, edge_index)
    assert torch.allclose(x, ref_x, atol=1e-8) and torch.allclose(vec, ref_vec, atol=1e-8)


# TensorNet's layers are checked against loop-by-loop references of their update rules on a
# directed graph in tests/nn/test_tensornet_layers.py.
@pytest.mark.parametrize("preset", [p for p in PRESETS if PRESETS[p].kind != "tensornet"])
def test_every_preset_model_follows_the_edges(preset):
    """The whole MolecularModel (representation, head, prior), energies and forces."""
    small = POOLED_SMALL if PRESETS[preset].kind == "pooled" else ET_SMALL
    model = randomize(build_model(preset, **small, prior="atomref", derivative=True))
    z, pos, batch, edge_index = directed_graph()
    y, forces = model(z, pos, batch, edge_index)
    ref_y, ref_forces = with_reference(model)(z, pos, batch, edge_index)
    assert y.shape == (2, 1) and close(y, ref_y) and close(forces, ref_forces)
    flipped_y, _ = with_reference(model)(z, pos, batch, reversed_graph(edge_index))
    assert not torch.allclose(ref_y, flipped_y, atol=1e-4)


@pytest.mark.parametrize("conv", list(CONVS))
def test_pooled_gnn_follows_the_edges(conv):
    z, pos, batch, edge_index = directed_graph()
    model = randomize(PooledGNNConfig(**POOLED_SMALL, conv=conv, pool="sum").build())
    y = model(z, pos, batch, edge_index)
    assert close(y, with_reference(model)(z, pos, batch, edge_index))
