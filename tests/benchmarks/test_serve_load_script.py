"""Smoke test of ``benchmarks/serve_load.py``: a real ``molgnn serve`` on 127.0.0.1, driven for a
second per concurrency with molecules of the 30-molecule QM9 fixture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

sys.path.insert(0, str(Path(__file__).parent))
from test_benchmark_scripts import TINY_ET, assert_finite, run_script


def test_serve_load(tiny_qm9, tmp_path):
    out = tmp_path / "serve.json"
    proc = run_script(
        "serve_load.py",
        "--data-root", str(tiny_qm9), "--subset", "20", "--seed", "2", *TINY_ET,
        "--concurrency", "1", "3", "--duration", "1", "--warmup", "0.2",
        "--molecules-per-request", "2", "--workers", "1", "--threads", "1", "--out", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["benchmark"] == "serve_load"
    assert [row["concurrency"] for row in result["rows"]] == [1, 3]
    for row in result["rows"]:
        assert row["errors"] == 0 and row["requests"] >= 1, row
        # every answered request is in the server's own /metrics count, and no other
        assert row["server_counted_ok"] == row["requests"]
        assert_finite(
            row,
            ["p50_ms", "p99_ms", "p99_over_p50", "molecules_per_s", "throughput_x_first",
             "server_rss_peak_mb", "workers_rss_peak_mb"],
        )  # fmt: skip
        assert row["p99_ms"] >= row["p50_ms"]
        assert row["molecules_per_s"] == pytest.approx(2 * row["requests_per_s"])
        assert len(row["load_before"]) == 3
    assert result["rows"][0]["throughput_x_first"] == 1.0
    meta = result["meta"]
    assert meta["molecules_per_request"] == 2 and meta["subset"] == 20
    assert (meta["workers"], meta["threads_per_worker"]) == (1, 1)
    assert meta["model"]["hidden_channels"] == 16 and meta["model"]["parameters"] > 0
    assert len(meta["load_at_start"]["load_average"]) == 3
    assert "p99/p50" in proc.stdout and "x 1 client(s)" in proc.stdout
