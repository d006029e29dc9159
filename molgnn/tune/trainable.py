"""The function trainable: one trial trains one configuration with :mod:`molgnn.training`.

Every epoch the trial reports its validation MAE in meV through :func:`ray.tune.report`, with a
checkpoint in molgnn's own format (:data:`CHECKPOINT_FILE` inside the Ray checkpoint
directory). A trial that Ray restarts (after a failure, or when a killed sweep is resumed)
continues from :func:`ray.tune.get_checkpoint`.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from molgnn.tune.backend import TrialBackend
from molgnn.tune.config import METRIC

__all__ = ["CHECKPOINT_FILE", "TrialFailedError", "assigned_device", "train_trial"]

#: Name of the molgnn checkpoint inside each Ray checkpoint directory.
CHECKPOINT_FILE = "model.ckpt"


class TrialFailedError(RuntimeError):
    """A trial cannot go on (for example its loss became NaN); Ray records it as failed."""


def assigned_device() -> torch.device:
    """The device a trial trains on: the GPU Ray assigned to it, else the CPU.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it assigned, so the first visible CUDA device
    is the trial's own. When torch sees no CUDA device (a CPU machine, or a cluster that only
    declares GPUs) the trial runs on the CPU.

    Returns:
        ``cuda:0`` or ``cpu``.
    """
    return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")


def _gpu_ids() -> str:
    try:
        ids = ray.get_gpu_ids()
    except Exception:  # not in a Ray worker
        ids = []
    return ",".join(str(i) for i in ids)


def train_trial(
    config: Mapping[str, Any],
    *,
    settings: Mapping[str, Any],
    backend: TrialBackend,
    dataset: Any = None,
) -> None:
    """Train one configuration, reporting and checkpointing every epoch.

    Args:
        config: The tuned values Ray sampled for this trial (field name -> value).
        settings: What every trial shares (see ``molgnn.tune.runner``): ``model`` (preset),
            ``model_overrides``, ``train_overrides``, ``target``, ``subset``, ``data_root``,
            ``seed`` and ``max_epochs``.
        backend: Builds the trial's training run (:class:`~molgnn.tune.MolgnnBackend`
            trains molgnn models with :mod:`molgnn.training`).
        dataset: The prepared dataset, passed through Ray's object store with
            :func:`ray.tune.with_parameters` so that no trial processes it again.
            ``None`` lets the backend load it from ``data_root``.
    """
    run_started_at = time.time()
    node_id = ray.get_runtime_context().get_node_id()
    node_ip = ray.util.get_node_ip_address()
    gpu_ids = _gpu_ids()
    device = assigned_device()
    max_epochs = int(settings["max_epochs"])
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, math.floor(cpus)))

    trial = backend.create_trial(settings, dict(config), device=device, dataset=dataset)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trial.load(Path(directory) / CHECKPOINT_FILE)
    resumed_from_epoch = trial.epoch  # 0 unless this run continues from a checkpoint

    while trial.epoch < max_epochs:
        metrics = trial.run_epoch()
        loss = metrics["train_loss"]
        val_mae_mev = 1000.0 * metrics["val_mae"]
        if not (math.isfinite(loss) and math.isfinite(val_mae_mev)):
            raise TrialFailedError(
                f"epoch {trial.epoch}: training loss {loss} / validation MAE {val_mae_mev} meV "
                f"is not finite for config {dict(config)}"
            )
        report = {
            METRIC: val_mae_mev,
            "train_loss": loss,
            "epoch": trial.epoch,
            "node_id": node_id,
            "node_ip": node_ip,
            "gpu_ids": gpu_ids,
            "device": str(device),
            "pid": os.getpid(),
            "run_started_at": run_started_at,
            "resumed_from_epoch": resumed_from_epoch,
            "epoch_ended_at": time.time(),
        }
        with tempfile.TemporaryDirectory(prefix="molgnn-ckpt-") as directory:
            trial.save(Path(directory) / CHECKPOINT_FILE)
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))
