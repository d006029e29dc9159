"""The MLflow model registry: versions, the champion rule, and ``molgnn.load("models:/...")``.

Every test uses a real embedded MLflow SQLite store in a temporary folder, real molgnn
checkpoints logged as MLflow models, and reads the registry back with ``mlflow.MlflowClient``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("mlflow")

from mlflow import MlflowClient

import molgnn
from molgnn.io import save_checkpoint
from molgnn.models import build_model
from molgnn.tracking import (
    CHAMPION,
    TrackedRun,
    champion,
    ensure_experiment,
    log_checkpoint_model,
    promote,
    register,
    versions,
)

FIXTURE_QM9 = Path(__file__).parents[1] / "fixtures" / "qm9pack"  # 30 real QM9 molecules
TINY = {"kind": "et", "hidden_channels": 8, "num_layers": 1, "num_heads": 2, "num_rbf": 4}
NAME = "qm9-gap-et"
HELD_A = "a" * 64  # two held-out sets' digests
HELD_B = "b" * 64


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A tracking URI, and a function that logs a fresh tiny checkpoint as a run's model."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = ensure_experiment(client, uri, "registry-test")
    made: dict[str, Path] = {}

    def tracked(seed: int) -> TrackedRun:
        torch.manual_seed(seed)
        model = build_model(TINY)
        payload = {"model_config": model.config.to_dict(), "state_dict": model.state_dict()}
        path = save_checkpoint(payload, root / f"seed{seed}" / f"model-{seed}.ckpt")
        run = client.create_run(experiment, run_name=f"seed {seed}")
        model_uri = log_checkpoint_model(uri, run.info.run_id, path)
        client.set_terminated(run.info.run_id)
        made[model_uri] = path
        return TrackedRun(run.info.run_id, model_uri, {})

    return uri, client, tracked, made


@pytest.fixture(scope="module")
def qm9_molecules(tmp_path_factory):
    """The first eight real QM9 molecules of the fixture."""
    from molgnn.training import TrainConfig
    from molgnn.training.data import load_dataset

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))
        root = tmp_path_factory.mktemp("qm9")
        dataset = load_dataset(TrainConfig(subset=30, data_root=str(root)))
    return [dataset[i] for i in range(8)]


@pytest.fixture(scope="module")
def registry(mlflow_store):
    """Six versions of NAME registered in this order, with the champion rule's outcome."""
    uri, _, tracked, _ = mlflow_store
    runs = [tracked(seed) for seed in range(6)]
    plan = [  # (test MAE, held-out set)
        (0.50, HELD_A),  # v1: the first version -> champion
        (0.40, HELD_A),  # v2: beats v1 on the same set -> champion
        (0.45, HELD_A),  # v3: worse -> not champion
        (0.40, HELD_A),  # v4: a tie is not a win
        (0.10, HELD_B),  # v5: another held-out set -> not compared, not champion
        (0.30, HELD_A),  # v6: beats v2 -> champion
    ]
    champions = []
    numbers = []
    for run, (mae, held) in zip(runs, plan, strict=True):
        numbers.append(register(uri, NAME, run, mae, held, tags={"molgnn.note": f"{mae}"}))
        champions.append(champion(uri, NAME).version)
    return runs, numbers, champions


def test_versions_are_numbered_and_tagged(mlflow_store, registry):
    uri, client, _, _ = mlflow_store
    runs, numbers, _ = registry
    assert numbers == [1, 2, 3, 4, 5, 6]
    listed = versions(uri, NAME)
    assert [v.version for v in listed] == numbers
    for run, v in zip(runs, listed, strict=True):
        mv = client.get_model_version(NAME, str(v.version))
        assert mv.run_id == run.run_id
        assert mv.tags["molgnn.source"] == run.model_uri == v.source
        assert float(mv.tags["molgnn.test_mae"]) == v.test_mae
        assert mv.tags["molgnn.heldout_digest"] == v.heldout_digest
        assert mv.tags["molgnn.note"] == repr(v.test_mae)
    assert [v.test_mae for v in listed] == [0.5, 0.4, 0.45, 0.4, 0.1, 0.3]
    assert [v.heldout_digest for v in listed] == [HELD_A] * 4 + [HELD_B, HELD_A]


def test_champion_moves_only_to_a_better_mae_on_the_same_heldout_set(mlflow_store, registry):
    uri, client, _, _ = mlflow_store
    _, _, champions = registry
    assert champions == [1, 2, 2, 2, 2, 6]
    decisions = [
        client.get_model_version(NAME, str(n)).tags["molgnn.champion_decision"] for n in range(1, 7)
    ]
    assert decisions[0].startswith("champion")
    assert decisions[1].startswith("champion") and "v1" in decisions[1]
    assert decisions[2].startswith("not champion") and decisions[3].startswith("not champion")
    assert decisions[4].startswith("not compared")
    assert decisions[5].startswith("champion") and "v2" in decisions[5]
    assert client.get_model_version_by_alias(NAME, CHAMPION).version == 6
    assert [v.aliases for v in versions(uri, NAME)] == [()] * 5 + [(CHAMPION,)]


def test_registering_the_same_model_again_creates_no_version(mlflow_store, registry):
    uri, client, _, _ = mlflow_store
    runs, _, _ = registry
    assert register(uri, NAME, runs[1], 0.40, HELD_A) == 2
    assert register(uri, NAME, runs[4], 0.10, HELD_B) == 5
    assert len(client.search_model_versions(f"name='{NAME}'")) == 6
    assert champion(uri, NAME).version == 6  # re-registering made no new decision


def test_promote_moves_the_champion_to_a_new_heldout_set(mlflow_store, registry):
    uri, _, tracked, _ = mlflow_store
    name = "promoted"
    first = register(uri, name, tracked(10), 0.2, HELD_A)
    other = register(uri, name, tracked(11), 0.3, HELD_B)
    assert champion(uri, name).version == first
    promote(uri, name, other)
    assert champion(uri, name).version == other
    # now versions on HELD_B compete with it, and HELD_A ones are not compared
    assert register(uri, name, tracked(12), 0.25, HELD_B) == 3
    assert champion(uri, name).version == 3
    assert register(uri, name, tracked(13), 0.01, HELD_A) == 4
    assert champion(uri, name).version == 3
    with pytest.raises(ValueError, match=r"no version 9 \(versions: \[1, 2, 3, 4\]\)"):
        promote(uri, name, 9)


def test_bad_registrations_are_refused(mlflow_store, registry):
    uri, _, _, _ = mlflow_store
    runs, _, _ = registry
    with pytest.raises(ValueError, match="test_mae must be a finite, non-negative number"):
        register(uri, NAME, runs[0], math.nan, HELD_A)
    with pytest.raises(ValueError, match="test_mae must be a finite, non-negative number"):
        register(uri, NAME, runs[0], -1.0, HELD_A)
    with pytest.raises(ValueError, match="heldout_digest"):
        register(uri, NAME, runs[0], 0.1, "")
    with pytest.raises(ValueError, match="contains /"):
        register(uri, "a/b", runs[0], 0.1, HELD_A)
    with pytest.raises(ValueError, match="non-empty name"):
        register(uri, " ", runs[0], 0.1, HELD_A)
    with pytest.raises(
        ValueError, match=r"no model named 'nope' \(registered models: .*qm9-gap-et"
    ):
        champion(uri, "nope")
    with pytest.raises(ValueError, match="no model named 'nope'"):
        versions(uri, "nope")
    with pytest.raises(ValueError, match="cannot use the MLflow registry at 'bogus://x'"):
        register("bogus://x", NAME, runs[0], 0.1, HELD_A)


def _predict(model, molecules):
    return molgnn.predict(model, molecules).values


def test_load_from_the_registry_predicts_like_the_checkpoint_file(
    mlflow_store, registry, qm9_molecules, monkeypatch
):
    uri, _, _, made = mlflow_store
    runs, _, _ = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    served = molgnn.load(f"models:/{NAME}@{CHAMPION}")
    from_file = molgnn.load(made[runs[5].model_uri])
    assert torch.equal(_predict(served, qm9_molecules), _predict(from_file, qm9_molecules))
    assert served.checkpoint_info["registry"] == {
        "uri": f"models:/{NAME}@{CHAMPION}",
        "name": NAME,
        "version": 6,
        "tracking_uri": uri,
    }
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    second = molgnn.load(f"models:/{NAME}/2", tracking_uri=uri)
    expected = _predict(molgnn.load(made[runs[1].model_uri]), qm9_molecules)
    assert torch.equal(_predict(second, qm9_molecules), expected)
    assert not torch.equal(expected, _predict(served, qm9_molecules))  # another model


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (f"models:/{NAME}@best", r"has no alias 'best' \(its aliases: champion \(v6\)\)"),
        ("models:/nope@champion", r"no model named 'nope' \(registered models: .*qm9-gap-et"),
        (f"models:/{NAME}/42", r"has no version 42 \(its versions: 1, 2, 3, 4, 5, 6\)"),
        (f"models:/{NAME}", "is not a registered-model URI"),
        (f"models:/{NAME}/latest", "'latest' is not a version number"),
        ("models:/@champion", "is not a registered-model URI"),
        ("models:/it's@champion", "a registered model's name cannot contain '"),
    ],
)
def test_load_names_what_the_registry_lacks(mlflow_store, registry, target, message):
    uri, _, _, _ = mlflow_store
    with pytest.raises(ValueError, match=message):
        molgnn.load(target, tracking_uri=uri)


def test_load_needs_a_registry_that_exists(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match="set MLFLOW_TRACKING_URI"):
        molgnn.load(f"models:/{NAME}@champion")
    with pytest.raises(ValueError, match="cannot use the MLflow registry at bogus://x"):
        molgnn.load(f"models:/{NAME}@champion", tracking_uri="bogus://x")
    missing = tmp_path / "none.db"
    with pytest.raises(ValueError, match="names no database"):
        molgnn.load(f"models:/{NAME}@champion", tracking_uri=f"sqlite:///{missing}")
    assert not missing.exists()  # nothing was created


def test_load_refuses_a_version_without_a_molgnn_checkpoint(mlflow_store, tmp_path):
    uri, client, _, _ = mlflow_store
    experiment = ensure_experiment(client, uri, "registry-test")
    run = client.create_run(experiment)
    logged = client.create_logged_model(experiment, source_run_id=run.info.run_id, name="other")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.pt").write_bytes(b"not molgnn")
    client.log_model_artifacts(logged.model_id, str(tmp_path / "model"))
    client.create_registered_model("foreign")
    import mlflow

    mlflow.set_tracking_uri(uri)  # MLflow's registry finds logged models through it
    try:
        client.create_model_version("foreign", logged.model_uri, run.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)
    with pytest.raises(ValueError, match=r"version 1 of 'foreign'\) holds no molgnn checkpoint"):
        molgnn.load("models:/foreign/1", tracking_uri=uri)


def test_load_without_mlflow_says_which_extra_to_install(mlflow_store):
    uri, _, _, _ = mlflow_store
    code = (
        "import sys; sys.modules['mlflow'] = None\n"  # what an environment without MLflow gives
        "import molgnn\n"
        "try:\n"
        f"    molgnn.load('models:/{NAME}@champion', tracking_uri={uri!r})\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "needs MLflow: pip install 'molgnn[track]'" in out.stdout


def test_stores_made_before_mlflow_links_gain_the_table(tmp_path):
    import sqlite3

    from molgnn.online import Store

    root = tmp_path / "store"
    Store(root).close()
    db = sqlite3.connect(root / "store.sqlite")
    db.execute("DROP TABLE mlflow_versions")  # as a store written before the links existed
    db.commit()
    db.close()
    old = Store(root, readonly=True)
    assert old.mlflow_versions() == []  # read-only: nothing is written, nothing fails
    old.close()
    store = Store(root)  # opened for writing: the table is added, empty
    assert store.mlflow_versions() == [] and store._has_table("mlflow_versions")
    with pytest.raises(ValueError, match="no model 1"):  # a link needs the store's model
        store.link_mlflow_version(1, "sqlite:///x.db", NAME, 1)
    store.close()


def test_loading_from_the_registry_imports_no_training(mlflow_store, registry):
    uri, _, _, _ = mlflow_store
    code = (
        "import sys, molgnn\n"
        f"molgnn.load('models:/{NAME}@champion', tracking_uri={uri!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('molgnn.')))\n"
    )
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "molgnn.inference.loading" in out.stdout
    assert "molgnn.training" not in out.stdout and "molgnn.tracking" not in out.stdout
