"""Smoke tests of the scripts in benchmarks/: each runs as a subprocess on tiny inputs (the
30-molecule QM9 fixture, tiny models, one or two steps), exits 0, prints its table and writes
JSON that holds the expected keys with finite numbers.

``et_throughput.py`` has its own smoke test, ``test_et_throughput_script.py``.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import math
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
#: Script -> the test module that smoke-tests it.
SMOKE_TESTS = {
    "accuracy_budget.py": "test_benchmark_scripts.py",
    "active_learning.py": "test_active_learning_script.py",
    "data_qm9.py": "test_benchmark_scripts.py",
    "et_throughput.py": "test_et_throughput_script.py",
    "gnn_throughput.py": "test_benchmark_scripts.py",
    "online_warm_start.py": "test_benchmark_scripts.py",
    "serve_load.py": "test_serve_load_script.py",
    "sweep_packing.py": "test_benchmark_scripts.py",
}
TINY_ET = ["--hidden-channels", "16", "--num-layers", "1", "--num-heads", "2", "--num-rbf", "8"]


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<name>`` with this interpreter; fail with its output unless it exits 0."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + "\n" + proc.stderr[-4000:]
    return proc


def assert_finite(record: dict[str, Any], keys: list[str], positive: bool = True) -> None:
    """Each of ``keys`` is in ``record`` and is a finite number (above 0 with ``positive``)."""
    for key in keys:
        value = record[key]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, record)
        assert math.isfinite(value), (key, record)
        if positive:
            assert value > 0, (key, record)


def interfaces_up() -> tuple[bool, list[str]]:
    """Whether a loopback interface is up, and the names of the other interfaces that are up.

    Asks the kernel about the current network namespace (``if_nameindex`` and the
    ``SIOCGIFFLAGS`` ioctl); ``/sys/class/net`` would show the namespace sysfs was mounted in.
    """
    siocgifflags, iff_up, iff_loopback = 0x8913, 0x1, 0x8
    loopback_up, others = False, []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("16sH14x", name.encode()[:15], 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, request))[1]
            if flags & iff_loopback:
                loopback_up = loopback_up or bool(flags & iff_up)
            elif flags & iff_up:
                others.append(name)
    return loopback_up, others


def test_every_benchmark_script_has_a_smoke_test():
    scripts = sorted(p.name for p in BENCHMARKS.glob("*.py"))
    assert scripts == sorted(SMOKE_TESTS), "add a smoke test for each new benchmark script"
    here = Path(__file__).parent
    for script, module in SMOKE_TESTS.items():
        assert script in (here / module).read_text(), (script, module)


def test_gnn_throughput(tiny_qm9, tmp_path):
    from molgnn.nn import CONVS

    out = tmp_path / "gnn.json"
    proc = run_script(
        "gnn_throughput.py",
        "--root", str(tiny_qm9), "--subset", "20", "--seed", "3",
        "--edges", "radius", "bonds", "--hidden-channels", "16", "--num-layers", "1",
        "--et", "--batch-size", "4", "--steps", "1", "--warmup", "1", "--repeats", "1",
        "--threads", "1", "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    labels = {"et-small"} | {f"pooled[{c},mean,{e}]" for c in CONVS for e in ("radius", "bonds")}
    assert {r["model"] for r in result["rows"]} == labels
    assert "train mol/s" in proc.stdout and "relative to et-small:" in proc.stdout
    for row in result["rows"]:
        assert row["model"] in proc.stdout
        assert_finite(row, ["params", "train_mol_per_s", "infer_mol_per_s"])
        assert_finite(row, ["train_spread", "infer_spread"], positive=False)
        assert_finite(row, ["train_x_et", "infer_x_et"])
        if row["model"] != "et-small":
            assert (row["config"]["hidden_channels"], row["config"]["num_layers"]) == (16, 1)
    meta = result["meta"]
    assert (meta["subset"], meta["seed"], meta["steps"], meta["threads"]) == (20, 3, 1, 1)
    assert_finite(meta, ["mean_atoms_per_molecule"])


def test_accuracy_budget(tiny_qm9, tmp_path):
    compare = importlib.util.find_spec("torchmdnet") is not None
    out = tmp_path / "accuracy.json"
    proc = run_script(
        "accuracy_budget.py",
        "--root", str(tiny_qm9), "--subset", "24", "--seed", "1", "--seeds", "1", "2",
        "--budget", "0.5", *TINY_ET, "--batch-size", "8", "--threads", "1", "--out", str(out),
        *(["--compare"] if compare else []),
    )  # fmt: skip
    result = json.loads(out.read_text())
    names = ["molgnn-et-small", "molgnn-tensornet-small", "molgnn-pooled"] + (
        ["torchmd-net-et-small"] if compare else []
    )
    # every model once per seed, on the same subset and split
    assert [(r["model"], r["seed"]) for r in result["rows"]] == [
        (name, seed) for seed in (1, 2) for name in names
    ]
    for row in result["rows"]:
        assert f"{row['model']:<22} test MAE" in proc.stdout
        assert_finite(row, ["params", "test_mae_mev", "steps", "molecules_seen"])
        # the size options reach every model: far below et-small's 128 x 4 layers
        assert row["params"] < 100_000, row
    if compare:  # the same ET size on both sides
        params = {r["model"]: r["params"] for r in result["rows"]}
        assert params["molgnn-et-small"] == params["torchmd-net-et-small"]
    assert [s["model"] for s in result["summary"]] == names
    for summary in result["summary"]:
        maes = [r["test_mae_mev"] for r in result["rows"] if r["model"] == summary["model"]]
        assert summary["seeds"] == 2
        assert math.isclose(summary["test_mae_mev_mean"], sum(maes) / 2)
        assert math.isclose(summary["test_mae_mev_std"], abs(maes[0] - maes[1]) / math.sqrt(2))
        assert f"{summary['test_mae_mev_mean']:.1f} ± " in proc.stdout
    assert (result["subset"], result["seed"], result["seeds"], result["budget_s"]) == (
        24, 1, [1, 2], 0.5
    )  # fmt: skip
    assert result["sizes"] == {"hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}


def test_data_qm9(tiny_qm9, tmp_path):
    out = tmp_path / "data.json"
    proc = run_script(
        "data_qm9.py", "--root", str(tiny_qm9), "--repeats", "1", "--threads", "1",
        "--out", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["molecules"] == 30 and result["csv_files"] == ["qm9_part1.csv"]
    assert_finite(
        result,
        ["pandas_read_s", "process_s", "process_over_pandas", "reload_s",
         "radius_graph_batched_ms_per_molecule", "radius_graph_transform_ms_per_molecule"],
    )  # fmt: skip
    for line in ("pandas reads the CSVs", "second load", "radius_graph, batch of 128"):
        assert line in proc.stdout


def test_online_warm_start(tiny_qm9, tmp_path):
    out, path = tmp_path / "online", tmp_path / "online.json"
    proc = run_script(
        "online_warm_start.py",
        "--data-root", str(tiny_qm9), "--out", str(out), "--json", str(path),
        "--subset", "30", "--val", "4", "--test", "4", "--initial", "10", "--chunk", "6",
        "--growth", "0.25", "--epochs", "1", "--batch-size", "8", "--threads", "1",
        "--set", "hidden_channels=16", "--set", "num_layers=1", "--set", "num_heads=2",
        "--set", "num_rbf=8",
    )  # fmt: skip
    result = json.loads(path.read_text())
    assert "test MAE (eV) against training molecules" in proc.stdout
    scratch, warm = result["scratch"]["models"], result["warm"]["models"]
    # 22 molecules arrive after the held-out 8: models on 10, 16 and 22 of them
    assert [m["data_size"] for m in scratch] == [m["data_size"] for m in warm] == [10, 16, 22]
    for model in scratch + warm:
        assert_finite(model, ["val_mae", "test_mae", "train_seconds"])
        assert f"{model['data_size']:>10}" in proc.stdout
    assert all(m["parent_model"] is None for m in scratch)
    assert [m["parent_model"] for m in warm[1:]] == [m["id"] for m in warm[:-1]]
    for mode in ("scratch", "warm"):
        assert_finite(result[mode], ["wall_seconds", "train_seconds"])
    assert result["settings"]["subset"] == 30 and result["unit"] == "eV"


@pytest.mark.slow
def test_sweep_packing_on_the_cpu(tiny_qm9, tmp_path):
    pytest.importorskip("ray.tune")
    pytest.importorskip("optuna")
    loopback_up, others = interfaces_up()
    if others or not loopback_up:
        pytest.skip(
            "sweep_packing.py starts Ray, which must run in a private network namespace with "
            f"only loopback up (e.g. unshare -n); interfaces up here: {others or 'none'}, "
            f"loopback {'up' if loopback_up else 'down'}"
        )
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # Ray's default auth
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])]),
        MOLGNN_DATA=str(tmp_path / "data"),
        RAY_USAGE_STATS_ENABLED="0",
    )
    path = tmp_path / "sweep.json"
    proc = run_script(
        "sweep_packing.py",
        "--device", "cpu", "--space", "smoke", "--num-samples", "2", "--max-epochs", "1",
        "--subset", "30", "--num-cpus", "2", "--cpus-per-trial", "1",
        "--data-root", str(tiny_qm9), "--json", str(path),
        env=env, timeout=420,
    )  # fmt: skip
    result = json.loads(path.read_text())
    assert "trials/h" in proc.stdout and "cpu: et-small, space smoke, 2 trials" in proc.stdout
    assert (result["device_type"], result["num_gpus"]) == ("cpu", 0)
    assert result["ray_auth_mode"] == "token"  # the local cluster kept Ray's token auth
    [row] = result["results"]
    assert (row["gpus_per_trial"], row["cpus_per_trial"]) == (0.0, 1.0)
    assert (row["trials"], row["trials_finished"]) == (2, 2)
    assert_finite(row, ["elapsed_s", "trials_per_hour", "best_val_mae_mev"])
    assert row["gpu_util_mean_pct"] is None and row["gpu_mem_peak_mib"] is None
