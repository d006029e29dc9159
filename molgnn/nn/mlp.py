"""A small multi-layer perceptron."""

from __future__ import annotations

from torch import Tensor, nn

from molgnn.nn.activations import activation as make_activation

__all__ = ["MLP"]


class MLP(nn.Module):
    r"""Linear, activation, (Linear, activation) x ``num_hidden_layers``, Linear.

    Weights use Xavier-uniform initialisation and zero biases.

    Args:
        in_channels: Input size.
        hidden_channels: Width of the hidden layers.
        out_channels: Output size.
        activation: Activation name (default: ``"silu"``).
        num_hidden_layers: Extra hidden layers (default: ``0``).

    Shapes:
        - **input:** ``[*, in_channels]``
        - **output:** ``[*, out_channels]``
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        activation: str = "silu",
        num_hidden_layers: int = 0,
    ) -> None:
        super().__init__()
        self.activation = activation
        layers: list[nn.Module] = [
            nn.Linear(in_channels, hidden_channels),
            make_activation(activation),
        ]
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(hidden_channels, hidden_channels), make_activation(activation)]
        layers.append(nn.Linear(hidden_channels, out_channels))
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights, zero biases."""
        for layer in self.layers:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
