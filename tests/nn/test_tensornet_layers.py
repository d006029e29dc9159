"""TensorNet's layers: the tensor algebra, equivariance of every layer, and the update rules.

``molgnn.testing`` checks scalars and vectors; a rank-2 feature :math:`X` is checked through
its contractions :math:`X \\mathbf{u}_k` with three equivariant vectors of the molecule
(:func:`frame`): if :math:`X' R \\mathbf{u}_k = R X \\mathbf{u}_k` for three independent
:math:`\\mathbf{u}_k`, then :math:`X' = R X R^\\top`. TensorNet's antisymmetric part is built
from polar vectors, so under a reflection it flips relative to a true tensor: its axial vector
is checked as a polar vector (``atom_vector``), the scalar and symmetric parts as true tensors.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from molgnn.models.equivariant_transformer import edge_geometry, edge_pairs
from molgnn.models.tensornet import TensorNet
from molgnn.nn.tensornet import TensorEmbedding, TensorInteraction
from molgnn.nn.tensors import (
    TensorLinear,
    channel_matmul,
    compose,
    decompose,
    scalar_tensor,
    skew,
    skew_vector,
    squared_norm,
    symmetric_traceless,
    tensor_invariants,
)
from molgnn.testing import assert_equivariant, assert_invariant, molecules, random_molecule
from molgnn.transforms.random_rotation import random_orthogonal_matrix
from tests.nn.test_directed_graphs import directed_graph, incoming, lin

C, R = 8, 8  # channels, radial basis functions
SETTINGS = settings(max_examples=6, deadline=None)


# ------------------------------------------------------------------------------------------
# The tensor algebra (molgnn.nn.tensors)
# ------------------------------------------------------------------------------------------


def random_tensors(seed: int, n: int = 5, c: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    """Two random tensor features ``[n, 3, 3, c]`` and a random orthogonal matrix."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 3, c, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 3, 3, c, generator=gen, dtype=torch.float64)
    return x, y, random_orthogonal_matrix(reflect=True, generator=gen)


def conjugate(q: Tensor, x: Tensor) -> Tensor:
    """:math:`Q X Q^\\top` for every atom and channel."""
    return torch.einsum("ab,nbdc,ed->naec", q, x, q)


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_decomposition_into_irreducible_parts(seed):
    x, _, _ = random_tensors(seed)
    i, a, s = decompose(x)
    assert i.shape == (5, 4) and a.shape == s.shape == x.shape
    assert torch.allclose(compose(i, a, s), x, atol=1e-14)
    assert torch.allclose(3 * i, x.diagonal(dim1=1, dim2=2).sum(-1), atol=1e-14)
    assert torch.allclose(a, -a.transpose(1, 2)) and torch.allclose(s, s.transpose(1, 2))
    assert s.diagonal(dim1=1, dim2=2).sum(-1).abs().max() < 1e-13
    assert torch.allclose(symmetric_traceless(x), s, atol=1e-14)
    assert torch.allclose(
        scalar_tensor(i), i[:, None, None] * torch.eye(3)[None, :, :, None].double()
    )
    invariants = tensor_invariants(x)  # [3 I^2, |A|^2, |S|^2]
    by_hand = torch.cat([3 * i**2, (a**2).sum((1, 2)), (s**2).sum((1, 2))], dim=1)
    assert torch.allclose(invariants, by_hand, atol=1e-13)
    assert torch.allclose(invariants.view(5, 3, 4).sum(1), squared_norm(x), atol=1e-12)


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_parts_products_and_invariants_under_orthogonal_maps(seed):
    x, y, q = random_tensors(seed)
    moved = decompose(conjugate(q, x))
    i, a, s = decompose(x)
    assert torch.allclose(moved[0], i, atol=1e-12)
    assert torch.allclose(moved[1], conjugate(q, a), atol=1e-12)
    assert torch.allclose(moved[2], conjugate(q, s), atol=1e-12)
    assert torch.allclose(tensor_invariants(conjugate(q, x)), tensor_invariants(x), atol=1e-12)
    product = channel_matmul(x, y)
    assert torch.allclose(product, torch.einsum("nakc,nkbc->nabc", x, y), atol=1e-13)
    assert torch.allclose(
        channel_matmul(conjugate(q, x), conjugate(q, y)), conjugate(q, product), atol=1e-12
    )


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_skew_tensors_are_cross_products(seed):
    x, _, q = random_tensors(seed)
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)
    u = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)
    a = skew(v)
    assert torch.allclose(torch.einsum("nabc,nbc->nac", a, u), torch.cross(v, u, dim=1))
    assert torch.allclose(skew_vector(a), v, atol=1e-14)
    assert torch.allclose(skew(skew_vector(x)), decompose(x)[1], atol=1e-14)
    # A polar vector's skew tensor is a pseudotensor: det(Q) Q [v]x Q^T = [Q v]x.
    moved = skew(torch.einsum("ab,nbc->nac", q, v))
    assert torch.allclose(moved, torch.det(q) * conjugate(q, a), atol=1e-12)


def test_tensor_linear_mixes_channels_part_by_part():
    x, _, q = random_tensors(3)
    layer = TensorLinear(4, 6).double()
    i, a, s = layer(*decompose(x))
    parts = decompose(x)
    for got, weight, part in zip(
        (i, a, s), (layer.lin_i, layer.lin_a, layer.lin_s), parts, strict=True
    ):
        assert torch.allclose(got, part @ weight.weight.T, atol=1e-13)
        assert weight.bias is None
    moved = layer(*decompose(conjugate(q, x)))
    assert torch.allclose(compose(*moved), conjugate(q, compose(i, a, s)), atol=1e-12)
    assert "TensorLinear(4, 6)" in repr(layer)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\[\*, 3, 3, C\]"):
        decompose(torch.zeros(4, 3, 8))
    with pytest.raises(ValueError, match=r"\[\*, 3, C\]"):
        skew(torch.zeros(4, 2, 8))
    with pytest.raises(ValueError, match="equivariance_invariance_group"):
        TensorInteraction(C, R, equivariance_invariance_group="O(2)")
    emb = TensorEmbedding(C, R)
    with pytest.raises(ValueError, match="pass edge_pair"):
        edges = torch.zeros(2, 3, dtype=torch.long)
        emb(
            torch.zeros(1, dtype=torch.long),
            edges,
            torch.ones(3),
            torch.zeros(3, 3),
            torch.ones(2, R),
        )
    layer = TensorInteraction(C, R)
    with pytest.raises(ValueError, match=r"\[N, 3, 3, 8\]"):
        layer(
            torch.zeros(3, 3, 3, 4),
            torch.zeros(2, 1, dtype=torch.long),
            torch.ones(1),
            torch.ones(1, R),
        )


# ------------------------------------------------------------------------------------------
# Equivariance of the layers (molgnn.testing with hypothesis molecules)
# ------------------------------------------------------------------------------------------


def frame(z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
    """Three polar vectors per molecule, ``[N, 3, 3]`` (vector k at ``[:, :, k]``), invariant
    under translations and atom permutations: sums of the atoms' offsets from the centroid with
    weights z, |r - c|^2 and z |r - c|."""
    num = int(batch.max()) + 1
    count = torch.bincount(batch, minlength=num).to(pos.dtype)
    centre = torch.zeros(num, 3, dtype=pos.dtype).index_add_(0, batch, pos) / count[:, None]
    offset = pos - centre[batch]  # [N, 3]
    radius = offset.norm(dim=1)
    weights = torch.stack([z.to(pos.dtype), radius**2, z.to(pos.dtype) * radius], dim=1)
    u = torch.zeros(num, 3, 3, dtype=pos.dtype)
    u.index_add_(0, batch, offset.unsqueeze(2) * weights.unsqueeze(1))
    return u[batch]


def contract(x: Tensor, u: Tensor) -> Tensor:
    """:math:`X \\mathbf{u}_k` for the three frame vectors: ``[N, 3, 3 C]`` of vectors."""
    return torch.einsum("nabc,nbk->nakc", x, u).flatten(2)


def parts(x: Tensor, z: Tensor, pos: Tensor, batch: Tensor) -> dict[str, Tensor]:
    u = frame(z, pos, batch)
    i, a, s = decompose(x)
    return {
        "I": i,
        "axial": skew_vector(a),
        "S u": contract(s, u),
        "invariants": tensor_invariants(x),
        "X u": contract(x, u),
    }


#: The parts' kinds under rotations and reflections (the O(3) layers). "X u" is checked under
#: rotations alone: the antisymmetric part makes X itself a mixed-parity tensor.
O3_KINDS = {
    "I": "atom_scalar",
    "axial": "atom_vector",
    "S u": "atom_vector",
    "invariants": "atom_scalar",
}


def small_net(group: str = "O(3)", seed: int = 0, num_layers: int = 2) -> TensorNet:
    """A float64 TensorNet with standard-normal weights: large enough that every term (the
    SO(3) variant's parity-odd part too) is far above rounding."""
    net = TensorNet(C, num_layers, R, equivariance_invariance_group=group).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "distance_expansion" not in name:  # keep the radial basis well-formed
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return net.eval()


def graph_inputs(net: TensorNet, z, pos, batch):
    edge_index = net.graph(z, pos, batch)
    length, unit = edge_geometry(pos, edge_index)
    return edge_index, length, -unit, net.distance_expansion(length)


def embedded(net: TensorNet, z, pos, batch) -> Tensor:
    edge_index, length, toward, rbf = graph_inputs(net, z, pos, batch)
    return net.tensor_embedding(z, edge_index, length, toward, rbf)


def interacted(net: TensorNet, z, pos, batch) -> Tensor:
    x = embedded(net, z, pos, batch)
    edge_index, length, _, rbf = graph_inputs(net, z, pos, batch)
    for layer in net.layers:
        x = layer(x, edge_index, length, rbf)
    return x


def check_parts(make, net: TensorNet, mol, reflections: bool) -> None:
    """X u under rotations; with ``reflections``, the parts under rotations and reflections."""

    def everything(z, pos, batch):
        return parts(make(net, z, pos, batch), z, pos, batch)

    def without_x(z, pos, batch):
        return {k: v for k, v in everything(z, pos, batch).items() if k != "X u"}

    values = everything(mol.z, mol.pos, torch.zeros_like(mol.z))
    assert all(v.abs().max() > 1e-6 for v in values.values())  # nothing vanishes trivially
    kinds = {**O3_KINDS, "X u": "atom_vector"}
    assert_equivariant(everything, mol.z, mol.pos, kinds=kinds, reflections=False, trials=3)
    if reflections:
        assert_equivariant(without_x, mol.z, mol.pos, kinds=O3_KINDS, trials=4)


@SETTINGS
@given(molecules(4, 14, dtype=torch.float64))
def test_embedding_is_o3_equivariant(mol):
    check_parts(embedded, small_net(), mol, reflections=True)


@SETTINGS
@given(molecules(4, 14, dtype=torch.float64))
def test_o3_interaction_is_o3_equivariant(mol):
    check_parts(interacted, small_net("O(3)"), mol, reflections=True)


@SETTINGS
@given(molecules(4, 14, dtype=torch.float64))
def test_so3_interaction_is_rotation_equivariant(mol):
    check_parts(interacted, small_net("SO(3)"), mol, reflections=False)


@SETTINGS
@given(molecules(3, 14, dtype=torch.float64))
def test_representation_invariants(mol):
    """O(3): invariant under every operation; SO(3): under rotations, not reflections."""
    for group, reflections in (("O(3)", True), ("SO(3)", False)):
        net = small_net(group)
        assert_invariant(
            lambda z, pos, batch: net(z, pos, batch)[0],  # noqa: B023
            mol.z,
            mol.pos,
            per_atom=True,
            reflections=reflections,
            trials=4,
        )


def mirror_parts(net: TensorNet, z, pos, batch) -> dict[str, Tensor]:
    """The parity-even and parity-odd parts of the scalar output, under the inversion."""
    x, mirrored = net(z, pos, batch)[0], net(z, -pos, batch)[0]
    even, odd = (x + mirrored) / 2, (x - mirrored) / 2  # [N, C]
    centre = pos - pos.mean(0)  # [N, 3], polar
    return {"even": even, "odd": odd, "odd r": odd.unsqueeze(1) * centre.unsqueeze(2)}


@SETTINGS
@given(molecules(5, 14, dtype=torch.float64))
def test_so3_variant_has_pseudoscalar_part_with_the_right_sign(mol):
    """SO(3) outputs split into a true scalar and a pseudoscalar that flips under reflections
    (checked as pseudoscalar times a polar vector, an ``atom_pseudovector``); the O(3) variant
    has no pseudoscalar part."""
    so3 = small_net("SO(3)")
    z, pos = mol.z, mol.pos
    batch = torch.zeros_like(z)

    def signed(z, pos, batch):
        return {k: v for k, v in mirror_parts(so3, z, pos, batch).items() if k != "odd"}

    rotations = {"even": "atom_scalar", "odd": "atom_scalar", "odd r": "atom_pseudovector"}
    assert_equivariant(
        lambda z, pos, batch: mirror_parts(so3, z, pos, batch),
        z,
        pos,
        kinds=rotations,
        reflections=False,
    )
    kinds = {"even": "atom_scalar", "odd r": "atom_pseudovector"}
    assert_equivariant(signed, z, pos, kinds=kinds, trials=4)
    odd = mirror_parts(so3, z, pos, batch)["odd"]
    assert odd.abs().max() > 1e-6  # a random molecule is chiral: SO(3) tells the mirror apart
    with pytest.raises(AssertionError, match="not atom_scalar-equivariant"):
        # rotations off: the second trial is the inversion
        assert_invariant(
            lambda z, pos, b: so3(z, pos, b)[0], z, pos, per_atom=True, rotations=False, trials=2
        )
    o3 = small_net("O(3)")
    assert mirror_parts(o3, z, pos, batch)["odd"].abs().max() < 1e-12


# ------------------------------------------------------------------------------------------
# The documented update rules, over a directed graph (messages j -> i)
# ------------------------------------------------------------------------------------------


def cross_matrix(v: Tensor) -> Tensor:
    zero = torch.zeros((), dtype=v.dtype)
    return torch.stack(
        [
            torch.stack([zero, -v[2], v[1]]),
            torch.stack([v[2], zero, -v[0]]),
            torch.stack([-v[1], v[0], zero]),
        ]
    )


def split(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One atom's ``[3, 3, C]`` into I ``[C]``, A, S by the definitions."""
    i = torch.einsum("aac->c", x) / 3
    a = (x - x.transpose(0, 1)) / 2
    s = (x + x.transpose(0, 1)) / 2 - i * torch.eye(3, dtype=x.dtype)[..., None]
    return i, a, s


def mix(layer: torch.nn.Linear, t: Tensor) -> Tensor:
    return t @ layer.weight.T


def matmul(x: Tensor, y: Tensor) -> Tensor:
    return torch.einsum("akc,kbc->abc", x, y)


def ref_embedding(emb: TensorEmbedding, rbf, z, pos, edge_index) -> Tensor:
    """TensorEmbedding's docstring, atom by atom over the incoming edges j -> i."""
    c, eye = emb.hidden_channels, torch.eye(3, dtype=pos.dtype)
    u = emb.embedding.weight
    out = []
    for i in range(z.numel()):
        total = torch.zeros(3, 3, c, dtype=pos.dtype)
        for j in incoming(edge_index, i):
            r = pos[i] - pos[j]  # from the neighbour to the centre
            d = r.norm()
            rhat = r / d if i != j else torch.zeros(3, dtype=pos.dtype)
            pair = lin(emb.pair_proj, torch.cat([u[z[i]], u[z[j]]]))
            f = lin(emb.distance_proj, rbf(d.view(1))[0]).view(3, c) * emb.cutoff(d) * pair
            sym = torch.outer(rhat, rhat) - rhat.dot(rhat) / 3 * eye
            total = total + f[0] * eye[..., None] + f[1] * cross_matrix(rhat)[..., None]
            total = total + f[2] * sym[..., None]
        i_part, a_part, s_part = split(total)
        norm = F.layer_norm((total**2).sum((0, 1)), (c,), emb.init_norm.weight, emb.init_norm.bias)
        gate = emb.gate_mlp(norm).view(3, c)
        lins = emb.tensor_linear
        out.append(
            gate[0] * mix(lins.lin_i, i_part) * eye[..., None]
            + gate[1] * mix(lins.lin_a, a_part)
            + gate[2] * mix(lins.lin_s, s_part)
        )
    return torch.stack(out)


def ref_interaction(layer: TensorInteraction, rbf, x, pos, edge_index) -> Tensor:
    """TensorInteraction's docstring, atom by atom over the incoming edges j -> i."""
    c, eye = layer.hidden_channels, torch.eye(3, dtype=pos.dtype)[..., None]
    x = x / ((x**2).sum((1, 2)) + 1)[:, None, None]
    ys = []
    for n in range(x.size(0)):
        i_part, a_part, s_part = split(x[n])
        ys.append(
            (
                mix(layer.linear_in.lin_i, i_part),
                mix(layer.linear_in.lin_a, a_part),
                mix(layer.linear_in.lin_s, s_part),
            )
        )
    out = []
    for i in range(x.size(0)):
        message = torch.zeros(3, 3, c, dtype=x.dtype)
        for j in incoming(edge_index, i):
            d = (pos[i] - pos[j]).norm()
            f = layer.distance_mlp(rbf(d.view(1)))[0].view(3, c) * layer.cutoff(d)
            yi, ya, ys_ = ys[j]
            message = message + f[0] * yi * eye + f[1] * ya + f[2] * ys_
        y = ys[i][0] * eye + ys[i][1] + ys[i][2]
        if layer.equivariance_invariance_group == "O(3)":
            product = matmul(y, message) + matmul(message, y)
        else:
            product = 2 * matmul(y, message)
        i_part, a_part, s_part = split(product)
        scale = 1 / ((product**2).sum((0, 1)) + 1)
        dx = (
            mix(layer.linear_out.lin_i, i_part * scale) * eye
            + mix(layer.linear_out.lin_a, a_part * scale)
            + mix(layer.linear_out.lin_s, s_part * scale)
        )
        out.append(x[i] + dx + matmul(dx, dx))
    return torch.stack(out)


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
@pytest.mark.parametrize("pairs", [False, True])
def test_layers_follow_their_update_rules_on_a_directed_graph(group, pairs):
    z, pos, _, edge_index = directed_graph()
    net = small_net(group, seed=3, num_layers=1)
    emb, layer, rbf = net.tensor_embedding, net.layers[0], net.distance_expansion
    length, unit = edge_geometry(pos, edge_index)
    if pairs:  # one radial basis row per unordered pair
        pair, first = edge_pairs(edge_index, pos.size(0))
        attr, extra = rbf(length[first]), {"edge_pair": pair}
    else:
        attr, extra = rbf(length), {}
    x = emb(z, edge_index, length, -unit, attr, **extra)
    assert torch.allclose(x, ref_embedding(emb, rbf, z, pos, edge_index), atol=1e-10)
    updated = layer(x, edge_index, length, attr, **extra)
    assert torch.allclose(updated, ref_interaction(layer, rbf, x, pos, edge_index), atol=1e-10)
    # The direction matters: the reversed graph gives other features.
    flipped = emb(z, edge_index.flip(0), length, unit, attr, **extra)
    assert not torch.allclose(flipped, x, atol=1e-4)


def test_self_loops_add_to_the_scalar_part_only():
    net = small_net(seed=5)
    z = torch.tensor([6])
    pos = torch.zeros(1, 3, dtype=torch.float64)
    x = embedded(net, z, pos, torch.zeros(1, dtype=torch.long))
    i, a, s = decompose(x)
    # decompose rounds tr(X) / 3, so S is zero to float64 rounding of I's size
    size = float(i.abs().max())
    assert size > 1e-3 and a.abs().max() < 1e-15 * size and s.abs().max() < 1e-15 * size


def test_repr_shows_the_hyperparameters():
    net = TensorNet(16, 2, 8, equivariance_invariance_group="SO(3)")
    assert "equivariance_invariance_group='SO(3)'" in repr(net)
    assert "TensorInteraction(hidden_channels=16, num_rbf=8" in repr(net.layers[0])
    assert "TensorEmbedding(hidden_channels=16, num_rbf=8, max_z=100)" in repr(net.tensor_embedding)


def test_batched_molecules_do_not_mix():
    """A batch gives each molecule what it gets alone (the layers never mix molecules)."""
    net = small_net("SO(3)", seed=2)
    a, b = (
        random_molecule(6, seed=1, dtype=torch.float64),
        random_molecule(9, seed=2, dtype=torch.float64),
    )
    z = torch.cat([a.z, b.z])
    pos = torch.cat([a.pos, b.pos])
    batch = torch.cat([torch.zeros(6, dtype=torch.long), torch.ones(9, dtype=torch.long)])
    together = net(z, pos, batch)[0]
    alone = torch.cat([net(m.z, m.pos, torch.zeros_like(m.z))[0] for m in (a, b)])
    assert torch.allclose(together, alone, atol=1e-12)


def test_tensornet_follows_a_given_directed_graph():
    """The whole representation on a given ``edge_index``: its self loops are replaced by one
    per atom, and the layers run over the directed edges as the references above do."""
    z, pos, batch, edge_index = directed_graph()
    net = small_net("SO(3)", seed=4)
    x, vec = net(z, pos, batch, edge_index)
    assert vec is None
    n = z.numel()
    loops = torch.arange(n).repeat(2, 1)
    graph = torch.cat([edge_index[:, edge_index[0] != edge_index[1]], loops], dim=1)
    rbf = net.distance_expansion
    features = ref_embedding(net.tensor_embedding, rbf, z, pos, graph)
    for layer in net.layers:
        features = ref_interaction(layer, rbf, features, pos, graph)
    invariants = []
    for atom in range(n):
        i_part, a_part, s_part = split(features[atom])
        invariants.append(
            torch.cat([3 * i_part**2, (a_part**2).sum((0, 1)), (s_part**2).sum((0, 1))])
        )
    norm = net.out_norm
    expected = net.act(
        net.linear(F.layer_norm(torch.stack(invariants), (3 * C,), norm.weight, norm.bias))
    )
    assert torch.allclose(x, expected, atol=1e-10)
