"""A real tracked sweep: a parent MLflow run, nested trial runs, the best one marked and registered.

The sweep starts Ray, so it runs only in a loopback-only network namespace, as the sweep tests of
``tests/tune`` do (``unshare -n bash -c 'ip link set lo up && pytest ...'``); elsewhere it skips
and says why, and with ``MOLGNN_REQUIRE_NETNS=1`` it fails instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("ray.tune")
pytest.importorskip("optuna")

import mlflow
from mlflow import MlflowClient

import molgnn
from molgnn.cli.tune import add_arguments, config_from_args
from molgnn.tracking import CHAMPION, qm9_data
from molgnn.training import TrainConfig
from molgnn.tune import SweepConfig, parse_space, run_sweep

REPO = Path(__file__).resolve().parents[2]
FIXTURE_QM9 = REPO / "tests" / "fixtures" / "qm9pack"  # 30 QM9 molecules
TINY = ["model.hidden_channels=16", "model.num_layers=1", "model.num_heads=2", "model.num_rbf=8"]

sys.path.insert(0, str(REPO / "tests" / "tune"))
from ray_helpers import loopback_only_problem  # noqa: E402


@pytest.fixture
def loopback_only():
    problem = loopback_only_problem()
    if problem is not None:
        if os.environ.get("MOLGNN_REQUIRE_NETNS") == "1":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_mlflow_flag_puts_the_store_beside_the_sweep(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    storage = tmp_path / "sweeps"
    config = config_from_args(
        _args("--smoke", "--storage-path", str(storage), "--name", "s", "--mlflow"), "et"
    )
    assert config.mlflow_uri == f"sqlite:///{storage.resolve()}/s/mlflow.db"
    assert config.mlflow_experiment == "molgnn" and config.registered_model is None
    plain = config_from_args(_args("--smoke", "--storage-path", str(storage)), "et")
    assert plain.mlflow_uri is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert config_from_args(_args("--smoke"), "et").mlflow_uri == "http://team:5000"
    named = config_from_args(
        _args("--smoke", "--mlflow", "http://other:5000", "--mlflow-experiment", "gap"), "et"
    )
    assert (named.mlflow_uri, named.mlflow_experiment) == ("http://other:5000", "gap")


def test_tracking_options_that_cannot_work_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match="registered_model='m' needs MLflow tracking"):
        config_from_args(_args("--smoke", "--registered-model", "m"), "et")
    with pytest.raises(ValueError, match="needs a local --storage-path"):
        config_from_args(_args("--smoke", "--storage-path", "s3://bucket/x", "--mlflow"), "et")


def test_a_bad_tracking_uri_fails_before_ray_starts(tmp_path):
    config = SweepConfig(
        train=TrainConfig(subset=30, epochs=1, data_root=str(tmp_path / "qm9")),
        space=parse_space({"lr": {"loguniform": [1e-4, 1e-2]}}),
        storage_path=str(tmp_path),
        mlflow_uri="nosuchscheme://nowhere",
    )
    with pytest.raises(ValueError, match="cannot use the MLflow tracking URI 'nosuchscheme"):
        run_sweep(config)
    import ray

    assert not ray.is_initialized()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sweep_nests_trial_runs_and_marks_and_registers_the_best(
    tmp_path, monkeypatch, loopback_only
):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    uri = f"sqlite:///{tmp_path / 'sweeps' / 'tiny' / 'mlflow.db'}"
    train = TrainConfig(
        subset=30, epochs=2, batch_size=8, device="cpu", data_root=str(tmp_path / "qm9")
    ).with_assignments(TINY)
    config = SweepConfig(
        train=train,
        space=parse_space(
            {"lr": {"loguniform": [1e-4, 1e-2]}, "model.num_rbf": {"choice": [4, 8]}}
        ),
        num_samples=2,
        storage_path=str(tmp_path / "sweeps"),
        name="tiny",
        num_cpus=2,
        verbose=0,
        mlflow_uri=uri,
        registered_model="qm9-gap-tiny",
    )
    result = run_sweep(config)
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_EXPERIMENT_ID" not in os.environ
    assert len(result.table) == 2 and result.best_checkpoint is not None

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("molgnn")
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "tiny"
    assert parent.data.params["train.model.hidden_channels"] == "16"
    assert parent.data.params["space.lr"] == "loguniform (0.0001, 0.01)"
    assert parent.data.params["num_samples"] == "2"
    (data,) = parent.inputs.dataset_inputs
    assert data.dataset.digest == qm9_data(train).digest[:36]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "best_config.yaml" in artifacts and "best.ckpt" not in artifacts

    trials = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert sorted(r.data.tags["trial_name"] for r in trials) == sorted(result.table["trial"])
    for run in trials:
        # The trial's config tree: the sampled values and every other field of its config.
        assert run.data.params["model.hidden_channels"] == "16"
        assert run.data.params["model.num_rbf"] in ("4", "8")
        assert run.data.params["subset"] == "30"
        history = client.get_metric_history(run.info.run_id, "val_mae_mev")
        assert [m.step for m in history][:1] == [1]
    best = [r for r in trials if r.data.tags.get("molgnn.best_trial") == "true"]
    assert len(best) == 1 and best[0].info.run_id == result.best_run_id
    assert best[0].data.tags["trial_name"] == result.table.iloc[0]["trial"]
    assert parent.data.tags["molgnn.best_run_id"] == result.best_run_id
    assert parent.data.metrics["best_val_mae_mev"] == pytest.approx(result.best_val_mae_mev)
    assert parent.data.metrics["test_mae_mev"] == pytest.approx(result.test_mae_mev)

    # The best model: a logged model of the best trial's run, holding the exported checkpoint,
    # registered as version 1 and champion.
    assert best[0].data.tags["molgnn.model_uri"] == result.model_uri
    assert result.registered_version == 1
    version = client.get_model_version_by_alias("qm9-gap-tiny", CHAMPION)
    assert int(version.version) == 1 and version.run_id == result.best_run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    local = Path(mlflow.artifacts.download_artifacts(result.model_uri))
    (ckpt,) = local.rglob("*.ckpt")
    exported = molgnn.load(result.best_checkpoint)
    logged = molgnn.load(ckpt)
    for a, b in zip(exported.state_dict().values(), logged.state_dict().values(), strict=True):
        assert (a == b).all()
