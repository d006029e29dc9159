"""The HTTP server's documented surface: uncertainty, /metrics, /openapi.json, concurrent load.

Two real ``molgnn serve`` processes on 127.0.0.1 for the module: a deep ensemble of two
checkpoints (``--member``) with two workers, and a pooled GNN with dropout served with
``--mc-dropout``. Requests are real QM9 molecules (the 30-molecule qm9pack fixture); the
answers are compared with [`molgnn.predict`][molgnn.inference.predict] in this process.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("rdkit")
pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families

import molgnn
from molgnn.cli import main
from molgnn.data import QM9, parse_xyz
from molgnn.io import save_checkpoint
from molgnn.models import build_model, model_config
from molgnn.uncertainty import Ensemble

sys.path.insert(0, str(Path(__file__).parent))
from inference_battery import WATER
from test_server_battery import SERVED_MODEL, Server, _strict_json, _write_checkpoint

REPO = Path(__file__).parents[2]
#: A pooled GNN with dropout, for MC dropout.
POOLED = {"preset": "pooled", "hidden_channels": 16, "num_layers": 2, "num_rbf": 8, "dropout": 0.2}
MC_SAMPLES = 4
CONCURRENT = 20
ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}


def _member_checkpoint(path: Path, seed: int) -> Path:
    """A second ensemble member: the battery's served ET with other initial weights."""
    torch.manual_seed(seed)
    model = build_model("et-qm9", **SERVED_MODEL)
    return save_checkpoint(
        {
            "model_config": model.config.to_dict(),
            "state_dict": model.state_dict(),
            "target": {"names": ["gap"], "units": ["eV"]},
            "normalization": {"standardize": False, "atomref": False},
            "data": {"dataset": "QM9", "elements": [1, 6, 7, 8]},
            "metrics": {"test_mae_mev": 150.0},
        },
        path,
    )


def _dropout_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = model_config(POOLED).build()
    return save_checkpoint(
        {
            "model_config": model.config.to_dict(),
            "state_dict": model.state_dict(),
            "target": {"names": ["gap"], "units": ["eV"]},
            "data": {"dataset": "QM9", "elements": [1, 6, 7, 8, 9]},
        },
        path,
    )


def _xyz(mol) -> str:
    lines = [str(mol.z.numel()), str(mol.name)]
    for z, (x, y, w) in zip(mol.z.tolist(), mol.pos.tolist()):
        lines.append(f"{ELEMENTS[z]} {x:.6f} {y:.6f} {w:.6f}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def qm9_molecules(tmp_path_factory):
    """The fixture's QM9 molecules (only H, C, N and O: the served ensemble's elements)."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(REPO / "tests" / "fixtures" / "qm9pack"))
    root = tmp_path_factory.mktemp("qm9")
    dataset = QM9(str(root / "qm9"), target="gap", progress=False)
    monkeypatch.undo()
    mols = [dataset[i] for i in range(len(dataset))]
    return [m for m in mols if set(m.z.tolist()) <= {1, 6, 7, 8}]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-api")
    return {
        "a": _write_checkpoint(root / "a.ckpt"),
        "b": _member_checkpoint(root / "b.ckpt", seed=1),
        "dropout": _dropout_checkpoint(root / "dropout.ckpt"),
    }


@pytest.fixture(scope="module")
def servers(checkpoints):
    ensemble = Server(
        checkpoints["a"], "--member", str(checkpoints["b"]), "--workers", "2",
        "--request-timeout", "120",
    )  # fmt: skip
    dropout = Server(
        checkpoints["dropout"], "--mc-dropout", str(MC_SAMPLES), "--workers", "1",
        "--threads", "1", "--request-timeout", "120",
    )  # fmt: skip
    try:  # both start at once
        ensemble.wait_ready()
        dropout.wait_ready()
        yield {"ensemble": ensemble, "dropout": dropout}
    finally:
        ensemble.stop()
        dropout.stop()
    for server in (ensemble, dropout):
        assert "Traceback" not in "".join(server.stderr), "".join(server.stderr)


def _metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    status, text = server.get("/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _requests(metrics: dict, endpoint: str, status: int) -> float:
    key = ("molgnn_serve_requests_total", (("endpoint", endpoint), ("status", str(status))))
    return metrics.get(key, 0.0)


def _molecules(metrics: dict, outcome: str) -> float:
    return metrics[("molgnn_serve_molecules_total", (("outcome", outcome),))]


def test_model_says_which_uncertainty_is_served(servers):
    status, text = servers["ensemble"].get("/model")
    info = _strict_json(text)
    assert status == 200 and info["targets"] == ["gap"]
    assert info["uncertainty"] == {"kind": "ensemble", "members": 2, "samples": None}
    status, text = servers["dropout"].get("/model")
    assert _strict_json(text)["uncertainty"] == {
        "kind": "mc_dropout",
        "members": None,
        "samples": MC_SAMPLES,
    }


def test_ensemble_records_carry_the_members_std(servers, checkpoints, qm9_molecules):
    mols = qm9_molecules[:3]
    body = {"molecules": [{"xyz": _xyz(m), "name": f"qm9-{k}"} for k, m in enumerate(mols)]}
    status, reply = servers["ensemble"].post(body)
    assert status == 200, reply
    expected = molgnn.predict(Ensemble.from_checkpoints([checkpoints["a"], checkpoints["b"]]), mols)
    assert expected.std is not None and (expected.std > 0).all()
    for k, record in enumerate(reply["results"]):
        assert record["name"] == f"qm9-{k}" and not record.get("error")
        assert record["gap"] == pytest.approx(float(expected.values[k, 0]), abs=1e-4)
        assert record["std"] == {"gap": pytest.approx(float(expected.std[k, 0]), abs=1e-4)}


def test_mc_dropout_records_carry_the_std_of_the_passes(servers, checkpoints):
    status, reply = servers["dropout"].post({"xyz": WATER})
    assert status == 200, reply
    (record,) = reply["results"]
    model = molgnn.load(checkpoints["dropout"])
    expected = molgnn.predict(model, parse_xyz(WATER), mc_dropout_samples=MC_SAMPLES)
    assert expected.std is not None and float(expected.std[0, 0]) > 0
    assert record["gap"] == pytest.approx(float(expected.values[0, 0]), abs=1e-4)
    assert record["std"]["gap"] == pytest.approx(float(expected.std[0, 0]), abs=1e-4)


def test_openapi_describes_the_predict_bodies(servers):
    status, text = servers["ensemble"].get("/openapi.json")
    assert status == 200
    schema = json.loads(text)
    components = schema["components"]["schemas"]

    def resolve(node: dict) -> dict:
        ref = node.get("$ref")
        return components[ref.rsplit("/", 1)[1]] if ref else node

    predict = schema["paths"]["/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]["schema"]
    shapes = [resolve(option) for option in body["anyOf"]]
    molecule, batch = shapes
    assert set(molecule["properties"]) == {"xyz", "smiles", "name"}
    assert molecule["additionalProperties"] is False
    assert resolve(batch["properties"]["molecules"]["items"]) == molecule
    ok = resolve(predict["responses"]["200"]["content"]["application/json"]["schema"])
    record = resolve(ok["properties"]["results"]["items"])
    assert {"index", "name", "gap", "std", "units", "warnings", "error"} <= set(
        record["properties"]
    )
    assert "gap" in resolve(record["properties"]["std"])["properties"]
    for code in ("400", "413", "422", "503"):
        error = predict["responses"][code]["content"]["application/json"]["schema"]
        assert resolve(error)["required"] == ["error"]
    served = resolve(
        schema["paths"]["/model"]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]
    )
    assert {"targets", "limits", "uncertainty"} <= set(served["properties"])
    assert "/metrics" in schema["paths"]
    status, page = servers["ensemble"].get("/docs")
    assert status == 200 and "swagger" in page.lower()


def test_concurrent_requests_are_all_answered_and_counted(servers, checkpoints, qm9_molecules):
    server = servers["ensemble"]
    before = _metrics(server)
    # Request k holds molecules k % M and (k + 1) % M: each answer is checked against its own.
    picks = [[k % len(qm9_molecules), (k + 1) % len(qm9_molecules)] for k in range(CONCURRENT)]
    expected = molgnn.predict(
        Ensemble.from_checkpoints([checkpoints["a"], checkpoints["b"]]), qm9_molecules
    )
    replies: dict[int, tuple[int, dict]] = {}
    start = threading.Barrier(CONCURRENT)

    def send(k: int) -> None:
        body = {
            "molecules": [{"xyz": _xyz(qm9_molecules[i]), "name": f"r{k}-m{i}"} for i in picks[k]]
        }
        start.wait()
        replies[k] = server.post(body, timeout=120)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert sorted(replies) == list(range(CONCURRENT))
    for k, (status, body) in replies.items():
        assert status == 200, body
        for record, i in zip(body["results"], picks[k], strict=True):
            assert record["name"] == f"r{k}-m{i}" and not record.get("error")
            assert record["gap"] == pytest.approx(float(expected.values[i, 0]), abs=1e-4)
            assert record["std"]["gap"] == pytest.approx(float(expected.std[i, 0]), abs=1e-4)
    after = _metrics(server)
    assert _requests(after, "/predict", 200) - _requests(before, "/predict", 200) == CONCURRENT
    assert _molecules(after, "predicted") - _molecules(before, "predicted") == 2 * CONCURRENT
    assert _molecules(after, "failed") == _molecules(before, "failed")
    count = ("molgnn_serve_request_duration_seconds_count", (("endpoint", "/predict"),))
    assert after[count] - before.get(count, 0.0) == CONCURRENT
    assert after[("molgnn_serve_workers_busy", ())] == 0


def test_metrics_count_refusals_by_status(servers):
    server = servers["dropout"]
    before = _metrics(server)
    assert server.post(b"{not json")[0] == 400
    assert server.post({"xyz": "2\nx\nO 0 0 0\nQq 1 0 0\n"})[0] == 422
    assert server.post({"molecules": [{"xyz": WATER}, {"xyz": "0\n\n"}]})[0] == 200
    status, text = server.get("/no-such-path")
    assert status == 404 and "/predict" in _strict_json(text)["error"]
    status, text = server.get("/predict")
    assert status == 405 and "GET /predict" in _strict_json(text)["error"]
    after = _metrics(server)
    for endpoint, code, sent in [
        ("/predict", 400, 1),
        ("/predict", 422, 1),
        ("/predict", 200, 1),
        ("/predict", 405, 1),
        ("other", 404, 1),
    ]:
        assert _requests(after, endpoint, code) - _requests(before, endpoint, code) == sent
    # the 422's one molecule, and the batch's empty molecule, failed; the batch's water did not
    assert _molecules(after, "failed") - _molecules(before, "failed") == 2
    assert _molecules(after, "predicted") - _molecules(before, "predicted") == 1


def test_mc_dropout_on_a_model_without_dropout_gives_one_line(checkpoints, capsys):
    assert main(["serve", str(checkpoints["a"]), "--port", "0", "--mc-dropout", "4"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MC dropout needs dropout layers" in err, err


def test_mc_dropout_and_members_give_one_line(checkpoints, capsys):
    args = ["serve", str(checkpoints["a"]), "--member", str(checkpoints["b"]), "--mc-dropout", "4"]
    assert main([*args, "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--mc-dropout is for a single model" in err, err


def test_a_member_that_does_not_load_is_named(checkpoints, tmp_path, capsys):
    missing = tmp_path / "missing.ckpt"
    assert main(["serve", str(checkpoints["a"]), "--member", str(missing), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "Traceback" not in err, err


def test_a_registry_uri_goes_to_molgnn_load_unchanged(tmp_path, monkeypatch, capsys):
    """``molgnn serve models:/name@alias`` hands the URI to ``molgnn.load``, which decides what
    it means; serve refuses it with exactly the error ``molgnn.load`` gives."""
    monkeypatch.chdir(tmp_path)  # a registry store that molgnn.load may open stays in here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    uri = "models:/no-such-model@champion"
    with pytest.raises(Exception) as info:
        molgnn.load(uri)
    assert main(["serve", uri, "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(info.value) in err, err
