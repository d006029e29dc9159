"""Shared fixtures: a tiny QM9 (the 30-molecule qm9pack-format fixture) and a tiny ET config."""

from pathlib import Path

import pytest

FIXTURE_QM9 = Path(__file__).parent / "fixtures" / "qm9pack"
#: A model small enough to train in a second on 2 cores.
TINY_MODEL = [
    "model.hidden_channels=16",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.num_rbf=8",
]


@pytest.fixture
def tiny_qm9(monkeypatch, tmp_path):
    """Point molgnn's QM9 at the 30-molecule fixture; returns the data root to use."""
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    return tmp_path / "qm9"
