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


def test_tensornet_rows_beside_torchmdnet_with_equal_outputs_and_the_gemm_bound(tiny_qm9, tmp_path):
    compare = importlib.util.find_spec("torchmdnet") is not None
    out = tmp_path / "tensornet.json"
    proc = run(
        "--root",
        str(tiny_qm9),
        "--models",
        "tensornet",
        "--edges",
        "step",
        "--batch-size",
        "3",
        "--out",
        str(out),
        *(["--compare"] if compare else []),
    )
    result = json.loads(out.read_text())
    rows = {r["impl"]: r for r in result["rows"]}
    expected = {f"molgnn-tensornet[{b},step]" for b in available_backends()}
    if compare:  # torchmd-net's TensorNet as it runs by default, and its plain PyTorch
        expected |= {"torchmd-net-tensornet", "torchmd-net-tensornet[plain]"}
    assert set(rows) == expected
    meta = result["meta"]
    assert meta["models"] == ["tensornet"]
    assert meta["batch_size"] == meta["configs"]["tiny"]["batch_size"] == 3  # --batch-size
    assert meta["tensornet_sizes"] == {
        "tiny": {"hidden_channels": 16, "num_layers": 1, "num_rbf": 8}
    }
    assert math.isfinite(meta["gemm_flop_per_s"]) and meta["gemm_flop_per_s"] > 1e6
    flops = {}
    for impl, row in rows.items():
        assert "error" not in row, row
        assert row["model"] == "tensornet" and row["impl"] in proc.stdout
        for phase in ("train", "infer"):
            assert row[f"{phase}_mol_per_s"] > 0, row
            # the bound: the machine's GEMM rate over the GEMM FLOPs per molecule
            per_mol = row[f"{phase}_gemm_flops_per_mol"]
            assert per_mol > 0, row
            bound = meta["gemm_flop_per_s"] / per_mol
            assert math.isclose(row[f"{phase}_gemm_bound_mol_per_s"], bound)
            assert math.isclose(row[f"{phase}_x_bound"], row[f"{phase}_mol_per_s"] / bound)
        # a training step runs the forward's GEMMs and more for the gradients
        assert row["train_gemm_flops_per_mol"] > 1.5 * row["infer_gemm_flops_per_mol"], row
        flops[impl] = row["train_gemm_flops_per_mol"]
        if compare:
            assert row["max_abs_diff"] <= row["tolerance"] <= 1e-3, row
            assert row["outputs_match"] is True
            assert row["train_x_torchmdnet"] > 0 and row["infer_x_torchmdnet"] > 0
    # the same weights, the same molecules: the backends' GEMM work is the same
    assert len({round(flops[f"molgnn-tensornet[{b},step]"]) for b in available_backends()}) == 1
    if compare:
        assert rows["torchmd-net-tensornet"]["train_x_torchmdnet"] == 1.0
