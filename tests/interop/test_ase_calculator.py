"""The ASE calculator on trained models: relaxation, forces, and refusing non-energy targets."""

import numpy as np
import pytest

from molgnn.training import TrainConfig, fit

ase = pytest.importorskip("ase")
#: The ``et-small`` preset, made small enough to train in a second.
SMALL = {"preset": "et-small", "hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}
TENSORNET_SMALL = {
    "preset": "tensornet-small",
    "hidden_channels": 16,
    "num_layers": 1,
    "num_rbf": 8,
}


@pytest.mark.parametrize("model", [SMALL, TENSORNET_SMALL], ids=["et", "tensornet"])
def test_relaxation_lowers_energy_and_forces_match_finite_differences(tiny_qm9, tmp_path, model):
    from ase.optimize import BFGS

    from molgnn.interop.ase import Calculator

    cfg = TrainConfig(
        model=model,
        target="U0",
        subset=30,
        epochs=2,
        data_root=str(tiny_qm9),
        out_dir=str(tmp_path / "u0"),
    )
    ckpt = fit(cfg, verbose=False).best_checkpoint
    rng = np.random.default_rng(0)
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    water.positions += rng.normal(0, 0.08, size=(3, 3))
    water.calc = Calculator(ckpt)
    forces = water.get_forces()
    e0 = water.get_potential_energy()
    numeric = np.zeros_like(forces)
    h = 1e-4
    for i in range(3):
        for k in range(3):
            for sign in (1, -1):
                moved = water.copy()
                moved.calc = water.calc
                moved.positions[i, k] += sign * h
                numeric[i, k] -= sign * moved.get_potential_energy() / (2 * h)
    assert np.allclose(forces, numeric, atol=1e-4)
    BFGS(water, logfile=None).run(fmax=0.05, steps=50)
    assert water.get_potential_energy() < e0


def test_non_energy_models_are_refused(tiny_qm9, tmp_path):
    from molgnn.interop.ase import Calculator

    cfg = TrainConfig(
        model=SMALL,
        target="mu",
        subset=30,
        epochs=1,
        data_root=str(tiny_qm9),
        out_dir=str(tmp_path / "mu"),
    )
    ckpt = fit(cfg, verbose=False).best_checkpoint
    with pytest.raises(ValueError, match="energy target in eV"):
        Calculator(ckpt)
