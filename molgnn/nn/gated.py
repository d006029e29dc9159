"""Gated equivariant block (PaiNN)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from molgnn.nn.activations import activation as make_activation
from molgnn.nn.mlp import MLP

__all__ = ["GatedEquivariantBlock", "safe_norm"]


def safe_norm(vec: Tensor, dim: int) -> Tensor:
    """Euclidean norm along ``dim`` whose gradient is 0, not NaN, at the zero vector."""
    sq = (vec * vec).sum(dim=dim)
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), 0.0)


class GatedEquivariantBlock(nn.Module):
    r"""Gated equivariant block of Schütt et al., ICML 2021 (PaiNN, https://arxiv.org/abs/2102.03150).

    $$
    (\mathbf{x}', \mathbf{g}) = \text{MLP}\left([\mathbf{x},\;
    \lVert W_1 \vec{\mathbf{v}} \rVert]\right), \qquad
    \vec{\mathbf{v}}' = \mathbf{g} \odot W_2 \vec{\mathbf{v}}
    $$

    Vector norms are taken over the Cartesian axis; scalars stay invariant, vectors rotate.

    Args:
        hidden_channels: Input feature size $C$.
        out_channels: Output feature size $C'$.
        intermediate_channels: Hidden width of the MLP (default: ``hidden_channels``).
        activation: Activation name (default: ``"silu"``).
        scalar_activation: Apply the activation to the output scalars (default: ``False``).

    Shapes:
        - **input:** x ``[N, C]``, vec ``[N, 3, C]``
        - **output:** x ``[N, C']``, vec ``[N, 3, C']``
    """

    def __init__(
        self,
        hidden_channels: int,
        out_channels: int,
        intermediate_channels: int | None = None,
        activation: str = "silu",
        scalar_activation: bool = False,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.vec1_proj = nn.Linear(hidden_channels, hidden_channels, bias=False)
        self.vec2_proj = nn.Linear(hidden_channels, out_channels, bias=False)
        self.update_net = MLP(
            2 * hidden_channels,
            intermediate_channels or hidden_channels,
            2 * out_channels,
            activation,
        )
        self.act = make_activation(activation) if scalar_activation else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections; fresh MLP."""
        nn.init.xavier_uniform_(self.vec1_proj.weight)
        nn.init.xavier_uniform_(self.vec2_proj.weight)
        self.update_net.reset_parameters()

    def forward(self, x: Tensor, vec: Tensor) -> tuple[Tensor, Tensor]:
        norm = safe_norm(self.vec1_proj(vec), dim=-2)  # [N, C]
        x, gate = self.update_net(torch.cat([x, norm], dim=-1)).split(self.out_channels, dim=-1)
        vec = gate.unsqueeze(1) * self.vec2_proj(vec)
        if self.act is not None:
            x = self.act(x)
        return x, vec

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.hidden_channels}, {self.out_channels})"
