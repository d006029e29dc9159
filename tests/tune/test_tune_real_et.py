"""A real sweep of the Equivariant Transformer on QM9, through the command-line script, driven by
the configuration guide's YAML file (the same file drives ``molgnn train`` and ``molgnn online``
in ``tests/cli/test_config_vocabulary.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import molgnn
from molgnn.data import QM9

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "qm9pack"


@pytest.mark.ray
@pytest.mark.slow
def test_smoke_sweep_of_the_et_exports_a_loadable_model(tmp_path: Path) -> None:
    import re

    guide = (REPO / "docs" / "src" / "guide" / "configuration.md").read_text()
    config_file = tmp_path / "run.yaml"
    example = re.search(r"cat > run\.yaml <<'EOF'\n(.*?\n)EOF\n", guide, re.S)
    assert example, "the configuration guide has no run.yaml example"
    config_file.write_text(example.group(1))
    env = {
        **os.environ,
        "MOLGNN_QM9PACK_DIR": str(FIXTURE),
        "MOLGNN_DATA": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, str(REPO / "sweeps" / "et_homo_lumo.py"), "--smoke",
           "--config", str(config_file), "--subset", "30", "--storage-path",
           str(tmp_path / "sweeps"), "--name", "et"]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Test MAE of the best trial" in out.stdout
    best = tmp_path / "sweeps" / "et" / "best.ckpt"
    model = molgnn.load(best)
    assert model.checkpoint_info["target"]["names"] == ["gap"]
    mol = QM9(str(tmp_path / "data" / "qm9"), first=30, progress=False)[0]
    prediction = molgnn.predict(model, mol).values
    assert prediction.shape == (1, 1) and torch.isfinite(prediction).all()
    saved = yaml.safe_load((tmp_path / "sweeps" / "et" / "best_config.yaml").read_text())
    # The file's fields outside the smoke space reached every trial's training config.
    assert (saved["train"]["loss"], saved["train"]["ema_decay"]) == ("l1", 0.99)
    assert saved["train"]["epochs"] == 2 and saved["train"]["subset"] == 30


@pytest.mark.ray
@pytest.mark.slow
def test_smoke_sweep_of_tensornet_exports_a_loadable_model(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MOLGNN_QM9PACK_DIR": str(FIXTURE),
        "MOLGNN_DATA": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, str(REPO / "sweeps" / "tensornet_homo_lumo.py"), "--smoke",
           "--subset", "30", "--num-samples", "2", "--storage-path", str(tmp_path / "sweeps"),
           "--name", "tn"]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    model = molgnn.load(tmp_path / "sweeps" / "tn" / "best.ckpt")
    assert model.config.kind == "tensornet"
    mol = QM9(str(tmp_path / "data" / "qm9"), first=30, progress=False)[0]
    prediction = molgnn.predict(model, mol).values
    assert prediction.shape == (1, 1) and torch.isfinite(prediction).all()
