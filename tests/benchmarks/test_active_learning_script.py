"""Smoke test of ``benchmarks/active_learning.py`` on the 30-molecule QM9 fixture."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_benchmark_scripts import assert_finite, run_script

from molgnn.online import Store


def test_active_learning(tiny_qm9, tmp_path):
    out, path, png = tmp_path / "al", tmp_path / "al.json", tmp_path / "al.png"
    proc = run_script(
        "active_learning.py",
        "--data-root", str(tiny_qm9), "--out", str(out), "--json", str(path), "--plot", str(png),
        "--strategies", "random", "lcb", "largest-error-oracle", "--seeds", "0", "1",
        "--workers", "2", "--subset", "30", "--val", "4", "--test", "4", "--initial", "8",
        "--pool", "6", "--batch", "3", "--rounds", "2", "--epochs", "1", "--batch-size", "8",
        "--top-fraction", "0.1", "--mc-dropout-samples", "4",
        "--set", "hidden_channels=16", "--set", "num_layers=1", "--set", "num_rbf=8",
        "--set", "dropout=0.2",
    )  # fmt: skip
    result = json.loads(path.read_text())
    assert result["benchmark"] == "active_learning" and result["unit"] == "eV"
    assert result["top"] == 3  # the best 10% of the 22 molecules left after the held-out 8
    assert "minimize gap: % of the true top 10% (3 molecules)" in proc.stdout
    assert "test MAE (eV) after every round, mean ± std over seeds [0, 1]" in proc.stdout
    strategies = ("random", "lcb", "largest-error-oracle")
    assert sorted(result["summary"]) == sorted(strategies)
    runs = result["runs"]
    assert sorted((r["strategy"], r["seed"]) for r in runs) == sorted(
        (s, seed) for s in strategies for seed in (0, 1)
    )
    for run in runs:
        # the same budget for every strategy: the first version of 8, then two rounds of 3
        assert [r["computed"] for r in run["rounds"]] == [8, 11, 14]
        for r in run["rounds"]:
            assert_finite(r, ["test_mae"])
            assert 0 <= r["top_found"] <= 3
        # the count the loop recorded in its store is the benchmark's own count (checked
        # by the script; here against the store once more)
        store = Store(out / f"{run['strategy']}-seed{run['seed']}", readonly=True)
        try:
            found = [a.details["search"]["found"] for a in store.acquisitions()[1:]]
        finally:
            store.close()
        assert found == [r["top_found"] for r in run["rounds"][1:]]
    for strategy in strategies:
        rows = result["summary"][strategy]
        assert [r["computed"] for r in rows] == [8, 11, 14]
        mine = [r for r in runs if r["strategy"] == strategy]
        for k, row in enumerate(rows):
            maes = [r["rounds"][k]["test_mae"] for r in mine]
            assert row["test_mae_mean"] == statistics.fmean(maes)
            assert row["test_mae_std"] == statistics.stdev(maes)
            assert row["recall_mean"] == statistics.fmean(
                r["rounds"][k]["top_found"] / 3 for r in mine
            )
    # Same first version and training per seed: the first models agree across strategies.
    first = {(r["seed"], r["rounds"][0]["test_mae"]) for r in runs}
    assert len(first) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
