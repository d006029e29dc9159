"""``molgnn train --mlflow``: a tiny real training tracked in an embedded MLflow SQLite store."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

pytest.importorskip("mlflow")

import mlflow
from mlflow import MlflowClient

import molgnn
from molgnn.cli import main
from molgnn.io.checkpoint import load_checkpoint
from molgnn.tracking import flat_params

FIXTURE_QM9 = Path(__file__).parents[1] / "fixtures" / "qm9pack"  # 30 QM9 molecules
TINY = [
    "--set", "model.hidden_channels=16", "--set", "model.num_layers=1",
    "--set", "model.num_heads=2", "--set", "model.num_rbf=8",
]  # fmt: skip


def _train(out: Path, data_root: Path, *extra: str, epochs: int = 2) -> int:
    return main(
        [
            "train", "--subset", "30", "--epochs", str(epochs), "--batch-size", "8",
            "--device", "cpu", "--data-root", str(data_root), "--out-dir", str(out),
            "--quiet", *TINY, *extra,
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One tracked ``molgnn train --mlflow`` run: (out_dir, client, run)."""
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.chdir(root)  # nothing may land in the current folder
        assert _train(root / "run", root / "qm9", "--mlflow") == 0
        assert "MLFLOW_TRACKING_URI" not in os.environ  # tracking left the process as it was
    db = root / "run" / "mlflow.db"
    assert db.is_file()
    assert not (root / "mlruns").exists() and not (root / "mlflow.db").exists()
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("molgnn")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return root / "run", client, runs[0]


def test_run_records_the_whole_config_tree_as_params(tracked):
    out, _, run = tracked
    assert run.info.status == "FINISHED"
    config = json.loads((out / "config.json").read_text())
    assert run.data.params == flat_params(config)
    assert run.data.params["model.hidden_channels"] == "16"
    assert run.data.params["lr"] == str(config["lr"])


def test_per_epoch_metrics_have_the_epoch_as_step(tracked):
    out, client, run = tracked
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    for key in ("train_loss", "val_mae", "val_mae_mev", "lr"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx([row[key] for row in log])


def test_test_metrics_by_molecule_size(tracked):
    out, _, run = tracked
    final = json.loads((out / "metrics.json").read_text())
    metrics = run.data.metrics
    assert metrics["test_mae_mev"] == pytest.approx(final["test_mae_mev"])
    by_size = final["test_mae_by_size"]
    assert by_size
    for atoms, row in by_size.items():
        assert metrics[f"test_mae_mev_by_size.{atoms}"] == pytest.approx(row["mae"])
        assert metrics[f"test_count_by_size.{atoms}"] == row["count"]


def test_plots_and_files_are_artifacts(tracked):
    _, client, run = tracked
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "metrics.json", "test_mae_by_size.json"} <= top
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib" in run.data.tags["molgnn.plots"]
        return
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/parity.png", "plots/errors.png", "plots/learning_curve.png"}


def test_dataset_input_digest_is_the_train_split_hash(tracked):
    out, _, run = tracked
    payload = load_checkpoint(out / "best.ckpt")
    ids = payload["data"]["molecule_ids"][payload["data"]["split"]["train"]].tolist()
    digest = hashlib.sha256(b"qm9/gap\n")
    for mol_id in sorted(ids):
        digest.update(f"{mol_id}\n".encode())
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    train = inputs["training"]
    assert train.digest == digest.hexdigest()[:36]
    assert json.loads(train.profile) == {"sha256": digest.hexdigest(), "molecules": len(ids)}
    assert run.data.tags["molgnn.data.digest"] == digest.hexdigest()
    assert json.loads(train.source) == {"uri": str((out.parent / "qm9").resolve())}
    assert train.name == "qm9-gap-30-train"
    assert inputs["testing"].name == "qm9-gap-30-test"
    assert inputs["testing"].digest != train.digest


def test_logged_model_holds_the_checkpoint_and_predicts_alike(tracked, monkeypatch):
    out, client, run = tracked
    outputs = run.outputs.model_outputs
    assert len(outputs) == 1
    model_id = outputs[0].model_id
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == run.info.run_id
    assert run.data.tags["molgnn.model_uri"] == f"models:/{model_id}"
    # Test metrics are linked to the logged model.
    assert {m.key for m in logged.metrics} >= {"test_mae", "test_mae_mev"}
    # models:/ URIs resolve through the tracking URI of the process.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}"))
    ckpts = list(local.rglob("*.ckpt"))
    assert [p.relative_to(local).as_posix() for p in ckpts] == ["artifacts/best.ckpt"]
    from molgnn.data import QM9

    mols = [QM9(str(out.parent / "qm9"), target="gap", subset=30)[i] for i in range(4)]
    expected = molgnn.predict(molgnn.load(out / "best.ckpt"), mols).values
    assert torch.equal(molgnn.predict(molgnn.load(ckpts[0]), mols).values, expected)
    # MLflow's pyfunc face predicts the same from XYZ files.
    paths = []
    for k, mol in enumerate(mols):
        lines = [str(mol.z.numel()), "molecule"]
        lines += [
            f"{int(z)} {x:.10f} {y:.10f} {w:.10f}"
            for z, (x, y, w) in zip(mol.z, mol.pos.tolist(), strict=True)
        ]
        path = out.parent / f"mol{k}.xyz"
        path.write_text("\n".join(lines) + "\n")
        paths.append(str(path))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{model_id}")
    rows = pyfunc.predict(paths)
    assert [row["gap"] for row in rows] == pytest.approx(expected[:, 0].tolist(), abs=1e-4)


def test_the_environment_variable_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "team" / "store.db"
    db.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    assert _train(tmp_path / "run", tmp_path / "qm9", epochs=1) == 0  # no --mlflow
    assert _train(tmp_path / "run2", tmp_path / "qm9", "--mlflow", epochs=1) == 0
    assert not (tmp_path / "run" / "mlflow.db").exists()
    assert not (tmp_path / "run2" / "mlflow.db").exists()
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("molgnn").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["run", "run2"]
    assert all(r.info.status == "FINISHED" for r in runs)
    # Artifacts of a SQLite store go beside its database.
    assert (db.parent / "mlartifacts" / "molgnn").is_dir()


def test_nothing_is_tracked_without_flag_or_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert _train(tmp_path / "run", tmp_path / "qm9", epochs=1) == 0
    assert (tmp_path / "run" / "best.ckpt").is_file()
    assert not list(tmp_path.rglob("mlflow.db")) and not list(tmp_path.rglob("mlartifacts"))


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("nosuchscheme://nowhere", "cannot use the MLflow tracking URI 'nosuchscheme://nowhere'"),
        ("http://127.0.0.1:9", "cannot reach the MLflow tracking server at http://127.0.0.1:9"),
        ("sqlite:///{tmp}/a-file/x.db", "cannot use the MLflow tracking URI"),
    ],
)
def test_a_bad_uri_is_one_line_before_training(tmp_path, monkeypatch, capsys, uri, words):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    (tmp_path / "a-file").write_text("a file, not a folder")
    uri = uri.format(tmp=tmp_path)
    assert _train(tmp_path / "run", tmp_path / "qm9", "--mlflow", uri) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("molgnn train: error: ") and words in err
    assert not (tmp_path / "run" / "best.ckpt").exists()


def test_a_resumed_run_logs_every_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    assert _train(out, tmp_path / "qm9", "--mlflow", epochs=1) == 0
    assert _train(out, tmp_path / "qm9", "--mlflow", "--resume", epochs=2) == 0
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("molgnn").experiment_id], order_by=["start_time ASC"]
    )
    assert len(runs) == 2
    steps = [m.step for m in client.get_metric_history(runs[1].info.run_id, "val_mae")]
    assert steps == [1, 2]
