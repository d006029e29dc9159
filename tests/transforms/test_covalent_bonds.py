import ast
import inspect
import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from molgnn.data import QM9
from molgnn.testing import batch_of, molecules
from molgnn.transforms import BOND_TOLERANCE, COVALENT_RADII, CovalentBonds, covalent_bonds


def water() -> Data:
    # O at the origin, two H at 0.96 Å, H-O-H angle 104.5 degrees (H...H = 1.518 Å).
    a = math.radians(104.5)
    pos = torch.tensor(
        [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [0.96 * math.cos(a), 0.96 * math.sin(a), 0.0]],
        dtype=torch.float64,
    )
    return Data(z=torch.tensor([8, 1, 1]), pos=pos)


def brute_force(z, pos, batch, bond_tolerance):
    edges = []
    for i in range(len(z)):
        for j in range(len(z)):
            if i == j or batch[i] != batch[j]:
                continue
            d = float((pos[i] - pos[j]).norm())
            if d < bond_tolerance * (COVALENT_RADII[int(z[i])] + COVALENT_RADII[int(z[j])]):
                edges.append((j, i))
    return sorted(edges, key=lambda e: (e[1], e[0]))


def test_water_exact():
    data = CovalentBonds()(water())
    # O-H: 0.96 Å < 1.15 * (0.66 + 0.31) = 1.116; H...H: 1.518 Å > 1.15 * 0.62 = 0.713.
    assert data.edge_index.tolist() == [[1, 2, 0, 0], [0, 0, 1, 2]]
    assert data.edge_attr.shape == (4, 1)
    assert torch.allclose(data.edge_attr, torch.full((4, 1), 0.96, dtype=torch.float64))


def test_ratio_feature_and_tolerance():
    # C=C of ethylene (1.33 Å) and C#C of acetylene (1.20 Å): ratio to 2 * 0.76 Å.
    for length in (1.33, 1.20):
        two = Data(z=torch.tensor([6, 6]), pos=torch.tensor([[0.0, 0, 0], [length, 0, 0]]))
        out = CovalentBonds(features=("length", "ratio"))(two)
        assert out.edge_attr.shape == (2, 2)
        assert out.edge_attr[0].tolist() == pytest.approx([length, length / 1.52])
    # 1.0 Å H-H is a bond only with a tolerance above 1 / 0.62
    h2 = Data(z=torch.tensor([1, 1]), pos=torch.tensor([[0.0, 0, 0], [1.0, 0, 0]]))
    assert CovalentBonds()(h2.clone()).edge_index.size(1) == 0
    assert CovalentBonds(bond_tolerance=1.7)(h2.clone()).edge_index.size(1) == 2
    # 1.79 Å: the 1,3 carbons of a strained bicyclic (QM9 'C1C2CC1O2'), bonded only at 1.2
    cc = Data(z=torch.tensor([6, 6]), pos=torch.tensor([[0.0, 0, 0], [1.79, 0, 0]]))
    assert CovalentBonds()(cc.clone()).edge_index.size(1) == 0
    assert CovalentBonds(bond_tolerance=1.2)(cc.clone()).edge_index.size(1) == 2
    assert repr(CovalentBonds()) == "CovalentBonds(bond_tolerance=1.15, features=['length'])"
    with pytest.raises(ValueError, match="valid features: length, ratio"):
        CovalentBonds(features=("order",))
    with pytest.raises(ValueError, match="bond_tolerance must be positive"):
        CovalentBonds(bond_tolerance=0)
    with pytest.raises(TypeError, match="tolerance"):
        CovalentBonds(tolerance=1.2)  # renamed to bond_tolerance, no alias


def test_batched_and_unknown_element():
    w = water()
    pos = torch.cat([w.pos, w.pos + 10])
    z = torch.cat([w.z, w.z])
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    edges = covalent_bonds(z, pos, batch)
    assert edges.tolist() == [[1, 2, 0, 0, 4, 5, 3, 3], [0, 0, 1, 2, 3, 3, 4, 5]]
    with pytest.raises(ValueError, match=r"no covalent radius for element.* U;"):
        covalent_bonds(torch.tensor([92, 1]), torch.tensor([[0.0, 0, 0], [1.0, 0, 0]]))
    bad = Data(z=torch.tensor([1, 118]), pos=torch.zeros(2, 3), name="mol7")
    with pytest.raises(ValueError, match=r"mol7.*Og"):
        CovalentBonds()(bad)
    with pytest.raises(ValueError, match="atomic numbers"):
        covalent_bonds(torch.tensor([0, 1]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same N"):
        covalent_bonds(torch.tensor([1, 1, 1]), torch.zeros(2, 3))
    assert covalent_bonds(torch.zeros(0, dtype=torch.long), torch.zeros(0, 3)).shape == (2, 0)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(molecules(1, 10, dtype=torch.float64, min_distance=0.6), min_size=1, max_size=4),
    st.floats(1.0, 1.6),
)
def test_matches_brute_force(mols, bond_tolerance):
    z, pos, batch = batch_of(mols)
    got = covalent_bonds(z, pos, batch, bond_tolerance=bond_tolerance)
    assert [tuple(e) for e in got.T.tolist()] == brute_force(z, pos, batch, bond_tolerance)


def test_qm9_valences(tiny_qm9):
    # Real QM9 geometries: every H has one bond, heavy atoms a chemically sensible number,
    # and each molecule is one connected graph.
    dataset = QM9(str(tiny_qm9), target="gap", progress=False)
    allowed = {1: {1}, 6: {2, 3, 4}, 7: {1, 2, 3, 4}, 8: {1, 2}, 9: {1}}
    for mol in dataset:
        out = CovalentBonds()(mol)
        degree = torch.bincount(out.edge_index[1], minlength=mol.num_nodes)
        for z, d in zip(mol.z.tolist(), degree.tolist()):
            assert d in allowed[z], (mol.name, z, d)
        reached = {0}
        for _ in range(mol.num_nodes):
            reached |= {j for j, i in out.edge_index.T.tolist() if i in reached}
        assert len(reached) == mol.num_nodes, mol.name


PACKAGE = Path(__file__).parents[2] / "molgnn"


def test_default_tolerance_is_the_one_constant():
    # 1.15, not 1.2: at 1.2 the 1,3 carbons of 1,688 strained QM9 bicyclics bond (see above).
    assert BOND_TOLERANCE == 1.15
    for fn in (covalent_bonds, CovalentBonds):
        assert inspect.signature(fn).parameters["bond_tolerance"].default is BOND_TOLERANCE, fn
    assert CovalentBonds().bond_tolerance is BOND_TOLERANCE


def _tolerance_defaults(node: ast.AST, prefix: str = ""):
    """(qualified name, default expression) of every ``*tolerance`` argument or class field."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = child.args
            positional = [*args.posonlyargs, *args.args]
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            for arg, default in pairs:
                if arg.arg.endswith("tolerance"):
                    yield f"{prefix}{child.name}({arg.arg})", default
            yield from _tolerance_defaults(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            for item in child.body:
                if (
                    isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and item.target.id.endswith("tolerance")
                    and item.value is not None
                ):
                    yield f"{prefix}{child.name}.{item.target.id}", item.value
            yield from _tolerance_defaults(child, f"{prefix}{child.name}.")


def test_changing_the_constant_changes_every_bond_tolerance_default():
    """No other default (argument, dataclass field or docstring) spells out a tolerance value."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        for name, default in _tolerance_defaults(ast.parse(source)):
            found.add(name)
            assert isinstance(default, ast.Name) and default.id == "BOND_TOLERANCE", (
                path,
                name,
                ast.unparse(default),
            )
        # a docstring's "tolerance: ... (default: ``1.2``)" would go stale when the constant changes
        stale = re.search(r"tolerance: [^()]*\(default:\s*`*\d", source)
        assert stale is None, (path, stale and stale.group())
    assert found == {
        "covalent_bonds(bond_tolerance)",
        "CovalentBonds.__init__(bond_tolerance)",
        "degree_histogram(bond_tolerance)",
        "PooledGNN.__init__(bond_tolerance)",
        "PooledGNNConfig.bond_tolerance",
    }
