"""``molgnn.tracking.runs``: the tracking URI, params, data references and a tracked fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from molgnn.tracking import (
    DataRef,
    FitTracker,
    ensure_experiment,
    flat_params,
    flat_test_metrics,
    qm9_data,
    tracking_uri,
)
from molgnn.training import TrainConfig, fit

FIXTURE_QM9 = Path(__file__).parents[1] / "fixtures" / "qm9pack"  # 30 QM9 molecules
TINY = ["model.hidden_channels=16", "model.num_layers=1", "model.num_heads=2", "model.num_rbf=8"]


def _config(tmp_path: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        subset=30, epochs=2, batch_size=8, device="cpu", data_root=str(tmp_path / "qm9"),
        out_dir=str(tmp_path / "run"),
    )  # fmt: skip
    return base.with_assignments(TINY).replace(**changes)


def test_importing_molgnn_tracking_or_training_does_not_import_mlflow():
    code = (
        "import sys, molgnn, molgnn.tracking, molgnn.training; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'ray')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tracking_uri_prefers_the_argument_then_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri(None, "out") == f"sqlite:///{tmp_path.resolve()}/out/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert tracking_uri(None, "out") == "http://team:5000"
    assert tracking_uri("sqlite:///x.db", "out") == "sqlite:///x.db"


def test_flat_params_dot_the_nested_tree():
    params = flat_params(TrainConfig().to_dict())
    assert params["model.hidden_channels"] == str(TrainConfig().model.hidden_channels)
    assert params["lr"] == "0.0005"
    assert params["max_time"] == "None"
    assert not any(isinstance(v, dict) for v in params.values())
    assert flat_params({"a": {"b": [1, 2]}}) == {"a.b": "[1, 2]"}


def test_flat_test_metrics_names_units_and_sizes():
    metrics = {
        "test_mae": 0.1, "test_mae_mev": 100.0, "val_mae": 0.2, "epoch": 3,
        "test_mae_by_size": {"12": {"count": 2, "mae": 50.0}, "9": {"count": 1, "mae": 70.0}},
    }  # fmt: skip
    assert flat_test_metrics(metrics) == {
        "test_mae": 0.1,
        "test_mae_mev": 100.0,
        "test_mae_mev_by_size.9": 70.0,
        "test_count_by_size.9": 1.0,
        "test_mae_mev_by_size.12": 50.0,
        "test_count_by_size.12": 2.0,
    }
    no_ev = {"test_mae": 1.0, "test_mae_by_size": {"9": {"count": 1, "mae": 1.0}}}
    assert "test_mae_by_size.9" in flat_test_metrics(no_ev)


def test_qm9_data_is_a_stable_hash_of_each_split(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    config = _config(tmp_path)
    train, again, test = qm9_data(config), qm9_data(config), qm9_data(config, "test")
    assert train == again and len(train.digest) == 64
    assert train.molecules == 24 and test.molecules == 3
    assert train.digest != test.digest
    assert train.source == str((tmp_path / "qm9").resolve())
    assert qm9_data(config.replace(split_seed=2)).digest != train.digest
    assert qm9_data(config.replace(target="homo")).digest != train.digest
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        qm9_data(config, "dev")


def test_a_failed_fit_ends_its_run_failed(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with (
        pytest.raises(RuntimeError, match="boom"),
        FitTracker(uri, experiment="e", run_name="r") as tracker,
    ):
        tracker.start(TrainConfig(), DataRef("d", "ab" * 32, str(tmp_path), 3))
        raise RuntimeError("boom")
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    assert run.info.status == "FAILED" and run.info.run_name == "r"
    (data,) = run.inputs.dataset_inputs
    assert data.dataset.digest == ("ab" * 32)[:36]
    assert json.loads(data.dataset.profile)["molecules"] == 3


def test_finish_logs_the_history_when_no_epoch_callback_ran(tmp_path, monkeypatch):
    """As after a data-parallel fit, which takes no callbacks; the run nests under a parent."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    uri = tracking_uri(None, tmp_path)
    client = MlflowClient(uri)
    parent = client.create_run(ensure_experiment(client, uri, "p")).info.run_id
    with FitTracker(uri, experiment="p", parent_run_id=parent, tags={"k": "v"}) as tracker:
        run_id = tracker.start(config, qm9_data(config))
        result = fit(config, verbose=False)
        tracked = tracker.finish(result)
    assert tracked.run_id == run_id and tracked.model_uri.startswith("models:/m-")
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.data.tags["k"] == "v"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2]
    assert tracked.test_metrics["test_mae"] == pytest.approx(result.metrics["test_mae"])
