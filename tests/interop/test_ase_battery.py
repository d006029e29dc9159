"""Bad and unusual input through the ASE calculator, ``molgnn.interop.ase.Calculator`` (issue 20).

The calculator must make the checks ``molgnn.predict`` makes and accept only energy models.
Each case asserts the exception or warning, the names its message must contain, and that no
traceback text leaks into it. Models are tiny and untrained, written with ``save_checkpoint``.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from molgnn.inference import PredictionWarning
from molgnn.io import save_checkpoint
from molgnn.models import build_model

ase = pytest.importorskip("ase")
from molgnn.interop.ase import ENERGY_TARGETS, Calculator  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from inference_battery import TINY, raises, tiny_payload  # noqa: E402
from inference_battery import WATER_POSITIONS as WATER  # noqa: E402


def _checkpoint(path, names=("U0",), units=("eV",), data=None, nan=False):
    save_checkpoint(tiny_payload(names, units, data=data, nan_weights=nan), path)
    return path


@pytest.fixture
def u0(tmp_path):
    return _checkpoint(tmp_path / "u0.ckpt")


def energy_of(calc, atoms):
    atoms.calc = calc
    return atoms.get_potential_energy()


# --- which models are accepted --------------------------------------------------------------


def test_energy_targets_come_from_the_target_table():
    assert set(ENERGY_TARGETS) == {"U0", "U", "H", "G", "U0_atom", "U_atom", "H_atom", "G_atom"}


@pytest.mark.parametrize("target", ["U0", "U0_atom", "G"])
def test_energy_models_are_accepted(tmp_path, target):
    calc = Calculator(_checkpoint(tmp_path / "e.ckpt", names=(target,)))
    water = ase.Atoms("OH2", positions=WATER)
    assert np.isfinite(energy_of(calc, water)) and water.get_forces().shape == (3, 3)


@pytest.mark.parametrize(
    ("names", "units", "expected"),
    [
        (("gap",), ("eV",), ["'gap'", "HOMO-LUMO gap", "not a potential energy", "U0"]),
        (("homo",), ("eV",), ["'homo'", "not a potential energy"]),
        (("zpve",), ("eV",), ["'zpve'", "not a potential energy"]),
        (("mu",), ("D",), ["'mu'", "in D", "energy target in eV"]),
        (("U0",), ("kcal/mol",), ["'U0'", "kcal/mol", "in eV"]),
        (("U0", "gap"), ("eV", "eV"), ["2 targets", "gap"]),
        ((), (), ["0 targets"]),
    ],
    ids=["gap", "homo", "zpve", "dipole", "wrong-unit", "two-targets", "no-target"],
)
def test_non_energy_models_are_refused_naming_the_target(tmp_path, names, units, expected):
    path = _checkpoint(tmp_path / "m.ckpt", names=names, units=units)
    raises(ValueError, lambda: Calculator(path), "molgnn.interop.ase.Calculator", *expected)


def test_a_loaded_gap_model_is_refused_too(tmp_path):
    import molgnn

    model = molgnn.load(_checkpoint(tmp_path / "gap.ckpt", names=("gap",)))
    raises(ValueError, lambda: Calculator(model), "'gap'")


def test_a_model_built_in_code_is_trusted():
    calc = Calculator(build_model(dict(TINY)))
    assert np.isfinite(energy_of(calc, ase.Atoms("OH2", positions=WATER)))


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda p: p.write_text("garbage"), ["not a molgnn checkpoint"]),
        (lambda p: None, ["no checkpoint at"]),
    ],
    ids=["garbage", "missing"],
)
def test_bad_checkpoint_paths(tmp_path, make, names):
    path = tmp_path / "x.ckpt"
    make(path)
    raises((ValueError, FileNotFoundError), lambda: Calculator(path), "x.ckpt", *names)


def test_bad_min_distance(u0):
    raises(ValueError, lambda: Calculator(u0, min_distance=-1.0), "min_distance")


# --- which structures are accepted ----------------------------------------------------------


@pytest.mark.parametrize(
    ("atoms", "names"),
    [
        (ase.Atoms("SH2", positions=[[0, 0, 0], [1.34, 0, 0], [0, 1.34, 0]]), ["H2S", "S never"]),
        (ase.Atoms("U"), ["U never seen in training", "H, C, N, O"]),
        (ase.Atoms("ClH", positions=[[0, 0, 0], [1.27, 0, 0]]), ["Cl never seen"]),
        (ase.Atoms(), ["no atoms"]),
        (
            ase.Atoms("OH2", positions=[[0, 0, 0], [0.01, 0, 0], [-0.24, 0.93, 0]]),
            ["atoms 1 (O) and 2 (H)", "0.01 Å apart"],
        ),
        (ase.Atoms("OH2", positions=[[0, 0, 0], [0, 0, 0], [-0.24, 0.93, 0]]), ["atoms 1 (O)"]),
        (
            ase.Atoms("OH2", positions=[[0, 0, 0], [np.nan, 0, 0], [-0.24, 0.93, 0]]),
            ["NaN or infinite", "atom 2"],
        ),
        (
            ase.Atoms("OH2", positions=[[0, 0, 0], [np.inf, 0, 0], [-0.24, 0.93, 0]]),
            ["NaN or infinite"],
        ),
        (
            ase.Atoms("OH2", positions=WATER, cell=[10, 10, 10], pbc=True),
            ["periodic boundary conditions", "pbc"],
        ),
        (
            ase.Atoms("OH2", positions=WATER, cell=[10, 10, 10], pbc=[True, False, False]),
            ["periodic boundary conditions"],
        ),
    ],
    ids=[
        "sulfur",
        "uranium",
        "chlorine",
        "empty",
        "too-close",
        "same-position",
        "nan",
        "inf",
        "periodic",
        "periodic-1d",
    ],
)
def test_bad_structures_are_refused(u0, atoms, names):
    calc = Calculator(u0)
    raises(ValueError, lambda: energy_of(calc, atoms), *names)


def test_min_distance_is_an_argument(u0):
    squashed = ase.Atoms("OH2", positions=[[0, 0, 0], [0.3, 0, 0], [-0.24, 0.93, 0]])
    raises(ValueError, lambda: energy_of(Calculator(u0), squashed), "0.3 Å apart")
    assert np.isfinite(energy_of(Calculator(u0, min_distance=0.2), squashed))


def test_nan_weights_are_an_error_not_a_nan_energy(tmp_path):
    calc = Calculator(_checkpoint(tmp_path / "nan.ckpt", nan=True))
    water = ase.Atoms("OH2", positions=WATER)
    raises(ValueError, lambda: energy_of(calc, water), "H2O", "non-finite energy")


# --- structures outside the training data: PredictionWarning ---------------------------------


def test_water_draws_no_warning(u0):
    calc = Calculator(u0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        energy_of(calc, ase.Atoms("OH2", positions=WATER))
    assert [w for w in caught if issubclass(w.category, PredictionWarning)] == []
    assert calc.warnings == []


def test_large_crowded_structure_warns_about_size_and_truncation(u0):
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(5) * 1.6] * 3), -1).reshape(-1, 3)
    atoms = ase.Atoms(["C"] * len(grid), positions=grid + rng.normal(0, 0.1, grid.shape))
    calc = Calculator(u0)
    with pytest.warns(PredictionWarning) as caught:
        energy = energy_of(calc, atoms)
    messages = " | ".join(str(w.message) for w in caught)
    assert np.isfinite(energy) and atoms.get_forces().shape == (125, 3)
    assert "125 atoms, more than the largest training molecule (14 atoms)" in messages
    assert "neighbour list truncated" in messages and "max_num_neighbors=16" in messages
    assert len(calc.warnings) == 2


def test_odd_electron_structure_warns(u0):
    with pytest.warns(PredictionWarning, match=r"odd number of electrons \(9\)"):
        energy_of(Calculator(u0), ase.Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]]))


def test_forces_still_match_finite_differences(u0):
    calc = Calculator(u0)
    water = ase.Atoms("OH2", positions=WATER)
    water.calc = calc
    forces = water.get_forces()
    h, numeric = 1e-4, np.zeros_like(forces)
    for i in range(3):
        for k in range(3):
            for sign in (1, -1):
                moved = water.copy()
                moved.calc = calc
                moved.positions[i, k] += sign * h
                numeric[i, k] -= sign * moved.get_potential_energy() / (2 * h)
    assert np.allclose(forces, numeric, atol=1e-5)
