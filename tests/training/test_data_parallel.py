"""``molgnn train --devices N``: data-parallel training in N local processes (Gloo on the CPU).

A data-parallel run computes the single-process run with the same global batches on several
processes, so its loss curve, validation MAE, test MAE and saved model match a ``--devices 1``
run up to float32 rounding (the slices of a batch are summed in another order).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import molgnn
from molgnn.cli import main
from molgnn.data import QM9
from molgnn.training import TrainConfig, fit
from molgnn.training.distributed import BatchBlock, DataParallel, shard_bounds
from tests.conftest import TINY_MODEL

RTOL = 1e-5


def _train(data_root: Path, out: Path, *extra: str) -> int:
    # 24 training molecules in batches of 7 (7, 7, 7, 3): the last batch is uneven; 3
    # validation molecules in batches of 2, so evaluation blocks differ in size too.
    argv = ["train", "--subset", "30", "--epochs", "3", "--batch-size", "7", "--device", "cpu",
            "--data-root", str(data_root), "--out-dir", str(out), "--quiet",
            "--set", "warmup_steps=2", "--set", "inference_batch_size=2",
            "--set", "gradient_clip=1.0", "--set", "ema_decay=0.9"]  # fmt: skip
    for assignment in TINY_MODEL:
        argv += ["--set", assignment]
    return main([*argv, *extra])


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _curves(out: Path) -> np.ndarray:
    return np.array([[row["train_loss"], row["val_mae"]] for row in _log(out)])


def test_two_gloo_processes_match_one_process(tiny_qm9, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert _train(tiny_qm9, one, "--devices", "1") == 0
    assert _train(tiny_qm9, two, "--devices", "2") == 0

    single, parallel = _curves(one), _curves(two)
    assert single.shape == parallel.shape == (3, 2)
    np.testing.assert_allclose(parallel, single, rtol=RTOL)
    assert not np.array_equal(single[0], single[-1])  # it trained
    metrics = [json.loads((out / "metrics.json").read_text()) for out in (one, two)]
    assert metrics[1]["test_mae"] == pytest.approx(metrics[0]["test_mae"], rel=RTOL)
    assert metrics[1]["best_epoch"] == metrics[0]["best_epoch"]
    # Rank 0 alone printed and wrote; config.json records the devices.
    assert json.loads((two / "config.json").read_text())["devices"] == 2

    # The saved model is the unwrapped one: molgnn.load reads it and predicts as the
    # single-process model does.
    models = [molgnn.load(out / "best.ckpt") for out in (one, two)]
    mols = QM9(str(tiny_qm9), first=30, progress=False)
    for i in range(5):
        mol = mols[i]
        torch.testing.assert_close(
            models[1](mol.z, mol.pos), models[0](mol.z, mol.pos), rtol=RTOL, atol=1e-6
        )
    capsys.readouterr()


def test_a_run_resumes_on_another_number_of_devices(tiny_qm9, tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert _train(tiny_qm9, reference, "--devices", "1") == 0
    assert _train(tiny_qm9, resumed, "--devices", "1", "--epochs", "2") == 0
    # Two processes take over from one process's last.ckpt for the third epoch.
    assert _train(tiny_qm9, resumed, "--devices", "2", "--resume") == 0
    log = _log(resumed)
    assert [row["epoch"] for row in log] == [1, 2, 3]
    np.testing.assert_allclose(_curves(resumed), _curves(reference), rtol=RTOL)


def test_fit_returns_rank_zeros_result(tiny_qm9, tmp_path):
    config = TrainConfig(
        model={"preset": "et-small", "hidden_channels": 16, "num_layers": 1, "num_heads": 2,
               "num_rbf": 8},
        subset=30, epochs=1, batch_size=8, devices=2, device="cpu",
        data_root=str(tiny_qm9), out_dir=str(tmp_path / "run"),
    )  # fmt: skip
    result = fit(config, verbose=False)
    assert result.metrics["epochs_run"] == 1 and result.best_checkpoint.is_file()
    assert [row["epoch"] for row in result.history] == [1]
    assert result.history[0]["train_loss"] == pytest.approx(_log(tmp_path / "run")[0]["train_loss"])
    # The model is the final one, as in a single-process run (last.ckpt's weights).
    last = molgnn.load(result.last_checkpoint)
    for a, b in zip(result.model.state_dict().values(), last.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_an_error_in_a_process_is_one_line_on_the_command_line(tiny_qm9, tmp_path, capsys):
    out = tmp_path / "broken"
    out.mkdir()
    (out / "last.ckpt").write_text("not a checkpoint")
    assert _train(tiny_qm9, out, "--devices", "2", "--resume") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("molgnn train: error:") and "last.ckpt is not a molgnn checkpoint" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"device": "cuda:1"}, "'cuda' or 'auto'"),
        ({"batch_size": 1}, "must be at least 2"),
        ({"devices": 0}, "devices must be at least 1"),
    ],
)
def test_bad_device_settings_are_refused_before_any_process_starts(
    tiny_qm9, tmp_path, changes, message
):
    with pytest.raises(ValueError, match=message):
        config = TrainConfig(devices=2, data_root=str(tiny_qm9), out_dir=str(tmp_path / "x"))
        fit(config.replace(**changes), verbose=False)
    assert not (tmp_path / "x" / "last.ckpt").exists()


@pytest.mark.skipif(torch.cuda.device_count() > 1, reason="needs a machine with at most 1 GPU")
def test_more_devices_than_gpus_is_an_error(tiny_qm9, tmp_path):
    config = TrainConfig(devices=2, device="cuda", out_dir=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="CUDA"):
        fit(config, verbose=False)


def test_callbacks_need_a_single_process(tmp_path):
    config = TrainConfig(devices=2, device="cpu", out_dir=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="single-process"):
        fit(config, callbacks=[lambda trainer, metrics: None], verbose=False)


def test_global_batches_are_shared_out_in_contiguous_slices():
    assert [shard_bounds(7, r, 2) for r in range(2)] == [(0, 3), (3, 7)]
    assert [shard_bounds(1, r, 3) for r in range(3)] == [(0, 0), (0, 0), (0, 1)]
    # 24 molecules in batches of 7 over 2 ranks: rank 1's molecules per step; with 3
    # molecules left for 4 ranks, rank 0 gets none and trains a stand-in with weight 0.
    assert DataParallel(1, 2).step_shares(24, 7) == [(4, 7), (4, 7), (4, 7), (2, 3)]
    assert DataParallel(0, 4).step_shares(24, 7)[-1] == (0, 3)
    # Evaluation: the single-process batches, in contiguous blocks per rank.
    blocks = [list(BatchBlock(5, 2, r, 2)) for r in range(2)]
    assert blocks == [[[0, 1]], [[2, 3], [4]]]
    assert BatchBlock(5, 2, 0, 2).rows() == [2, 3]
    assert BatchBlock(3, 2, 0, 3).rows() == [0, 2, 1]  # batches of 2 and 1 for 3 ranks


def test_every_rank_draws_the_single_process_batches():
    from torch_geometric.loader import DataLoader

    # The training loader's shuffle: the same generator draws, so the same global batches.
    data = [torch.tensor([float(i)]) for i in range(23)]
    single = [b.tolist() for b in DataLoader(data, batch_size=5, shuffle=True,
                                              generator=torch.Generator().manual_seed(3))]  # fmt: skip
    ranks = []
    for rank in range(2):
        loader = DataParallel(rank, 2).train_loader(data, 5, torch.Generator().manual_seed(3))
        ranks.append([b.tolist() for b in loader])
    assert [a + b for a, b in zip(*ranks, strict=True)] == single
