"""The seam between the sweep machinery and training: the trial backend.

The sweep (search, scheduling, resources, resuming, exports) only needs a few things from
training, listed by [`TrialBackend`][molgnn.tune.TrialBackend]: apply a sampled configuration to the
base config, prepare the dataset once, run one epoch at a time with checkpoints, and re-evaluate a
checkpoint on the test split. A trial's config is always ``base.replace(**sample)``, with the
search space's dotted names (``"model.hidden_channels"``, ``"lr"``).
[`MolgnnBackend`][molgnn.tune.MolgnnBackend] provides them for molgnn's models with
[`molgnn.training`][molgnn.training]; another backend (another model zoo) plugs in through
``run_sweep(config, backend=...)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["MolgnnBackend", "Trial", "TrialBackend", "trial_config"]


@runtime_checkable
class Trial(Protocol):
    """One configuration being trained, one epoch at a time.

    ``epoch`` is the number of epochs completed so far (restored by
    [`load`][molgnn.tune.Trial.load]).
    """

    epoch: int

    @property
    def should_stop(self) -> bool:
        """Whether the trial's own limits (its ``epochs``) are reached."""
        ...

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch and validate.

        Returns:
            At least ``train_loss`` and ``val_mae`` (validation MAE in the target's unit,
            eV for the HOMO-LUMO gap).
        """
        ...

    def save(self, path: Path) -> None:
        """Write a checkpoint (model, optimiser, scheduler and epoch) in molgnn's format."""
        ...

    def load(self, path: Path) -> None:
        """Restore the state [`save`][molgnn.tune.Trial.save] wrote, to continue a restarted
        trial."""
        ...


def trial_config(base: Any, values: Mapping[str, Any]) -> Any:
    """A trial's config: ``base.replace(**values)`` with the sampled dotted names.

    Raises:
        ValueError: naming the field, for a name that is not a field of ``base`` (or of a
            nested config such as ``model``) or a value its type refuses.
    """
    try:
        return base.replace(**dict(values))
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid trial configuration {dict(values)}: {err}") from None


class TrialBackend(Protocol):
    """What the sweep needs from training (see [`MolgnnBackend`][molgnn.tune.MolgnnBackend])."""

    def default_space(self, base: Any) -> dict[str, Any]:
        """The search space to use when the sweep gives none (by the base model's kind)."""
        ...

    def prepare_dataset(self, base: Any) -> Any:
        """Load and process the dataset once, before the trials (``None``: trials load it)."""
        ...

    def create_trial(self, config: Any, *, device: torch.device, dataset: Any) -> Trial:
        """Build the training run of one trial from its config
        ([`trial_config`][molgnn.tune.trial_config]).

        A data-parallel trial (``workers_per_trial`` above 1) calls this in each of its Ray
        Train workers, inside their ``torch.distributed`` process group: the trial must
        then train its rank's share of the work and keep its state the same on every rank
        (molgnn's [`Trainer`][molgnn.training.Trainer] does); only rank 0's
        [`Trial.save`][molgnn.tune.Trial.save] is called.
        """
        ...

    def evaluate_checkpoint(self, path: Path, base: Any, dataset: Any, split: str) -> float:
        """MAE (target unit) of the model in checkpoint ``path`` on a split of the dataset."""
        ...


def _api(module: str) -> Any:
    """Import a molgnn subpackage lazily (so that importing ``molgnn.tune`` stays cheap)."""
    return importlib.import_module(module)


class MolgnnBackend:
    """Trains molgnn models with [`molgnn.training`][molgnn.training]: a trial's config is a
    [`TrainConfig`][molgnn.training.TrainConfig] and a trial is a
    [`Trainer`][molgnn.training.Trainer]."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def default_space(self, base: Any) -> dict[str, Any]:
        """The default search space of the base model's kind
        ([`molgnn.tune.SEARCH_SPACES`][molgnn.tune.SEARCH_SPACES]).

        Args:
            base: The sweep's base [`TrainConfig`][molgnn.training.TrainConfig].
        """
        from molgnn.tune.spaces import search_space

        return search_space(base.model.kind)

    def prepare_dataset(self, base: Any) -> Any:
        """Load and process the QM9 subset once, in the driver.

        Args:
            base: The sweep's base [`TrainConfig`][molgnn.training.TrainConfig].
        """
        return _api("molgnn.training").load_dataset(base)

    def create_trial(self, config: Any, *, device: torch.device, dataset: Any) -> Trial:
        """Build the training run of one trial.

        Inside the process group of a data-parallel trial the trainer trains its rank's slice of
        every batch (see [`molgnn.training.distributed`][molgnn.training.distributed]); the config
        records the number of processes as ``devices``.

        Args:
            config: The trial's [`TrainConfig`][molgnn.training.TrainConfig].
            device: Where to train.
            dataset: The output of [`prepare_dataset`][molgnn.tune.MolgnnBackend.prepare_dataset].
        """
        training = _api("molgnn.training")
        group = training.current_data_parallel()
        devices = 1 if group is None else group.world_size
        trainer: Trial = training.Trainer(
            config.replace(device=str(device), devices=devices), dataset=dataset
        )
        return trainer

    def evaluate_checkpoint(self, path: Path, base: Any, dataset: Any, split: str) -> float:
        """MAE of the model in checkpoint ``path`` on a split of the dataset.

        Args:
            path: A molgnn checkpoint.
            base: The sweep's base config.
            dataset: The output of [`prepare_dataset`][molgnn.tune.MolgnnBackend.prepare_dataset].
            split: ``"train"``, ``"val"`` or ``"test"``.
        """
        metrics = _api("molgnn.training").evaluate_checkpoint(path, dataset=dataset, split=split)
        return float(metrics["mae"])
