import pytest

from molgnn.training import TrainConfig

L = pytest.importorskip("lightning")
TINY = {"hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}


def test_lightning_trains_with_molgnn_schedule_and_metrics(tiny_qm9, tmp_path):
    from molgnn.training.lightning import MolgnnLightningModule

    module = MolgnnLightningModule(
        TrainConfig(
            model={"preset": "et-small", **TINY},
            subset=30,
            epochs=2,
            warmup_steps=3,
            data_root=str(tiny_qm9),
            out_dir=str(tmp_path),
        )
    )
    train, val, test = module.dataloaders()
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(tmp_path),
    )
    before = [p.detach().clone() for p in module.model.parameters()]
    trainer.fit(module, train, val)
    assert module.core.schedule.step_count == 2 * len(train)  # the shared warm-up saw every step
    assert "val_mae" in trainer.callback_metrics and trainer.callback_metrics["val_mae"] > 0
    assert any((a != b).any() for a, b in zip(before, module.model.parameters()))
    result = trainer.test(module, test, verbose=False)
    assert result[0]["test_mae"] > 0


def test_import_molgnn_training_does_not_import_lightning():
    import subprocess
    import sys

    code = "import sys, molgnn.training; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
