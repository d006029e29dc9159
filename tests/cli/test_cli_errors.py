"""The command line reports molgnn's run errors in one line, and lets bugs raise."""

from pathlib import Path

import pytest

from molgnn.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9pack"  # 30 QM9 molecules
TINY = ["--set", "model.hidden_channels=8", "--set", "model.num_layers=1",
        "--set", "model.num_heads=2", "--set", "model.num_rbf=8"]  # fmt: skip


def test_a_diverged_training_is_one_line_naming_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE))
    args = ["train", "--data-root", str(tmp_path / "qm9"), "--out-dir", str(tmp_path / "run"),
            "--subset", "30", "--epochs", "3", "--batch-size", "4", "--lr", "1e30",
            "--set", "warmup_steps=0", *TINY]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("molgnn train: error:")]
    assert len(errors) == 1 and errors[0].startswith("molgnn train: error: loss became ")
    assert "lower lr" in errors[0]


def test_a_runtime_error_from_outside_molgnn_keeps_its_traceback(monkeypatch):
    import molgnn.cli.train as train

    def broken(args):
        raise RuntimeError("a bug somewhere in a dependency")

    monkeypatch.setattr(train, "run", broken)
    with pytest.raises(RuntimeError, match="a bug somewhere"):
        main(["train"])
