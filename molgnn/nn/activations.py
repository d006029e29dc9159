"""Activation functions by name."""

from __future__ import annotations

import math

from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ShiftedSoftplus", "activation"]


class ShiftedSoftplus(nn.Module):
    r""":math:`\log(1 + e^x) - \log 2`, zero at the origin (SchNet's activation)."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


#: Activation name -> module class.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "ssp": ShiftedSoftplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "mish": nn.Mish,
    "gelu": nn.GELU,
}


def activation(name: str) -> nn.Module:
    """A new activation module called ``name``; unknown names raise ValueError listing them."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; valid activations: {', '.join(ACTIVATIONS)}"
        ) from None
