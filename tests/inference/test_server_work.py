"""What a server worker computes for one request (``molgnn.inference._work.run_request``), in
this process: the molecules of a request share forward passes, and MC dropout reaches them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import molgnn
from molgnn.data import parse_xyz
from molgnn.inference import _work
from molgnn.inference._requests import Limits
from molgnn.inference._work import run_request
from molgnn.models import build_model, model_config

sys.path.insert(0, str(Path(__file__).parent))
from inference_battery import TINY, WATER

LIMITS = Limits(1_000_000, 1000, 1000, 1000, 30.0)
METHANE = "5\nmethane\nC 0 0 0\nH 0.63 0.63 0.63\nH -0.63 -0.63 0.63\nH -0.63 0.63 -0.63\nH 0.63 -0.63 -0.63\n"


def _counted(model: torch.nn.Module) -> list[int]:
    """The number of molecules of each forward pass of ``model`` (a forward hook)."""
    calls: list[int] = []

    def hook(module, inputs, output):
        calls.append(int(output.size(0)))

    model.register_forward_hook(hook)
    return calls


def test_the_molecules_of_a_request_share_one_forward_pass():
    torch.manual_seed(0)
    model = build_model(dict(TINY)).eval()
    calls = _counted(model)
    items = [(k, {"xyz": WATER if k % 2 else METHANE}) for k in range(40)]
    status, outcomes, _ = run_request(model, items, LIMITS)
    assert status == "ok" and calls == [40]
    assert [record["index"] for record, _ in outcomes] == list(range(40))
    # the same values as one molecule at a time
    alone = molgnn.predict(model, parse_xyz(WATER)).values[0, 0]
    assert outcomes[1][0]["y0"] == pytest.approx(float(alone), abs=1e-5)


def test_a_request_over_the_atom_budget_is_split(monkeypatch):
    monkeypatch.setattr(_work, "BATCH_ATOMS", 30)  # water: 3 atoms, so 10 molecules per pass
    torch.manual_seed(0)
    model = build_model(dict(TINY)).eval()
    calls = _counted(model)
    status, outcomes, _ = run_request(model, [(k, {"xyz": WATER}) for k in range(25)], LIMITS)
    assert status == "ok" and len(outcomes) == 25
    assert calls == [10, 10, 5]


def test_mc_dropout_samples_give_each_record_a_std():
    torch.manual_seed(0)
    model = model_config(
        {"preset": "pooled", "hidden_channels": 16, "num_layers": 2, "num_rbf": 8, "dropout": 0.2}
    ).build()
    status, outcomes, _ = run_request(model, [(0, {"xyz": WATER})], LIMITS, mc_dropout_samples=5)
    ((record, failure),) = outcomes
    expected = molgnn.predict(model, parse_xyz(WATER), mc_dropout_samples=5)
    assert status == "ok" and failure is None
    assert record["std"]["y0"] == pytest.approx(float(expected.std[0, 0]), abs=1e-6)
    assert record["std"]["y0"] > 0
    status, outcomes, _ = run_request(model, [(0, {"xyz": WATER})], LIMITS)
    assert "std" not in outcomes[0][0]
