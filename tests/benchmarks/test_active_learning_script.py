"""Smoke test of ``benchmarks/active_learning.py`` on the 30-molecule QM9 fixture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_benchmark_scripts import assert_finite, run_script


def test_active_learning(tiny_qm9, tmp_path):
    out, path = tmp_path / "al", tmp_path / "al.json"
    proc = run_script(
        "active_learning.py",
        "--data-root", str(tiny_qm9), "--out", str(out), "--json", str(path),
        "--strategies", "random", "largest-error-oracle",
        "--subset", "30", "--val", "4", "--test", "4", "--initial", "8", "--pool", "6",
        "--batch", "3", "--rounds", "2", "--epochs", "1", "--batch-size", "8", "--top", "3",
        "--threads", "1", "--set", "hidden_channels=16", "--set", "num_layers=1",
        "--set", "num_heads=2", "--set", "num_rbf=8",
    )  # fmt: skip
    result = json.loads(path.read_text())
    assert result["benchmark"] == "active_learning" and result["unit"] == "eV"
    assert "smallest-gap search: the 3 lowest of 22 molecules" in proc.stdout
    for strategy in ("random", "largest-error-oracle"):
        run = result["strategies"][strategy]
        # 22 molecules after the held-out 8: the first version of 8, then two rounds of 3
        assert [m["data_size"] for m in run["models"]] == [8, 11, 14]
        assert (run["computed"], run["acquired"]) == (14, 6)
        assert 0 <= run["lowest_found_by_acquisition"] <= run["lowest_found"] <= 3
        for model in run["models"]:
            assert_finite(model, ["val_mae", "test_mae"])
        assert strategy in proc.stdout
    # Same first version and training: the first models agree; the strategies then differ.
    first = [result["strategies"][s]["models"][0]["test_mae"] for s in result["strategies"]]
    assert first[0] == first[1]
    assert {r["strategy"] for r in result["search"]} == {"random", "largest-error-oracle"}
