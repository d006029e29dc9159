"""The function trainable: one trial trains one configuration with
[`molgnn.training`][molgnn.training].

Every epoch the trial reports its validation MAE in meV through ``ray.tune.report``, with a
checkpoint in molgnn's own format ([`CHECKPOINT_FILE`][molgnn.tune.CHECKPOINT_FILE] inside the Ray
checkpoint directory). A trial that Ray restarts (after a failure, or when a killed sweep is
resumed) continues from ``ray.tune.get_checkpoint``.

A trial larger than one GPU (``DataParallelTrial``) trains data-parallel: the Tune trial
starts a Ray Train ``TorchTrainer`` whose workers form one
``torch.distributed`` process group (NCCL with one GPU per worker, else Gloo), and the
trainer of each worker trains its slice of every batch
([`molgnn.training.distributed`][molgnn.training.distributed]). Rank 0 reports each epoch with its
checkpoint to Ray Train; the trial relays the report to Tune (``ray.tune.report``, the same metrics
and checkpoint as a single-process trial), so that ASHA, the exports and resuming work as for any
trial.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from molgnn.data.keys import ev_to_mev
from molgnn.tune.backend import TrialBackend, trial_config
from molgnn.tune.config import METRIC

__all__ = [
    "CHECKPOINT_FILE",
    "DRIVER_RESOURCES",
    "DataParallelTrial",
    "ReleaseTrainWorkers",
    "TrialFailedError",
    "assigned_device",
    "train_trial",
]

#: Name of the molgnn checkpoint inside each Ray checkpoint directory.
CHECKPOINT_FILE = "model.ckpt"

#: What the Tune trial of a data-parallel trial holds itself: no CPU and no GPU (its Ray Train
#: workers hold those), and a nominal MiB of memory, since Ray needs a non-empty request.
DRIVER_RESOURCES: dict[str, float] = {"cpu": 0.0, "gpu": 0.0, "memory": float(2**20)}


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


@dataclass(frozen=True)
class DataParallelTrial:
    """How every trial of a sweep trains when it is larger than one device.

    Args:
        num_workers: Ray Train workers of each trial, one process each (at least 2).
        cpus_per_worker: CPUs each worker holds (its torch threads: the whole part, at least 1).
        gpus_per_worker: ``1.0`` (NCCL, one GPU per worker) or ``0.0`` (Gloo on CPUs).
        storage_path: Where Ray Train keeps each run's latest checkpoint until the trial has
            reported it to Tune (storage every node reaches, as for the sweep itself).
    """

    num_workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    storage_path: str

    def __post_init__(self) -> None:
        if self.num_workers < 2:
            raise ValueError(f"num_workers must be at least 2, got {self.num_workers}")
        if self.gpus_per_worker not in (0.0, 1.0):
            raise ValueError(
                f"a data-parallel trial trains on one GPU per worker or on CPUs, got "
                f"gpus_per_worker={self.gpus_per_worker}"
            )
        if not self.cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")

    @property
    def backend(self) -> str:
        """The ``torch.distributed`` backend: ``"nccl"`` on GPUs, else ``"gloo"``."""
        return "nccl" if self.gpus_per_worker else "gloo"


def _epoch_result(
    trial: Any, metrics: Mapping[str, Any], config: Mapping[str, Any], info: Mapping[str, Any]
) -> dict[str, Any]:
    """What a trial reports after an epoch; a non-finite loss or MAE fails the trial."""
    loss = metrics["train_loss"]
    val_mae_mev = ev_to_mev(metrics["val_mae"])
    if not (math.isfinite(loss) and math.isfinite(val_mae_mev)):
        raise TrialFailedError(
            f"epoch {trial.epoch}: training loss {loss} / validation MAE {val_mae_mev} meV "
            f"is not finite for config {dict(config)}"
        )
    return {
        METRIC: val_mae_mev,
        "train_loss": loss,
        "epoch": trial.epoch,
        **info,
        "epoch_ended_at": time.time(),
    }


def train_trial(
    config: Mapping[str, Any],
    *,
    base: Any,
    backend: TrialBackend,
    dataset: Any = None,
    data_parallel: DataParallelTrial | None = None,
) -> None:
    """Train one configuration, reporting and checkpointing every epoch.

    The trial's config is ``base.replace(**config)`` ([`trial_config`][molgnn.tune.trial_config]);
    it runs the shared epoch loop (``molgnn.training.loop.run_epochs``) until its ``epochs``,
    unless ASHA stops it first.

    Args:
        config: The values Ray sampled for this trial (dotted config name -> value).
        base: The sweep's base config ([`SweepConfig.train`][molgnn.tune.SweepConfig]).
        backend: Builds the trial's training run ([`MolgnnBackend`][molgnn.tune.MolgnnBackend]
            trains molgnn models with [`molgnn.training`][molgnn.training]).
        dataset: The prepared dataset, passed through Ray's object store with
            ``ray.tune.with_parameters`` so that no trial processes it again.
            ``None`` lets the backend load it.
        data_parallel: Train on several Ray Train workers (see the module docs); ``None``
            trains in this process.
    """
    if data_parallel is not None:
        _train_data_parallel(config, base, backend, dataset, data_parallel)
        return
    from molgnn.training.loop import run_epochs

    run_started_at = time.time()
    device = assigned_device()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, math.floor(cpus)))
    info = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "gpu_ids": _gpu_ids(),
        "device": str(device),
        "pid": os.getpid(),
        "run_started_at": run_started_at,
    }

    trial = backend.create_trial(trial_config(base, config), device=device, dataset=dataset)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trial.load(Path(directory) / CHECKPOINT_FILE)
    info["resumed_from_epoch"] = trial.epoch  # 0 unless this run continues from a checkpoint

    def report(trial: Any, metrics: dict[str, Any]) -> None:
        result = _epoch_result(trial, metrics, config, info)
        with tempfile.TemporaryDirectory(prefix="molgnn-ckpt-") as directory:
            trial.save(Path(directory) / CHECKPOINT_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(directory))

    run_epochs(trial, [report])


# -- data-parallel trials ------------------------------------------------------------------------


class _WorkerLoop:
    """What every Ray Train worker of a data-parallel trial runs (a callable object: Ray Train
    calls a train function without arguments when it takes none)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        base: Any,
        backend: TrialBackend,
        dataset: Any,
        checkpoint: tune.Checkpoint | None,
        cpus: float,
        run_started_at: float,
        run_path: str,
    ) -> None:
        self.config = dict(config)
        self.base = base
        self.backend = backend
        self.dataset = dataset  # an ObjectRef, or None
        self.checkpoint = checkpoint
        self.cpus = cpus
        self.run_started_at = run_started_at
        self.run_path = run_path

    def __call__(self) -> None:
        import ray.train
        import ray.train.torch

        from molgnn.training.loop import run_epochs

        context = ray.train.get_context()
        rank = context.get_world_rank()
        device = ray.train.torch.get_device()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.set_num_threads(max(1, math.floor(self.cpus)))
        dataset = None if self.dataset is None else ray.get(self.dataset)
        # The process group is up: the trainer trains its slice of every batch.
        trial = self.backend.create_trial(
            trial_config(self.base, self.config), device=device, dataset=dataset
        )
        if self.checkpoint is not None:
            with self.checkpoint.as_directory() as directory:
                trial.load(Path(directory) / CHECKPOINT_FILE)
        group = ray.util.get_current_placement_group()
        info = {
            "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "gpu_ids": _gpu_ids(),
            "device": str(device),
            "pid": os.getpid(),
            "run_started_at": self.run_started_at,
            "resumed_from_epoch": trial.epoch,
            "workers": context.get_world_size(),
            # For ReleaseTrainWorkers, should Tune stop the trial mid-run.
            "train_placement_group": group.id.hex() if group is not None else "",
            "train_run": self.run_path,
        }

        def report(trial: Any, metrics: dict[str, Any]) -> None:
            result = _epoch_result(trial, metrics, self.config, info)
            if rank != 0:
                ray.train.report(result)
                return
            with tempfile.TemporaryDirectory(prefix="molgnn-ckpt-") as directory:
                trial.save(Path(directory) / CHECKPOINT_FILE)
                ray.train.report(
                    result,
                    checkpoint=ray.train.Checkpoint.from_directory(directory),
                    checkpoint_dir_name=f"epoch_{trial.epoch:06d}",
                )

        run_epochs(trial, [report])


class _RelayReports(ray.train.UserCallback):
    """Runs in the Ray Train controller: hands each report to the Tune trial and waits until
    the trial has reported it to Tune (so that Ray Train keeps the checkpoint until then)."""

    def __init__(self, reports: Any, done: Any) -> None:
        self.reports = reports
        self.done = done

    def after_report(
        self,
        run_context: Any,
        metrics: list[dict[str, Any]],
        checkpoint: ray.train.Checkpoint | None,
    ) -> None:
        self.reports.put((metrics, checkpoint))
        self.done.get()


def _merged_result(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Rank 0's report, with the GPU ids of every worker."""
    result = dict(metrics[0])
    gpu_ids = [g for m in metrics for g in str(m.get("gpu_ids", "")).split(",") if g]
    result["gpu_ids"] = ",".join(dict.fromkeys(gpu_ids))
    return result


def _delete(path: str) -> None:
    """Remove a folder, local or on the storage of a URI (best effort)."""
    import pyarrow.fs

    try:
        filesystem, inner = pyarrow.fs.FileSystem.from_uri(path)
        filesystem.delete_dir(inner)
    except (OSError, ValueError):
        pass


def _train_data_parallel(
    config: Mapping[str, Any],
    base: Any,
    backend: TrialBackend,
    dataset: Any,
    plan: DataParallelTrial,
) -> None:
    """The Tune trial of a data-parallel trial: start the Ray Train run, relay its reports."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Empty, Queue

    run_started_at = time.time()
    checkpoint = tune.get_checkpoint()  # Tune's checkpoints are the trial's only state
    reports = Queue(maxsize=1, actor_options={"num_cpus": 0})
    done = Queue(maxsize=1, actor_options={"num_cpus": 0})
    resources = {"CPU": plan.cpus_per_worker}
    if plan.gpus_per_worker:
        resources["GPU"] = plan.gpus_per_worker
    # A new Ray Train run for every start of the trial: it continues from Tune's checkpoint,
    # not from a Ray Train run of an earlier start.
    name = f"{tune.get_context().get_trial_id()}-{uuid.uuid4().hex[:8]}"
    run_path = os.path.join(plan.storage_path, name)
    trainer = TorchTrainer(
        _WorkerLoop(
            config,
            base,
            backend,
            None if dataset is None else ray.put(dataset),
            checkpoint,
            plan.cpus_per_worker,
            run_started_at,
            run_path,
        ),
        torch_config=TorchConfig(backend=plan.backend),
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.num_workers,
            use_gpu=bool(plan.gpus_per_worker),
            resources_per_worker=resources,
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=plan.storage_path,
            callbacks=[_RelayReports(reports, done)],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            # A failed worker fails the trial; Tune retries it from its last checkpoint.
            failure_config=ray.train.FailureConfig(max_failures=0),
        ),
    )
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # re-raised in the trial's thread below
            outcome["error"] = err

    thread = threading.Thread(target=fit, name="molgnn-ray-train-run", daemon=True)
    thread.start()
    while True:
        try:
            metrics, reported = reports.get(timeout=1.0)
        except Empty:
            if thread.is_alive():
                continue
            break  # the controller waits for `done` after each report: none is pending
        result = _merged_result(metrics)
        if reported is None:
            tune.report(result)
        else:
            with reported.as_directory() as directory:
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(directory))
        done.put(True)
    _delete(run_path)
    if "error" in outcome:
        raise TrialFailedError(
            f"the data-parallel run of config {dict(config)} failed: {outcome['error']}"
        ) from outcome["error"]


class ReleaseTrainWorkers(tune.Callback):
    """Frees the Ray Train workers of a data-parallel trial that ends before its run does.

    When Tune stops a trial (ASHA, the time budget) or loses it, the trial's process dies with
    the Ray Train controller it started, but the placement group that holds the workers' CPUs
    and GPUs lives as long as the sweep's driver, and would starve the later trials. This
    callback, in the sweep's driver, removes it (named by the trial's last report) and deletes
    the run's checkpoint folder.
    """

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial)

    def _release(self, trial: Any) -> None:
        from ray._raylet import PlacementGroupID
        from ray.util.placement_group import (
            PlacementGroup,
            placement_group_table,
            remove_placement_group,
        )

        result = getattr(trial, "last_result", None) or {}
        group_id = result.get("train_placement_group")
        if group_id:
            group = PlacementGroup(PlacementGroupID.from_hex(group_id))
            try:
                if placement_group_table(group).get("state", "REMOVED") != "REMOVED":
                    remove_placement_group(group)
            except Exception:  # already gone with its job, or the cluster is shutting down
                pass
        if result.get("train_run"):
            _delete(str(result["train_run"]))
