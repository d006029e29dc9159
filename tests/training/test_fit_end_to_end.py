import functools
import json
import operator
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import molgnn
from molgnn.cli import main
from molgnn.io import load_checkpoint
from molgnn.training import TrainConfig, fit
from tests.conftest import FIXTURE_QM9, TINY_MODEL

TINY = {"hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}


def test_fit_writes_checkpoints_logs_and_loads(tiny_qm9, tmp_path):
    cfg = TrainConfig(
        model={"preset": "et-small", **TINY},
        subset=30,
        epochs=3,
        data_root=str(tiny_qm9),
        out_dir=str(tmp_path / "run"),
        warmup_steps=2,
    )
    result = fit(cfg, verbose=False)
    assert result.metrics["epochs_run"] == 3 and "test_mae_mev" in result.metrics
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert (tmp_path / "run" / "log.csv").read_text().startswith("epoch,")
    model = molgnn.load(result.best_checkpoint)
    payload = load_checkpoint(result.best_checkpoint)
    assert payload["target"] == {"names": ["gap"], "units": ["eV"]}
    assert payload["normalization"]["standardize"] and not payload["normalization"]["atomref"]
    assert sorted(payload["data"]["split"]["test"].tolist()) == sorted(
        result.model and payload["data"]["split"]["test"].tolist()
    )
    assert payload["data"]["elements"] == [1, 6, 7, 8]
    assert "training_state" not in payload
    # The loaded model predicts what the trained model predicts.
    from molgnn.data import QM9

    mol = QM9(str(tiny_qm9), first=30, progress=False)[0]
    assert torch.allclose(model(mol.z, mol.pos), result.model.eval()(mol.z, mol.pos), atol=1e-6)


def test_u0_uses_the_atomref_prior(tiny_qm9, tmp_path):
    cfg = TrainConfig(
        model={"preset": "et-small", **TINY},
        target="U0",
        subset=30,
        epochs=1,
        data_root=str(tiny_qm9),
        out_dir=str(tmp_path / "u0"),
    )
    result = fit(cfg, verbose=False)
    model = molgnn.load(result.best_checkpoint)
    assert model.prior is not None
    assert model.prior.weight[6].item() == pytest.approx(-37.846772 * 27.211386246, rel=1e-6)
    # Predictions are total energies (about -1000 eV per heavy atom), not atomization energies.
    assert result.metrics["test_mae"] < 50.0


def test_seeded_runs_are_reproducible(tiny_qm9, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = TrainConfig(
            model={"preset": "et-small", **TINY},
            subset=30,
            epochs=2,
            data_root=str(tiny_qm9),
            out_dir=str(tmp_path / name),
            seed=7,
        )
        runs.append(fit(cfg, verbose=False).metrics["val_mae"])
    assert runs[0] == runs[1]


def _train_cmd(out, epochs):
    cmd = [
        sys.executable,
        "-m",
        "molgnn.cli",
        "train",
        "--subset",
        "30",
        "--epochs",
        str(epochs),
        "--out-dir",
        str(out),
        "--seed",
        "3",
        "--quiet",
    ]
    for s in [*TINY_MODEL, "warmup_steps=5", "batch_size=4"]:
        cmd += ["--set", s]
    return cmd


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    env = {
        **os.environ,
        "MOLGNN_QM9PACK_DIR": str(FIXTURE_QM9),
        "MOLGNN_DATA": str(tmp_path / "data"),
    }
    epochs = 12
    subprocess.run(_train_cmd(tmp_path / "full", epochs), env=env, check=True, timeout=300)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(killed, epochs), env=env)
    log = killed / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(log.read_text().splitlines())
    assert 3 <= done < epochs, "the run must be killed part-way"
    subprocess.run([*_train_cmd(killed, epochs), "--resume"], env=env, check=True, timeout=300)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, epochs + 1))  # nothing lost, nothing twice
    a = load_checkpoint(tmp_path / "full" / "best.ckpt")
    b = load_checkpoint(killed / "best.ckpt")
    assert a["metrics"]["best_epoch"] == b["metrics"]["best_epoch"]
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key


def test_train_cli_errors_are_clean(tiny_qm9, capsys):
    assert main(["train", "--set", "learning_rate=1"]) == 1
    assert "unknown TrainConfig field 'learning_rate'" in capsys.readouterr().err
    assert (
        main(["train", "--model", "et-huge", "--data-root", str(tiny_qm9), "--subset", "30"]) == 1
    )
    assert "unknown model preset 'et-huge'" in capsys.readouterr().err


def test_evaluate_cli_prints_metrics_and_writes_plots(tiny_qm9, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--subset",
                "30",
                "--epochs",
                "2",
                "--out-dir",
                str(out),
                "--data-root",
                str(tiny_qm9),
                "--quiet",
                *functools.reduce(operator.iadd, (["--set", s] for s in TINY_MODEL), []),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.ckpt"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["unit"] == "meV" and summary["count"] == 3 and summary["mae"] > 0
    for name in ("parity.png", "errors.png", "learning_curve.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_saving_a_model_of_ones_own_names_what_to_do(tiny_qm9, tmp_path):
    from torch import nn

    from molgnn.training import Trainer

    class Mine(nn.Module):  # no model config: molgnn cannot rebuild it from a checkpoint
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(10, 1)

        def forward(self, z, pos, batch=None, edge_index=None):
            from molgnn.nn import scatter_sum

            batch = torch.zeros_like(z) if batch is None else batch
            return scatter_sum(self.embedding(z), batch, dim=0)

    cfg = TrainConfig(subset=30, epochs=1, data_root=str(tiny_qm9), warmup_steps=1)
    trainer = Trainer(cfg, model=Mine(), progress=False)
    with pytest.raises(ValueError, match=r"this Mine has none: keep its weights with torch\.save"):
        trainer.save(tmp_path / "mine.ckpt")
    assert not (tmp_path / "mine.ckpt").exists()
