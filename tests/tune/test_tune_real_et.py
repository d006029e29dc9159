"""A real sweep of the Equivariant Transformer on QM9, through the command-line script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import molgnn
from molgnn.data import QM9

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "qm9pack"


@pytest.mark.ray
@pytest.mark.slow
def test_smoke_sweep_of_the_et_exports_a_loadable_model(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MOLGNN_QM9PACK_DIR": str(FIXTURE),
        "MOLGNN_DATA": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, str(REPO / "sweeps" / "et_homo_lumo.py"), "--smoke", "--subset", "30",
           "--storage-path", str(tmp_path / "sweeps"), "--name", "et"]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Test MAE of the best trial" in out.stdout
    best = tmp_path / "sweeps" / "et" / "best.ckpt"
    model = molgnn.load(best)
    assert model.checkpoint_info["target"]["names"] == ["gap"]
    mol = QM9(str(tmp_path / "data" / "qm9"), first=30, progress=False)[0]
    prediction = molgnn.predict(model, mol).values
    assert prediction.shape == (1, 1) and torch.isfinite(prediction).all()
    assert (tmp_path / "sweeps" / "et" / "best_config.yaml").is_file()
