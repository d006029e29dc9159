"""Real sweeps of tiny trials on Ray: ASHA, failed trials, exports, a 2-node cluster.

The trials train the toy backend (a small MLP, see ``tune_toy_backend.py``), so these tests
check the sweep machinery itself; ``test_tune_real_et.py`` and ``test_tune_cluster.py`` run
molgnn's own models (``test_tune_cluster.py`` also kills nodes and drivers mid-sweep).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import yaml
from ray_helpers import LOOPBACK
from tune_toy_backend import ToyBackend, ToyConfig, load_toy_model

from molgnn.tune import BEST_CHECKPOINT, BEST_CONFIG, SweepConfig, parse_space, run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(300)]

SPACE = {
    "lr": {"loguniform": [1e-4, 3e-2]},
    "model.hidden_channels": {"choice": [8, 16]},
    "explode": {"choice": [False, True]},
}


def test_local_sweep_stops_early_records_failures_and_exports(tmp_path: Path) -> None:
    config = SweepConfig(
        train=ToyConfig(subset=256, epochs=4, seed=3),
        space=parse_space(SPACE),
        num_samples=6,
        grace_period=1,
        reduction_factor=2.0,
        storage_path=str(tmp_path),
        name="toy",
        num_cpus=2,
        max_failures=0,  # the NaN trial would fail again on each retry
        verbose=0,
        points_to_evaluate=(
            {"lr": 1e-2, "model.hidden_channels": 16, "explode": False},
            {"lr": 1e-2, "model.hidden_channels": 8, "explode": False},
            {"lr": 1e-4, "model.hidden_channels": 8, "explode": False},  # learns too slowly
            {"lr": 1e-2, "model.hidden_channels": 8, "explode": True},  # NaN loss at epoch 2
        ),
    )
    result = run_sweep(config, backend=ToyBackend())
    table = result.table
    assert len(table) == 6
    statuses = table["status"].tolist()
    assert "STOPPED EARLY" in statuses, table  # ASHA stopped at least one trial
    assert "ERROR" in statuses and "COMPLETED" in statuses  # the failure did not stop the sweep
    slow = table[table["lr"] == 1e-4].iloc[0]
    assert slow["status"] == "STOPPED EARLY" and slow["epochs"] < 4
    nan_trial = table[(table["explode"]) & (table["lr"] == 1e-2)].iloc[0]
    assert nan_trial["status"] == "ERROR"

    # The best trial: exported, loadable, and consistent with the table.
    best = table.iloc[0]
    assert result.best_val_mae_mev == pytest.approx(best["best_val_mae_mev"])
    assert result.best_val_mae_mev == pytest.approx(table["best_val_mae_mev"].min())
    ckpt = tmp_path / "toy" / BEST_CHECKPOINT
    assert result.best_checkpoint == str(ckpt) and ckpt.is_file()
    model = load_toy_model(ckpt)
    prediction = model(torch.randn(5, 4))
    assert prediction.shape == (5, 1) and torch.isfinite(prediction).all()
    assert result.test_mae_mev is not None and math.isfinite(result.test_mae_mev)
    saved = yaml.safe_load((tmp_path / "toy" / BEST_CONFIG).read_text())
    assert saved["tuned"] == result.best_config
    assert saved["tuned"]["lr"] == pytest.approx(best["lr"])
    assert saved["train"]["model"]["hidden_channels"] == best["model.hidden_channels"]
    for plot in ("optimization_history.png", "param_importances.png"):
        assert (tmp_path / "toy" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Trial records: every trial ran on the CPU of the local node, on 127.0.0.1, with sane
    # wall-clock times.
    assert len(result.records) == 6
    for record in result.records:
        assert record["device"] == "cpu" and record["gpu_ids"] == []
        assert record["node_ip"] == LOOPBACK
        assert record["start"] < record["end"]
    assert all(r["runs"] == 1 for r in result.records)

    # A second sweep under the same name must be resumed explicitly.
    with pytest.raises(ValueError, match="already exists"):
        run_sweep(config, backend=ToyBackend())


def _overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_two_node_cluster_spreads_and_packs_trials(tmp_path: Path, ray_cluster) -> None:
    address = ray_cluster(num_nodes=2, num_cpus=2, num_gpus=2)
    config = SweepConfig(
        train=ToyConfig(subset=128, epochs=3, sleep_s=1.0),
        space=parse_space({"lr": {"loguniform": [1e-3, 3e-2]}, "model.hidden_channels": 8}),
        num_samples=6,
        grace_period=3,
        gpus_per_trial=0.5,
        cpus_per_trial=1,
        address=address,
        storage_path=str(tmp_path),  # both nodes share this machine's filesystem
        name="cluster",
        verbose=0,
    )
    result = run_sweep(config, backend=ToyBackend())
    records = result.records
    assert len(records) == 6
    assert set(result.table["status"]) == {"COMPLETED"}
    nodes = {r["node_id"] for r in records}
    assert len(nodes) == 2, records  # trials ran on both nodes
    # ... and at the same time on both nodes.
    assert any(
        _overlap(a, b) and a["node_id"] != b["node_id"]
        for a, b in itertools.combinations(records, 2)
    )
    for record in records:
        assert record["node_ip"] == LOOPBACK
        assert len(record["gpu_ids"]) == 1  # a 0.5-GPU trial holds one GPU id
        assert record["device"] == "cpu"  # no CUDA here: the trials fell back to the CPU
    # At most two trials at once per declared GPU: check at every trial start.
    for record in records:
        t = record["start"] + 1e-3
        for node in nodes:
            for gpu in {g for r in records for g in r["gpu_ids"]}:
                running = [
                    r
                    for r in records
                    if r["node_id"] == node and gpu in r["gpu_ids"] and r["start"] <= t < r["end"]
                ]
                assert len(running) <= 2
    assert Path(result.best_checkpoint or "").is_file()
