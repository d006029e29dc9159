import math

import pytest
import torch
from hypothesis import given, settings

from molgnn.models.equivariant_transformer import edge_geometry
from molgnn.nn import (
    Atomref,
    CosineCutoff,
    DipoleMoment,
    EquivariantDipoleMoment,
    EquivariantMultiHeadAttention,
    EquivariantScalar,
    ExpNormalSmearing,
    GatedEquivariantBlock,
    GaussianSmearing,
    NeighborEmbedding,
    Scalar,
    radius_graph,
)
from molgnn.testing import assert_equivariant, molecules, random_molecule

torch.set_default_dtype(torch.float32)


def test_cosine_cutoff_values():
    cut = CosineCutoff(0.0, 5.0)
    d = torch.tensor([0.0, 2.5, 5.0, 6.0])
    assert cut(d).tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0], abs=1e-7)
    lo = CosineCutoff(1.0, 3.0)
    assert lo(torch.tensor([0.5, 1.0, 2.0, 3.0])).tolist() == pytest.approx(
        [0.0, 0.0, 1.0, 0.0], abs=1e-7
    )
    with pytest.raises(ValueError):
        CosineCutoff(3.0, 1.0)


def test_radial_bases():
    g = GaussianSmearing(0.0, 5.0, 6, trainable=False)
    out = g(torch.tensor([1.0]))
    assert out.shape == (1, 6) and out[0, 1].item() == pytest.approx(1.0)
    assert out[0, 0].item() == pytest.approx(math.exp(-0.5))
    e = ExpNormalSmearing(0.0, 5.0, 8, trainable=True)
    vals = e(torch.tensor([0.0, 4.99, 5.0, 7.0]))
    assert vals.shape == (4, 8) and torch.all(vals[2:] == 0) and torch.all(vals[1] < 1e-3)
    assert sum(p.numel() for p in e.parameters()) == 16
    assert "num_rbf=8" in repr(e)


def _graph(mol):
    batch = torch.zeros(mol.z.numel(), dtype=torch.long)
    ei = radius_graph(mol.pos, 5.0, batch, loop=True)
    return ei, batch


@settings(max_examples=10, deadline=None)
@given(molecules(3, 12, dtype=torch.float64))
def test_attention_layer_equivariance(mol):
    torch.manual_seed(0)
    layer = EquivariantMultiHeadAttention(16, 8, "both", 4, vector_cutoff=True).double()
    rbf = ExpNormalSmearing(0.0, 5.0, 8).double()
    x0 = torch.randn(20, 16, dtype=torch.float64)
    v_dirs = torch.randn(20, 16, dtype=torch.float64)

    def fn(z, pos, batch):
        ei = radius_graph(pos, 5.0, batch, loop=True)
        length, unit = edge_geometry(pos, ei)
        x = x0[z]  # element-dependent, permutation-consistent scalars
        # equivariant starting vectors: per-atom displacement from the centroid times channel weights
        vec = (pos - pos.mean(0)).unsqueeze(2) * v_dirs[z].unsqueeze(1)
        dx, dvec = layer(x, vec, ei, length, rbf(length), unit)
        return {"dx": dx, "dvec": dvec}

    assert_equivariant(fn, mol.z, mol.pos, kinds={"dx": "atom_scalar", "dvec": "atom_vector"})


def test_attention_options_and_errors():
    mol = random_molecule(6, seed=2)
    ei, _ = _graph(mol)
    length, unit = edge_geometry(mol.pos, ei)
    for influence in ("keys", "values", "both", "none"):
        layer = EquivariantMultiHeadAttention(8, 4, influence, 2)
        dx, dvec = layer(
            torch.randn(6, 8), torch.zeros(6, 3, 8), ei, length, torch.rand(ei.size(1), 4), unit
        )
        assert dx.shape == (6, 8) and dvec.shape == (6, 3, 8)
    # layer_norm=False: the scalars go into the projections as they are
    x = torch.randn(6, 8)
    edge_attr = torch.rand(ei.size(1), 4)
    plain = EquivariantMultiHeadAttention(8, 4, "both", 2, layer_norm=False)
    normed = EquivariantMultiHeadAttention(8, 4, "both", 2)
    normed.load_state_dict(plain.state_dict(), strict=False)
    vec0 = torch.zeros(6, 3, 8)
    out_plain = plain(x, vec0, ei, length, edge_attr, unit)[0]
    out_normed = normed(x, vec0, ei, length, edge_attr, unit)[0]
    same_input = normed(normed.layernorm(x), vec0, ei, length, edge_attr, unit)[0]
    assert not torch.allclose(out_plain, out_normed)
    assert torch.allclose(
        plain(normed.layernorm(x), vec0, ei, length, edge_attr, unit)[0], same_input, atol=1e-5
    )
    assert "layer_norm=False" in repr(plain)
    with pytest.raises(ValueError, match="distance_influence"):
        EquivariantMultiHeadAttention(8, 4, "queries", 2)
    with pytest.raises(ValueError, match="divisible"):
        EquivariantMultiHeadAttention(10, 4, "both", 4)


def test_neighbor_embedding_ignores_self_loops_and_far_atoms():
    torch.manual_seed(0)
    emb = NeighborEmbedding(8, 4, 0.0, 2.0)
    z = torch.tensor([1, 6])
    x = torch.randn(2, 8)
    far = torch.tensor([[0.0, 0, 0], [3.0, 0, 0]])
    ei = torch.tensor([[0, 1, 0, 1], [1, 0, 0, 1]])
    length, _ = edge_geometry(far, ei)
    out = emb(z, x, ei, length, torch.rand(4, 4))
    alone = emb.combine(torch.cat([x, torch.zeros_like(x)], 1))
    assert torch.allclose(out, alone)  # beyond the cutoff and self loops contribute nothing


@settings(max_examples=10, deadline=None)
@given(molecules(2, 10, dtype=torch.float64))
def test_heads_and_gated_block(mol):
    torch.manual_seed(1)
    c = 8
    w = torch.randn(20, c, dtype=torch.float64)
    heads = {
        "scalar": Scalar(c).double(),
        "eq_scalar": EquivariantScalar(c).double(),
        "dipole": DipoleMoment(c).double(),
        "eq_dipole": EquivariantDipoleMoment(c).double(),
        "eq_dipole_vec": EquivariantDipoleMoment(c, vector=True).double(),
    }
    block = GatedEquivariantBlock(c, 4).double()

    def fn(z, pos, batch):
        x = w[z] * (pos - pos.mean(0)).norm(dim=1, keepdim=True)
        vec = (pos - pos.mean(0)).unsqueeze(2) * w[z].unsqueeze(1)
        out = {}
        for name, head in heads.items():
            out[name] = head.post_reduce(
                head.reduce(head.pre_reduce(x, vec, z, pos, batch), batch, 1)
            )
        gx, gv = block(x, vec)
        out["gated_x"], out["gated_v"] = gx, gv
        return out

    kinds = {"scalar": "scalar", "eq_scalar": "scalar", "dipole": "scalar", "eq_dipole": "scalar",
             "eq_dipole_vec": "vector", "gated_x": "atom_scalar", "gated_v": "atom_vector"}  # fmt: skip
    assert_equivariant(fn, mol.z, mol.pos, kinds=kinds)


def test_dipole_vector_flips_under_inversion():
    mol = random_molecule(5, seed=3, dtype=torch.float64)
    head = DipoleMoment(8, vector=True).double()
    x = torch.randn(5, 8, dtype=torch.float64)
    b = torch.zeros(5, dtype=torch.long)
    mu = head.post_reduce(head.reduce(head.pre_reduce(x, None, mol.z, mol.pos, b), b, 1))
    mu_inv = head.post_reduce(head.reduce(head.pre_reduce(x, None, mol.z, -mol.pos, b), b, 1))
    assert torch.allclose(mu_inv, -mu) and mu.abs().sum() > 0


def test_atomref_values_and_fit():
    ref = Atomref.from_qm9("U0")
    z = torch.tensor([6, 1, 1, 1, 1, 8])
    batch = torch.tensor([0, 0, 0, 0, 0, 1])
    out = ref(z, batch, 2)
    assert out.shape == (2, 1)
    assert out[0, 0].item() == pytest.approx((-37.846772 - 4 * 0.500273) * 27.211386246, rel=1e-6)
    zs = [torch.tensor([1, 1]), torch.tensor([6, 1]), torch.tensor([6, 6, 1])]
    y = torch.tensor([2.0, 11.0, 21.0])  # H = 1, C = 10
    fitted = Atomref.fit(zs, y)
    assert fitted.weight[1].item() == pytest.approx(1.0, abs=1e-5)
    assert fitted.weight[6].item() == pytest.approx(10.0, abs=1e-5)
