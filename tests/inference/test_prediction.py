"""A trained model through every way of predicting: Python, the CLI and the HTTP server."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

import molgnn
from molgnn.data import QM9
from molgnn.training import TrainConfig, fit

sys.path.insert(0, str(Path(__file__).parent))
from inference_battery import WATER

#: The ``et-small`` preset, made small enough to train in a second.
SMALL = {"preset": "et-small", "hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}


@pytest.fixture
def trained(tiny_qm9, tmp_path):
    cfg = TrainConfig(
        model=SMALL,
        subset=30,
        epochs=1,
        data_root=str(tiny_qm9),
        out_dir=str(tmp_path / "run"),
    )
    return fit(cfg, verbose=False).best_checkpoint


def test_predict_from_xyz_data_and_atoms_equals_forward(trained, tmp_path):
    model = molgnn.load(trained)
    path = tmp_path / "water.xyz"
    path.write_text(WATER)
    mol = Data(
        z=torch.tensor([8, 1, 1]), pos=torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    )
    result = molgnn.predict(model, [str(path), mol])
    expected = model(mol.z, mol.pos)
    assert result.values.shape == (2, 1)
    assert torch.allclose(result.values[0], expected[0]) and torch.allclose(
        result.values[1], expected[0]
    )
    assert result.units == ["eV"] and result.targets == ["gap"]
    assert result.to_records()[0]["gap"] == pytest.approx(float(expected))
    ase = pytest.importorskip("ase")
    atoms = ase.Atoms("OH2", positions=mol.pos.numpy())
    assert torch.allclose(molgnn.predict(model, atoms).values, expected)


def test_predict_batches_match_single_molecules(trained, tiny_qm9):
    model = molgnn.load(trained)
    mols = [QM9(str(tiny_qm9), first=30, progress=False)[i] for i in range(10)]
    batched = molgnn.predict(model, mols, batch_size=4).values
    single = torch.cat([model(m.z, m.pos) for m in mols])
    assert torch.allclose(batched, single, atol=1e-5)


def test_bad_molecules_are_refused(trained, tmp_path):
    model = molgnn.load(trained)
    with pytest.raises(ValueError, match=r"element\(s\) S never seen in training"):
        molgnn.predict(
            model, Data(z=torch.tensor([16, 1]), pos=torch.tensor([[0.0, 0, 0], [1.3, 0, 0]]))
        )
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\nx\nO 0 0 0\nH nan 0 0\n")
    with pytest.raises(ValueError, match="line 4"):
        molgnn.predict(model, str(bad))
    with pytest.raises(FileNotFoundError):
        molgnn.predict(model, "missing.xyz")


def test_predict_from_smiles_says_geometry_was_generated(trained):
    pytest.importorskip("rdkit")
    model = molgnn.load(trained)
    result = molgnn.predict(model, ["CCO", "C"])
    assert result.generated_geometry == [True, True] and result.values.shape == (2, 1)
    with pytest.raises(ValueError, match="cannot parse"):
        molgnn.predict(model, "C1CC(")


def test_predict_cli_json(trained, tmp_path, capsys):
    from molgnn.cli import main

    path = tmp_path / "w.xyz"
    path.write_text(WATER + "\n" + WATER)
    assert main(["predict", str(trained), str(path), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 2 and records[0]["units"] == {"gap": "eV"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, body: bytes):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.slow
def test_serve_over_real_http(trained):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "molgnn.cli",
            "serve",
            str(trained),
            "--port",
            str(port),
            "--max-request-bytes",
            "5000",
        ]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/health", timeout=1) as r:
                    assert json.loads(r.read()) == {"status": "ok"}
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not start")
        with urllib.request.urlopen(base + "/model", timeout=5) as r:
            info = json.loads(r.read())
        assert (
            info["targets"] == ["gap"]
            and info["units"] == ["eV"]
            and info["elements"] == [1, 6, 7, 8]
        )
        status, body = _post(base + "/predict", json.dumps({"xyz": WATER}).encode())
        model = molgnn.load(trained)
        expected = float(
            model(
                torch.tensor([8, 1, 1]), torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
            )
        )
        assert status == 200 and body["results"][0]["gap"] == pytest.approx(expected, abs=1e-5)
        bad = {"molecules": [{"xyz": WATER}, {"xyz": "2\nx\nO 0 0 0\nQq 1 0 0\n"}, {"smiles": 5}]}
        status, body = _post(base + "/predict", json.dumps(bad).encode())
        assert status == 200 and "gap" in body["results"][0]
        assert (
            "unknown element 'Qq'" in body["results"][1]["error"]
            and "molecule 1" in body["results"][1]["error"]
        )
        assert "must be a string" in body["results"][2]["error"]
        status, body = _post(base + "/predict", json.dumps({"xyz": WATER * 200}).encode())
        assert status == 413
        status, body = _post(base + "/predict", b"{not json")
        assert status == 400
    finally:
        proc.terminate()
        proc.wait(timeout=10)
