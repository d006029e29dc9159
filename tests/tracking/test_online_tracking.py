"""``molgnn online --mlflow``: every retrain an MLflow run, every model a registered version.

A real online loop (a tiny ET, 48 real QM9 molecules, three retrains) tracked in an embedded
MLflow SQLite store, read back with ``mlflow.MlflowClient``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("mlflow")

from mlflow import MlflowClient

import molgnn
from molgnn.cli import main
from molgnn.online import Store

NAME = "qm9-gap-online"
TINY = [
    "--set", "model.hidden_channels=8", "--set", "model.num_layers=1",
    "--set", "model.num_heads=2", "--set", "model.num_rbf=8",
]  # fmt: skip


def _online(store: Path, data_root: Path, *extra: str) -> int:
    return main(
        [
            "online", "--store", str(store), "--subset", "48", "--initial", "16", "--chunk", "8",
            "--growth", "0.3", "--val", "8", "--test", "8", "--epochs", "1",
            "--batch-size", "16", "--seed", "0", "--data-root", str(data_root),
            "--set", "device=cpu", "--quiet", *TINY, *extra,
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One ``molgnn online --mlflow URI --registered-model NAME`` run: (store, uri, client)."""
    root = tmp_path_factory.mktemp("online")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.chdir(root)  # nothing may land in the current folder
        args = ("--mlflow", uri, "--registered-model", NAME)
        assert _online(root / "store", root / "qm9", *args) == 0
        # Run again: nothing new arrives, and nothing is registered twice.
        assert _online(root / "store", root / "qm9", *args) == 0
    assert sorted(p.name for p in root.iterdir()) == ["mlartifacts", "mlflow.db", "qm9", "store"]
    return Store(root / "store", readonly=True), uri, MlflowClient(uri)


def test_three_retrains_give_three_linked_versions(tracked):
    store, uri, client = tracked
    models, versions = store.models(), {v.id: v for v in store.versions()}
    assert [versions[m.data_version].size for m in models] == [16, 24, 32]
    mvs = sorted(client.search_model_versions(f"name='{NAME}'"), key=lambda mv: int(mv.version))
    assert [int(mv.version) for mv in mvs] == [1, 2, 3]
    links = store.mlflow_versions(uri, NAME)
    assert [(link.model, link.version) for link in links] == [
        (m.id, k + 1) for k, m in enumerate(models)
    ]
    heldout = store.heldout_digest("test")
    for model, mv, link in zip(models, mvs, links, strict=True):
        version = versions[model.data_version]
        assert mv.tags["molgnn.store_model"] == str(model.id)
        assert mv.tags["molgnn.data_version"] == version.id
        assert mv.tags["molgnn.data_size"] == str(version.size)
        assert mv.tags["molgnn.checkpoint_sha256"] == model.checkpoint_sha256
        assert mv.tags["molgnn.store"] == str(store.root.resolve())
        assert float(mv.tags["molgnn.test_mae"]) == model.test_mae
        assert mv.tags["molgnn.heldout_digest"] == heldout
        assert mv.run_id == link.run_id and link.model_uri == f"models:/{NAME}/{mv.version}"


def test_each_retrain_is_one_run_with_its_data_version_as_input(tracked):
    store, _, client = tracked
    models, versions = store.models(), {v.id: v for v in store.versions()}
    experiment = client.get_experiment_by_name("molgnn-online")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    mvs = sorted(client.search_model_versions(f"name='{NAME}'"), key=lambda mv: int(mv.version))
    assert [r.info.run_id for r in runs] == [mv.run_id for mv in mvs]
    for run, model in zip(runs, models, strict=True):
        version = versions[model.data_version]
        inputs = {
            tag.value: d.dataset
            for d in run.inputs.dataset_inputs
            for tag in d.tags
            if tag.key == "mlflow.data.context"
        }
        training = inputs["training"]
        assert version.id.startswith(training.digest)  # MLflow keeps 36 characters of it
        assert json.loads(training.profile)["sha256"] == version.id
        assert json.loads(training.source)["uri"] == str(store.root.resolve())
        assert json.loads(inputs["testing"].profile)["sha256"] == store.heldout_digest("test")
        assert run.data.tags["molgnn.data_version"] == version.id
        assert run.data.tags["molgnn.checkpoint_sha256"] == model.checkpoint_sha256
        assert run.data.metrics["test_mae"] == pytest.approx(model.test_mae)
        epochs = client.get_metric_history(run.info.run_id, "val_mae")
        assert [m.step for m in epochs] == [1]


def test_the_champion_is_where_the_test_maes_put_it(tracked):
    store, uri, client = tracked
    maes = [m.test_mae for m in store.models()]
    expected = 1  # the first version, then each strictly better one on the same held-out set
    for k, mae in enumerate(maes[1:], start=2):
        if mae < maes[expected - 1]:
            expected = k
    assert client.get_model_version_by_alias(NAME, "champion").version == expected
    assert molgnn.tracking.champion(uri, NAME).version == expected


def test_loading_the_champion_predicts_like_its_store_checkpoint(tracked):
    store, uri, client = tracked
    number = int(client.get_model_version_by_alias(NAME, "champion").version)
    link = next(link for link in store.mlflow_versions(uri, NAME) if link.version == number)
    checkpoint = store.root / store.get_model(link.model).checkpoint
    molecules = store.molecules("test")
    served = molgnn.load(f"models:/{NAME}@champion", tracking_uri=uri)
    local = molgnn.load(checkpoint)
    assert torch.equal(
        molgnn.predict(served, molecules).values, molgnn.predict(local, molecules).values
    )
