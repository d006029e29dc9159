"""Learning-rate schedule of the ET's QM9 recipe: linear warm-up, then ReduceLROnPlateau."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["WarmupPlateauSchedule"]


class WarmupPlateauSchedule:
    """Linear warm-up over ``warmup_steps`` optimiser steps, then ReduceLROnPlateau per epoch.

    Call [`step_batch`][molgnn.training.WarmupPlateauSchedule.step_batch] after every optimiser step
    and [`step_epoch`][molgnn.training.WarmupPlateauSchedule.step_epoch] with the validation loss
    after every epoch.

    Args:
        optimizer: The optimiser whose learning rate is scheduled.
        lr: Peak learning rate.
        warmup_steps: Steps of linear warm-up from ~0 to ``lr`` (0 for none).
        factor: Plateau reduction factor.
        patience: Plateau patience in epochs.
        min_lr: Smallest learning rate.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr: float,
        warmup_steps: int,
        factor: float = 0.8,
        patience: int = 15,
        min_lr: float = 1e-7,
    ) -> None:
        self.optimizer = optimizer
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.step_count = 0
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=factor, patience=patience, min_lr=min_lr
        )
        if warmup_steps > 0:
            self._set_lr(lr / (warmup_steps + 1))

    def _set_lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value

    @property
    def current_lr(self) -> float:
        """The learning rate in use."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step_batch(self) -> None:
        """Advance warm-up by one optimiser step."""
        self.step_count += 1
        if self.step_count <= self.warmup_steps:
            self._set_lr(self.lr * (self.step_count + 1) / (self.warmup_steps + 1))

    def step_epoch(self, val_loss: float) -> None:
        """Feed the plateau scheduler once warm-up is over."""
        if self.step_count >= self.warmup_steps:
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        """State for checkpoints (plain values only)."""
        return {"step_count": self.step_count, "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore [`state_dict`][molgnn.training.WarmupPlateauSchedule.state_dict]'s output."""
        self.step_count = int(state["step_count"])
        self.plateau.load_state_dict(state["plateau"])
