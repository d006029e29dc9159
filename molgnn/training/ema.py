"""Exponential moving average of model weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["WeightEMA"]


class WeightEMA:
    r"""Keeps $\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta$ after every step.

    Floating-point parameters and buffers are averaged; the averaged weights are swapped in for
    evaluation with [`swap`][molgnn.training.WeightEMA.swap].

    Args:
        model: The model being trained.
        decay: Decay $d$ in (0, 1), e.g. 0.999.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights into the average."""
        for key, value in model.state_dict().items():
            if key in self.shadow:
                self.shadow[key].lerp_(value.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def swap(self, model: nn.Module) -> None:
        """Exchange the model's weights with the averaged ones (call again to undo)."""
        state = model.state_dict()
        for key, avg in self.shadow.items():
            current = state[key].detach().clone()
            state[key].copy_(avg)
            avg.copy_(current)

    def state_dict(self) -> dict[str, Any]:
        """State for checkpoints."""
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore [`state_dict`][molgnn.training.WeightEMA.state_dict]'s output."""
        self.decay = float(state["decay"])
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)
