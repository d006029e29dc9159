"""Smoke test of benchmarks/et_throughput.py: the tiny config on the 30-molecule QM9 fixture."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

from molgnn.nn.scatter import available_backends

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "et_throughput.py"
FAST = ["--configs", "tiny", "--steps", "1", "--warmup", "1", "--repeats", "1", "--threads", "1"]


def run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *FAST, "--device", "cpu", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_tiny_run_rows_memory_and_equal_outputs(tiny_qm9, tmp_path):
    # Draw the batches from the fixture QM9 once, then benchmark from the molecules file.
    molecules = tmp_path / "mols.pt"
    run("--root", str(tiny_qm9), "--save-molecules", str(molecules))
    assert 0 < molecules.stat().st_size < 100_000

    compare = importlib.util.find_spec("torchmdnet") is not None
    out = tmp_path / "et.json"
    proc = run(
        "--molecules",
        str(molecules),
        "--out",
        str(out),
        "--tune-malloc",
        "molgnn",
        *(["--compare"] if compare else []),
    )
    result = json.loads(out.read_text())

    expected = {f"molgnn-et[{b},{e}]" for b in available_backends() for e in ("cached", "step")}
    if compare:
        expected.add("torchmd-net")
    rows = result["rows"]
    assert {r["impl"] for r in rows} == expected
    for row in rows:
        assert "error" not in row, row
        assert row["config"] == "tiny"
        # --tune-malloc molgnn: molgnn's rows as its Trainer runs them, torchmd-net as it ships
        assert row["malloc_tuned"] is (row["impl"] != "torchmd-net"), row
        for key in ("train_mol_per_s", "infer_mol_per_s"):
            assert math.isfinite(row[key]) and row[key] > 0, row
        assert len(row["train_repeats_mol_per_s"]) == len(row["infer_repeats_mol_per_s"]) == 1
        assert 0 < row["mem_after_setup_mb"] <= row["peak_mem_mb"], row
        assert row["impl"] in proc.stdout  # the table
        if compare:
            assert math.isfinite(row["max_abs_diff"]), row
            assert row["max_abs_diff"] <= row["tolerance"] <= 1e-3, row
            assert row["outputs_match"] is True
            assert row["train_x_torchmdnet"] > 0 and row["infer_x_torchmdnet"] > 0
        else:
            assert row["max_abs_diff"] is None
    meta = result["meta"]
    assert (meta["threads"], meta["steps"], meta["repeats"], meta["seed"]) == (1, 1, 1, 0)
    assert meta["device"] == "cpu" and meta["torch"] and meta["cpu_model"] and meta["date"]
