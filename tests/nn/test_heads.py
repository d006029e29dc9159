"""Every head takes the same arguments and honours them, or refuses them with a ValueError."""

import pytest
import torch
from hypothesis import given, settings

from molgnn.data.keys import atomic_mass_table
from molgnn.models import ETConfig, build_model
from molgnn.nn import HEADS, REDUCE_OPS, Atomref, reduce_atoms, scatter_mean_with_zero
from molgnn.testing import assert_equivariant, molecules, random_molecule

C = 8
FIXED_FORM = sorted(name for name, cls in HEADS.items() if not cls.multi_output)
GATED = sorted(name for name, cls in HEADS.items() if not cls.has_mlp)


def features(z, pos, seed=0):
    """Scalar and vector features that rotate with the molecule: x [N, C], vec [N, 3, C]."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(20, C, generator=g, dtype=torch.float64)
    rel = pos - pos.mean(0)
    x = w[z] * rel.norm(dim=1, keepdim=True)
    vec = rel.unsqueeze(2) * w[z].unsqueeze(1)
    return x, vec


def run(head, z, pos, batch, x, vec, num_graphs):
    return head.post_reduce(head.reduce(head.pre_reduce(x, vec, z, pos, batch), batch, num_graphs))


def two_molecules():
    a, b = (
        random_molecule(4, seed=1, dtype=torch.float64),
        random_molecule(7, seed=2, dtype=torch.float64),
    )
    z = torch.cat([a.z, b.z])
    pos = torch.cat([a.pos, b.pos + 10.0])
    batch = torch.tensor([0] * 4 + [1] * 7)
    x, vec = features(z, pos)
    return z, pos, batch, x, vec


@pytest.mark.parametrize("name", sorted(HEADS))
def test_every_head_takes_the_common_arguments_and_honours_reduce_op(name):
    cls = HEADS[name]
    z, pos, batch, x, vec = two_molecules()
    outputs = {}
    for op in REDUCE_OPS:
        torch.manual_seed(0)
        head = cls(C, activation="tanh", reduce_op=op, out_channels=1).double()
        assert head.reduce_op == op and f"reduce_op={op!r}" in repr(head)
        outputs[op] = run(head, z, pos, batch, x, vec, 2)
    counts = torch.tensor([[4.0], [7.0]], dtype=torch.float64)  # (a dipole's norm scales too)
    assert torch.allclose(outputs["mean"], outputs["sum"] / counts)
    assert torch.allclose(outputs["torchmdnet_mean"], outputs["sum"] / (counts + 1))
    assert not torch.allclose(outputs["mean"], outputs["sum"])


@pytest.mark.parametrize("name", sorted(set(HEADS) - set(FIXED_FORM)))
def test_out_channels_are_honoured(name):
    head = HEADS[name](C, out_channels=3).double()
    z, pos, batch, x, vec = two_molecules()
    assert run(head, z, pos, batch, x, vec, 2).shape == (2, 3)


@pytest.mark.parametrize("name", FIXED_FORM)
def test_fixed_form_heads_refuse_out_channels(name):
    with pytest.raises(ValueError, match="out_channels must be 1, got 3"):
        HEADS[name](C, out_channels=3)


@pytest.mark.parametrize("name", GATED)
def test_gated_heads_refuse_mlp_layers(name):
    with pytest.raises(ValueError, match="num_hidden_layers must be 0, got 2"):
        HEADS[name](C, num_hidden_layers=2)


@pytest.mark.parametrize("name", sorted(set(HEADS) - set(GATED)))
def test_mlp_heads_honour_hidden_layers(name):
    head = HEADS[name](C, num_hidden_layers=2)
    linear = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linear) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reduce_op": "max"}, "unknown reduce_op 'max'; valid: sum, mean, torchmdnet_mean"),
        ({"out_channels": 0}, "out_channels must be positive"),
        ({"num_hidden_layers": -1}, "num_hidden_layers must be >= 0"),
    ],
)
@pytest.mark.parametrize("name", sorted(HEADS))
def test_bad_arguments_raise(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        HEADS[name](C, **kwargs)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_config_passes_every_head_argument(name):
    """ETConfig.build hands reduce_op and out_channels to every head (or the head refuses)."""
    small = dict(hidden_channels=16, num_layers=1, num_heads=2, num_rbf=8, head=name)
    model = build_model("et-small", **small, reduce_op="mean", activation="tanh")
    assert model.head.reduce_op == "mean"
    if HEADS[name].multi_output:
        model = build_model("et-small", **small, out_channels=3)
        assert model.head.out_channels == 3
        mol = random_molecule(5, seed=3)
        assert model(mol.z, mol.pos).shape == (1, 3)
    else:
        with pytest.raises(ValueError, match="out_channels must be 1"):
            build_model("et-small", **small, out_channels=3)
    if not HEADS[name].allows_prior:
        with pytest.raises(ValueError, match="takes no prior"):
            ETConfig(**small, prior="atomref")


def test_torchmdnet_mean_divides_by_atoms_plus_one():
    src = torch.tensor([[1.0], [2.0], [3.0], [10.0]])
    batch = torch.tensor([0, 0, 0, 1])
    out = scatter_mean_with_zero(src, batch, 3)
    assert out.flatten().tolist() == [1.5, 5.0, 0.0]
    assert torch.equal(reduce_atoms(src, batch, 3, "torchmdnet_mean"), out)


def test_prior_follows_torchmdnet_mean_only():
    """torchmd-net adds the prior per atom before its mean; molgnn's own mean sums the prior."""
    for op, expected in [("sum", "sum"), ("mean", "sum"), ("torchmdnet_mean", "torchmdnet_mean")]:
        model = build_model("et-small", num_layers=1, prior="atomref", reduce_op=op)
        assert model.prior.reduce_op == expected
    prior = Atomref(torch.arange(10.0), reduce_op="torchmdnet_mean")
    out = prior(torch.tensor([1, 2, 3]), torch.zeros(3, dtype=torch.long), 1)
    assert out.item() == pytest.approx(6.0 / 4)
    assert build_model(
        "et-small", num_layers=1, prior="learnable_atomref"
    ).prior.weight.requires_grad


@settings(max_examples=10, deadline=None)
@given(molecules(2, 10, dtype=torch.float64))
def test_new_heads_transform_correctly(mol):
    """R2 is invariant; the vector head rotates and reflects with the molecule."""
    torch.manual_seed(2)
    heads = {
        name: HEADS[name](C).double()
        for name in ("electronic_spatial_extent", "equivariant_vector")
    }

    def fn(z, pos, batch):
        x, vec = features(z, pos)
        return {name: run(head, z, pos, batch, x, vec, 1) for name, head in heads.items()}

    kinds = {"electronic_spatial_extent": "scalar", "equivariant_vector": "vector"}
    assert_equivariant(fn, mol.z, mol.pos, kinds=kinds)


MASS_HEADS = sorted(name for name, cls in HEADS.items() if cls.needs_max_z)


def test_the_mass_heads_are_the_dipoles_and_r2():
    assert MASS_HEADS == ["dipole_moment", "electronic_spatial_extent", "equivariant_dipole_moment"]


@pytest.mark.parametrize("name", MASS_HEADS)
def test_mass_heads_use_the_one_mass_table_and_refuse_elements_without_a_mass(name):
    head = HEADS[name](C, max_z=70).double()
    assert head.atomic_mass.tolist() == pytest.approx(atomic_mass_table(70))
    # HI: iodine gets its standard atomic weight (126.90), not a made-up one
    z = torch.tensor([53, 1])
    pos = torch.tensor([[0.0, 0, 0], [1.6, 0, 0]], dtype=torch.float64)
    batch = torch.zeros(2, dtype=torch.long)
    com = 1.6 * 1.008 / (126.90 + 1.008)
    expected = torch.tensor([-com, 1.6 - com], dtype=torch.float64)
    assert torch.allclose(head.centred(pos, z, batch)[:, 0], expected)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, C, generator=gen, dtype=torch.float64)
    vec = torch.randn(2, 3, C, generator=gen, dtype=torch.float64)
    assert torch.isfinite(run(head, z, pos, batch, x, vec, 1)).all()
    for bad, symbol in ((43, "Tc"), (61, "Pm")):  # no standard atomic weight
        with pytest.raises(ValueError, match=rf"no atomic mass for element\(s\) {symbol}:"):
            run(head, torch.tensor([bad, 1]), pos, batch, x, vec, 1)
