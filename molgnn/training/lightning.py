"""A thin LightningModule adapter (extra ``lightning``), sharing molgnn's loss, metrics and schedule.

Lightning is imported only when this module is, never by ``import molgnn.training``.

Example:
    ```python
    import lightning as L
    from molgnn.training import TrainConfig
    from molgnn.training.lightning import MolgnnLightningModule

    module = MolgnnLightningModule(TrainConfig(epochs=10))
    train, val, test = module.dataloaders()
    L.Trainer(max_epochs=10).fit(module, train, val)
    ```
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

try:
    import lightning as L
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "molgnn.training.lightning needs Lightning: pip install 'molgnn[lightning]'"
    ) from err

from molgnn.data.keys import MEV_PER_EV
from molgnn.training.config import TrainConfig
from molgnn.training.trainer import Trainer, predict_batch

__all__ = ["MolgnnLightningModule"]


class MolgnnLightningModule(L.LightningModule):
    """Trains a molgnn model with Lightning using the same pieces as
    [`molgnn.training.fit`][molgnn.training.fit].

    The model, the normalisation fitted on the training split, the loss
    ([`get_loss`][molgnn.training.get_loss]) and the warm-up + plateau schedule
    ([`WarmupPlateauSchedule`][molgnn.training.WarmupPlateauSchedule]) all come from a
    [`Trainer`][molgnn.training.Trainer] built from ``config``; Lightning only drives the loop.

    Args:
        config: The run's configuration.
        dataset: A dataset to use instead of loading ``config``'s.
    """

    def __init__(self, config: TrainConfig, dataset: Any = None) -> None:
        super().__init__()
        self.core = Trainer(config, dataset=dataset, progress=False)
        self.model = self.core.model
        self.config = config
        self.scale = MEV_PER_EV if self.core.target.unit == "eV" else 1.0

    def dataloaders(self) -> tuple[Any, Any, Any]:
        """Training, validation and test loaders of the configured split."""
        return self.core.loaders()

    def forward(self, batch: Any) -> Tensor:
        return predict_batch(self.model, batch)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        pred = self(batch)
        loss = self.core.loss_fn(pred, batch.y.view_as(pred))
        self.log("train_loss", loss, batch_size=batch.num_graphs, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        pred = self(batch)
        y = batch.y.view_as(pred)
        self.log("val_loss", self.core.loss_fn(pred, y), batch_size=batch.num_graphs)
        self.log(
            "val_mae",
            (pred - y).abs().mean() * self.scale,
            batch_size=batch.num_graphs,
            prog_bar=True,
        )

    def test_step(self, batch: Any, batch_idx: int) -> None:
        pred = self(batch)
        self.log(
            "test_mae",
            (pred - batch.y.view_as(pred)).abs().mean() * self.scale,
            batch_size=batch.num_graphs,
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.core.optimizer

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.core.schedule.step_batch()

    def on_validation_epoch_end(self) -> None:
        val_loss = self.trainer.callback_metrics.get("val_loss")
        if val_loss is not None and not self.trainer.sanity_checking:
            self.core.schedule.step_epoch(float(val_loss))
