"""Activation functions by name."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_FUNCTIONS",
    "ShiftedSoftplus",
    "activation",
    "shifted_softplus",
]


def shifted_softplus(x: Tensor) -> Tensor:
    r"""$\log(1 + e^x) - \log 2$ (SchNet's activation), as a function."""
    return nn.functional.softplus(x) - math.log(2.0)


class ShiftedSoftplus(nn.Module):
    r"""$\log(1 + e^x) - \log 2$, zero at the origin (SchNet's activation)."""

    def forward(self, x: Tensor) -> Tensor:
        return shifted_softplus(x)


#: Activation name -> module class.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "ssp": ShiftedSoftplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "mish": nn.Mish,
    "gelu": nn.GELU,
}

#: Activation name -> function (the same maps as [`ACTIVATIONS`][molgnn.nn.ACTIVATIONS], for
#: compiled code).
ACTIVATION_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "silu": nn.functional.silu,
    "ssp": shifted_softplus,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "mish": nn.functional.mish,
    "gelu": nn.functional.gelu,
}


def activation(name: str) -> nn.Module:
    """A new activation module called ``name``; unknown names raise ValueError listing them."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; valid activations: {', '.join(ACTIVATIONS)}"
        ) from None
