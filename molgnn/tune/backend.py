"""The seam between the sweep machinery and training: the trial backend.

The sweep (search, scheduling, resources, resuming, exports) only needs a few things from
training, listed by :class:`TrialBackend`: check a configuration, prepare the dataset once,
run one epoch at a time with checkpoints, and re-evaluate a checkpoint on the test split.
:class:`MolgnnBackend` provides them for molgnn's models with :mod:`molgnn.training`; another
backend (another model zoo, a test double) plugs in through ``run_sweep(config, backend=...)``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["MolgnnBackend", "Trial", "TrialBackend", "split_overrides"]


@runtime_checkable
class Trial(Protocol):
    """One configuration being trained, one epoch at a time.

    ``epoch`` is the number of epochs completed so far (restored by :meth:`load`).
    """

    epoch: int

    def run_epoch(self) -> dict[str, float]:
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
        """Restore the state :meth:`save` wrote, to continue a restarted trial."""
        ...


class TrialBackend(Protocol):
    """What the sweep needs from training (see :class:`MolgnnBackend`)."""

    def model_kind(self, model: str) -> str:
        """The kind (``"et"``, ``"pooled"``) of a model preset."""
        ...

    def check_trial_config(self, settings: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """Raise :class:`ValueError` if ``values`` (tuned field -> value) cannot be applied."""
        ...

    def prepare_dataset(self, settings: Mapping[str, Any]) -> Any:
        """Load and process the dataset once, before the trials (``None``: trials load it)."""
        ...

    def create_trial(
        self,
        settings: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        device: torch.device,
        dataset: Any,
    ) -> Trial:
        """Build the training run of one trial."""
        ...

    def evaluate_checkpoint(
        self, path: Path, settings: Mapping[str, Any], dataset: Any, split: str
    ) -> float:
        """MAE (target unit) of the model in checkpoint ``path`` on a split of the dataset."""
        ...

    def resolved_configs(
        self, settings: Mapping[str, Any], values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The full model and training configurations of a trial, as plain dicts."""
        ...


def split_overrides(
    values: Mapping[str, Any], model_fields: set[str], train_fields: set[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route tuned values to the model config or the training config by field name.

    A name that is a field of the model config goes to the model (so ``batch_size`` and
    ``lr`` go to training, ``hidden_channels`` to the model); a name that is neither raises
    :class:`ValueError` listing the valid names.

    Args:
        values: Field name -> value.
        model_fields: Field names of the model config.
        train_fields: Field names of the training config.

    Returns:
        ``(model_values, train_values)``.
    """
    unknown = sorted(set(values) - model_fields - train_fields)
    if unknown:
        raise ValueError(
            f"unknown field(s) {unknown} in the search space or overrides; model fields: "
            f"{sorted(model_fields)}; training fields: {sorted(train_fields)}"
        )
    model = {k: v for k, v in values.items() if k in model_fields}
    train = {k: v for k, v in values.items() if k not in model_fields}
    return model, train


def _api(module: str) -> Any:
    """Import a molgnn subpackage lazily (so that importing ``molgnn.tune`` stays cheap)."""
    return importlib.import_module(module)


class MolgnnBackend:
    """Trains molgnn models (:func:`molgnn.models.build_model`) with :mod:`molgnn.training`.

    Tuned values are routed by :func:`split_overrides`: model-config fields are applied on top
    of the preset (and ``model_overrides``) with :func:`molgnn.models.model_config`, training
    fields on top of the :class:`~molgnn.training.TrainConfig` with
    :func:`dataclasses.replace`.
    """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @staticmethod
    def _model_fields(model: str) -> set[str]:
        return {f.name for f in dataclasses.fields(_api("molgnn.models").model_config(model))}

    @staticmethod
    def _train_fields() -> set[str]:
        return {f.name for f in dataclasses.fields(_api("molgnn.training").TrainConfig)}

    def model_kind(self, model: str) -> str:
        """The kind (``"et"``, ``"pooled"``) of a model preset.

        Args:
            model: Preset name.
        """
        return str(_api("molgnn.models").model_config(model).to_dict()["kind"])

    def _configs(self, settings: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[Any, Any]:
        model_config = _api("molgnn.models").model_config
        TrainConfig = _api("molgnn.training").TrainConfig

        model_fields = self._model_fields(settings["model"])
        train_fields = self._train_fields()
        fixed_model, _ = split_overrides(settings["model_overrides"], model_fields, set())
        _, fixed_train = split_overrides(settings["train_overrides"], set(), train_fields)
        tuned_model, tuned_train = split_overrides(values, model_fields, train_fields)
        model_cfg = model_config(settings["model"], **{**fixed_model, **tuned_model})
        base = TrainConfig(
            model=settings["model"],
            target=settings["target"],
            subset=settings["subset"],
            seed=settings["seed"],
            epochs=settings["max_epochs"],
        )
        if settings.get("data_root") is not None:
            base = dataclasses.replace(base, data_root=settings["data_root"])
        train_cfg = dataclasses.replace(
            base,
            model_overrides={k: v for k, v in model_cfg.to_dict().items() if k != "kind"},
            **{**fixed_train, **tuned_train},
        )
        return model_cfg, train_cfg

    def check_trial_config(self, settings: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """Raise :class:`ValueError` if ``values`` cannot be applied to the configs.

        Args:
            settings: The sweep's shared settings.
            values: Tuned field -> value.
        """
        try:
            self._configs(settings, values)
        except TypeError as err:
            raise ValueError(f"invalid trial configuration {dict(values)}: {err}") from err

    def resolved_configs(
        self, settings: Mapping[str, Any], values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The full model and training configurations of a trial, as plain dicts.

        Args:
            settings: The sweep's shared settings.
            values: Tuned field -> value.
        """
        model_cfg, train_cfg = self._configs(settings, values)
        return model_cfg.to_dict(), train_cfg.to_dict()

    def prepare_dataset(self, settings: Mapping[str, Any]) -> Any:
        """Load and process the QM9 subset once, in the driver.

        Args:
            settings: The sweep's shared settings.
        """
        _, train_cfg = self._configs(settings, {})
        return _api("molgnn.training").load_dataset(train_cfg)

    def create_trial(
        self,
        settings: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        device: torch.device,
        dataset: Any,
    ) -> Trial:
        """Build the training run of one trial.

        Args:
            settings: The sweep's shared settings.
            values: Tuned field -> value.
            device: Where to train.
            dataset: The output of :meth:`prepare_dataset`.
        """
        Trainer = _api("molgnn.training").Trainer

        _, train_cfg = self._configs(settings, values)
        train_cfg = dataclasses.replace(train_cfg, device=str(device))
        trainer: Trial = Trainer(train_cfg, dataset=dataset)
        return trainer

    def evaluate_checkpoint(
        self, path: Path, settings: Mapping[str, Any], dataset: Any, split: str
    ) -> float:
        """MAE of the model in checkpoint ``path`` on a split of the dataset.

        Args:
            path: A molgnn checkpoint.
            settings: The sweep's shared settings.
            dataset: The output of :meth:`prepare_dataset`.
            split: ``"train"``, ``"val"`` or ``"test"``.
        """
        metrics = _api("molgnn.training").evaluate_checkpoint(path, dataset=dataset, split=split)
        return float(metrics["mae"])
