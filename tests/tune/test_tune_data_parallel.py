"""A sweep trial larger than one process: two Ray Train workers (Gloo) inside one Tune trial.

The trial trains the single-process run with the same global batches on two workers, so the
loss curve it reports through Tune matches a :class:`~molgnn.training.Trainer` in this process,
and its checkpoint (molgnn's format) continues in one process as the reference run does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import molgnn
from molgnn.data import QM9
from molgnn.data.keys import ev_to_mev
from molgnn.training import TrainConfig, Trainer, evaluate_checkpoint, load_dataset
from molgnn.tune import METRIC, SweepConfig, parse_space, run_sweep, trial_config, trial_resources
from molgnn.tune.runner import trial_workers
from molgnn.tune.trainable import DataParallelTrial

FIXTURE_QM9 = Path(__file__).resolve().parents[1] / "fixtures" / "qm9pack"
RTOL = 1e-5


def test_workers_per_trial_follows_whole_gpus_per_trial():
    assert trial_workers(SweepConfig()) == 1
    assert trial_workers(SweepConfig(gpus_per_trial=0.25)) == 1
    assert trial_workers(SweepConfig(gpus_per_trial=1)) == 1
    assert trial_workers(SweepConfig(gpus_per_trial=4)) == 4
    assert trial_workers(SweepConfig(workers_per_trial=3, gpus_per_trial=0)) == 3
    assert trial_workers(SweepConfig(workers_per_trial=1, gpus_per_trial=2)) == 1


def test_a_data_parallel_trial_holds_its_workers_resources():
    gpus = {"CPU": 16.0, "GPU": 8.0}
    # Whole trials: 8 GPUs hold 4 trials of 2 GPUs; the CPUs are the trial's, in all.
    assert trial_resources(SweepConfig(gpus_per_trial=2, cpus_per_trial=4), gpus) == (
        {"cpu": 4.0, "gpu": 2.0},
        4,
    )
    # gpus_per_trial None: one GPU per worker where the cluster has GPUs, none elsewhere.
    assert trial_resources(SweepConfig(workers_per_trial=2), gpus)[0] == {"cpu": 1.0, "gpu": 2.0}
    cpus = {"CPU": 8.0}
    assert trial_resources(SweepConfig(workers_per_trial=2, cpus_per_trial=4), cpus) == (
        {"cpu": 4.0, "gpu": 0.0},
        2,
    )
    with pytest.raises(ValueError, match="exceeds the cluster's 8 GPUs"):
        trial_resources(SweepConfig(gpus_per_trial=16), gpus)
    with pytest.raises(ValueError, match="no GPUs"):
        trial_resources(SweepConfig(gpus_per_trial=2), cpus)
    plan = DataParallelTrial(2, cpus_per_worker=2.0, gpus_per_worker=1.0, storage_path="/s")
    assert plan.backend == "nccl"
    assert DataParallelTrial(2, 0.5, 0.0, "/s").backend == "gloo"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workers_per_trial": 0}, "workers_per_trial must be an integer >= 1"),
        ({"workers_per_trial": 2, "gpus_per_trial": 1}, "one GPU per worker"),
        ({"workers_per_trial": 2, "gpus_per_trial": 0.5}, "one GPU per worker"),
        ({"workers_per_trial": 2, "gpus_per_trial": 3}, "must be 0 or 2"),
    ],
)
def test_a_worker_has_one_gpu_or_none(changes, message):
    with pytest.raises(ValueError, match=message):
        SweepConfig(**changes)
    with pytest.raises(ValueError, match="one GPU per worker or on CPUs"):
        DataParallelTrial(2, 1.0, 0.5, "/s")


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_two_worker_trial_reports_the_single_process_loss_curve(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE_QM9))  # reaches the Ray workers
    base = TrainConfig(
        model={"preset": "et-small", "hidden_channels": 16, "num_layers": 1, "num_heads": 2,
               "num_rbf": 8},
        subset=30, epochs=3, batch_size=7, inference_batch_size=2, warmup_steps=2,
        device="cpu", data_root=str(tmp_path / "data"),
    )  # fmt: skip
    sweep = SweepConfig(
        train=base,
        space=parse_space({"lr": {"choice": [1e-3]}}),
        num_samples=1,
        workers_per_trial=2,
        cpus_per_trial=2,
        num_cpus=2,
        max_failures=0,
        storage_path=str(tmp_path / "sweeps"),
        name="dp",
        verbose=0,
    )
    result = run_sweep(sweep)

    # The reference: the trial's config trained by one Trainer in this process.
    dataset = load_dataset(base)
    reference = Trainer(trial_config(base, {"lr": 1e-3}), dataset=dataset, progress=False)
    expected = []
    for epoch in range(3):
        expected.append(reference.run_epoch())
        reference.save(tmp_path / f"reference_{epoch + 1}.ckpt")

    (trial,) = list(result.results)
    assert trial.error is None, trial.error
    history = trial.metrics_dataframe.sort_values("epoch")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert (history["workers"] == 2).all() and (history["device"] == "cpu").all()
    got = history[["train_loss", METRIC]].to_numpy()
    want = np.array([[m["train_loss"], ev_to_mev(m["val_mae"])] for m in expected])
    np.testing.assert_allclose(got, want, rtol=RTOL)
    assert want[-1, 0] < want[0, 0]  # it trained

    # The exported best model is in molgnn's format and predicts as the reference does.
    best_epoch = int(history.loc[history[METRIC].idxmin(), "epoch"])
    exported = molgnn.load(result.best_checkpoint)
    same_epoch = molgnn.load(tmp_path / f"reference_{best_epoch}.ckpt")
    for mol in list(QM9(str(tmp_path / "data" / "qm9"), first=30, progress=False))[:4]:
        torch.testing.assert_close(
            exported(mol.z, mol.pos), same_epoch(mol.z, mol.pos), rtol=RTOL, atol=1e-6
        )
    test_mae = evaluate_checkpoint(
        tmp_path / f"reference_{best_epoch}.ckpt", dataset=dataset, split="test"
    )["mae"]
    assert result.test_mae_mev == pytest.approx(ev_to_mev(test_mae), rel=RTOL)

    # ... and it is resumable: one process continues it as the reference continues.
    resumed = Trainer.resume(result.best_checkpoint, dataset=dataset, progress=False)
    assert resumed.epoch == best_epoch and resumed.config.devices == 2
    if best_epoch < 3:
        reference = Trainer.resume(tmp_path / f"reference_{best_epoch}.ckpt", dataset=dataset)
    assert resumed.run_epoch()["train_loss"] == pytest.approx(
        reference.run_epoch()["train_loss"], rel=RTOL
    )
    # The Ray Train runs' folders were removed once their checkpoints reached Tune.
    assert not any((tmp_path / "sweeps" / "dp" / "data_parallel").glob("*/epoch_*"))


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_data_parallel_trial_that_asha_stops_frees_its_workers(tmp_path):
    import ray
    from tune_toy_backend import ToyBackend, ToyConfig

    # Two 1-CPU workers per trial on 2 CPUs: one trial at a time. The second trial learns
    # too slowly and ASHA stops it at a rung, while its Ray Train run still has epochs to go
    # (the run waits for the trial to relay each report to Tune). Stopping the trial kills
    # its process and the Ray Train controller with it, but not the placement group that
    # holds the workers' CPUs: the sweep must release it. (ASHA also stops the first trial,
    # at its last epoch, max_t, before its run has wound down.)
    sweep = SweepConfig(
        train=ToyConfig(subset=128, epochs=3, sleep_s=0.5),
        space=parse_space({"lr": {"choice": [1e-2, 1e-4]}}),
        points_to_evaluate=({"lr": 1e-2}, {"lr": 1e-4}),
        num_samples=2,
        grace_period=1,
        reduction_factor=2.0,
        workers_per_trial=2,
        cpus_per_trial=2,
        max_failures=0,
        time_budget_s=150,  # unreleased workers starve the second trial: NOT STARTED
        storage_path=str(tmp_path),
        name="asha",
        verbose=0,
    )
    ray.init(num_cpus=2, include_dashboard=False)  # run_sweep joins it and leaves it running
    try:
        result = run_sweep(sweep, backend=ToyBackend())
        groups = ray.util.placement_group_table()
    finally:
        ray.shutdown()
    table = result.table
    slow = table[table["lr"] == 1e-4].iloc[0]
    assert slow["status"] == "STOPPED EARLY" and slow["epochs"] < 3, table
    fast = table[table["lr"] == 1e-2].iloc[0]
    assert fast["status"] == "COMPLETED" and fast["epochs"] == 3, table
    assert groups and {g["state"] for g in groups.values()} == {"REMOVED"}, groups
    # The Ray Train runs' checkpoint folders are gone too (the stopped one's included).
    assert not list((tmp_path / "asha" / "data_parallel").glob("*/epoch_*"))
