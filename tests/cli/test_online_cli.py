import hashlib
import json
from pathlib import Path

import pytest

from molgnn.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9pack"  # 30 QM9 molecules


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE))
    root = tmp_path_factory.mktemp("online")
    args = ["online", "--store", str(root / "store"), "--data-root", str(root / "qm9"),
            "--subset", "30", "--val", "4", "--test", "4", "--initial", "10", "--chunk", "4",
            "--growth", "0.3", "--epochs", "1", "--batch-size", "8",
            "--set", "model.hidden_channels=8", "--set", "model.num_layers=1", "--set", "model.num_heads=2",
            "--set", "model.num_rbf=8"]  # fmt: skip
    assert main([*args, "--max-chunks", "2"]) == 0  # stop early ...
    assert main(args) == 0  # ... and continue
    mp.undo()
    return root / "store"


def registry(capsys, *args):
    code = main(["registry", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_online_runs_and_registry_lists_json(store, capsys):
    # 22 training molecules arrive as 10, 4, 4, 4; growth 0.3 retrains at 10, 14 (>= 13), 22 (>= 19)
    code, out, _ = registry(capsys, "versions", "--store", str(store), "--json")
    versions = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [v["size"] for v in versions] == [10, 14, 18, 22]
    code, out, _ = registry(capsys, "list", "--store", str(store), "--json")
    models = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(models) == 3
    by_id = {v["id"]: v["size"] for v in versions}
    assert [by_id[m["data_version"]] for m in models] == [10, 14, 22]
    assert [m["data_size"] for m in models] == [10, 14, 22]
    assert [m["parent_model"] for m in models] == [None, 1, 2]
    for m in models:
        assert set(m) >= {"checkpoint_sha256", "config", "hyperparameters", "val_mae",
                          "test_mae", "created", "warm_start"}  # fmt: skip
    assert (store / "learning_curve.png").is_file() or "matplotlib" in out


def test_registry_text_best_show_lineage_manifest_verify(store, capsys):
    code, out, _ = registry(capsys, "list", "--store", str(store))
    assert code == 0 and out.splitlines()[0].split()[:3] == ["id", "data", "version"]
    assert len(out.splitlines()) == 4
    _, out, _ = registry(capsys, "best", "--store", str(store), "--json")
    best = json.loads(out)
    _, out, _ = registry(capsys, "list", "--store", str(store), "--json")
    models = [json.loads(line) for line in out.splitlines()]
    assert best["val_mae"] == min(m["val_mae"] for m in models)
    _, out, _ = registry(capsys, "lineage", "3", "--store", str(store), "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [3, 2, 1]
    code, out, _ = registry(capsys, "show", "2", "--store", str(store))
    assert code == 0 and "parent_model: 1" in out and "data_version:" in out
    version = models[0]["data_version"]
    _, out, _ = registry(capsys, "manifest", version[:10], "--store", str(store))
    assert hashlib.sha256(out.encode()).hexdigest() == version
    assert len(out.splitlines()) == 10 and out.startswith("qm9-")
    code, out, _ = registry(capsys, "verify", "--store", str(store))
    assert code == 0 and out.startswith("ok")


def test_registry_errors(store, tmp_path, capsys):
    code, _, err = registry(capsys, "list", "--store", str(tmp_path / "nothing"))
    assert code == 1 and "no online store" in err
    code, _, err = registry(capsys, "show", "--store", str(store))
    assert code == 1 and "needs a model id" in err
    code, _, err = registry(capsys, "show", "99", "--store", str(store))
    assert code == 1 and "no model 99" in err
    code, _, err = registry(capsys, "lineage", "x", "--store", str(store))
    assert code == 1 and "integers" in err
    code, _, err = registry(capsys, "manifest", "zzzz", "--store", str(store))
    assert code == 1 and "no data version matches" in err


def test_online_refuses_changed_data_settings(store, capsys):
    code = main(["online", "--store", str(store), "--subset", "30", "--val", "5", "--test", "4",
                 "--initial", "10"])  # fmt: skip
    assert code == 1
    assert "other data settings" in capsys.readouterr().err
