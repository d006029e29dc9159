"""Radial basis expansions of interatomic distances and smooth cutoffs."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["RBFS", "CosineCutoff", "ExpNormalSmearing", "GaussianSmearing"]


class CosineCutoff(nn.Module):
    r"""Smooth cutoff that goes from 1 to 0 between ``cutoff_lower`` and ``cutoff_upper``.

    $$
    f(d) = \tfrac12 \left(\cos\left(\pi \tfrac{d - r_l}{r_u - r_l}\cdot 2 + \pi\right)
    + 1\right) \text{ for } r_l > 0, \qquad
    f(d) = \tfrac12 \left(\cos\left(\pi d / r_u\right) + 1\right) \text{ for } r_l = 0,
    $$

    and $f(d) = 0$ outside $[r_l, r_u)$.

    Args:
        cutoff_lower: Lower cutoff $r_l$ in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff $r_u$ in Å (default: ``5.0``).

    Shapes:
        - **input:** distances ``[*]``
        - **output:** ``[*]``
    """

    def __init__(self, cutoff_lower: float = 0.0, cutoff_upper: float = 5.0) -> None:
        super().__init__()
        if not 0.0 <= cutoff_lower < cutoff_upper:
            raise ValueError(
                f"need 0 <= cutoff_lower < cutoff_upper, got {cutoff_lower} and {cutoff_upper}"
            )
        self.cutoff_lower = cutoff_lower
        self.cutoff_upper = cutoff_upper

    def reset_parameters(self) -> None:
        """No parameters."""

    def forward(self, distances: Tensor) -> Tensor:
        lo, hi = self.cutoff_lower, self.cutoff_upper
        if lo > 0:
            phase = math.pi * (2.0 * (distances - lo) / (hi - lo) + 1.0)
            inside = (distances < hi) & (distances > lo)
        else:
            phase = distances * (math.pi / hi)
            inside = distances < hi
        return 0.5 * (torch.cos(phase) + 1.0) * inside

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cutoff_lower={self.cutoff_lower}, cutoff_upper={self.cutoff_upper})"


class GaussianSmearing(nn.Module):
    r"""Gaussians $e^{-\gamma (d - \mu_k)^2}$ at ``num_rbf`` centres evenly spaced on the cutoff
    range.

    $\gamma = 1 / (2 \Delta^2)$ with $\Delta$ the spacing of the centres.

    Args:
        cutoff_lower: First centre in Å (default: ``0.0``).
        cutoff_upper: Last centre in Å (default: ``5.0``).
        num_rbf: Number of Gaussians $R$ (default: ``50``).
        trainable: Learn the centres and width (default: ``True``).

    Shapes:
        - **input:** distances ``[E]``
        - **output:** ``[E, R]``
    """

    def __init__(
        self,
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        num_rbf: int = 50,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        if num_rbf < 2:
            raise ValueError(f"num_rbf must be at least 2, got {num_rbf}")
        self.cutoff_lower = cutoff_lower
        self.cutoff_upper = cutoff_upper
        self.num_rbf = num_rbf
        self.trainable = trainable
        offset, coeff = self._initial()
        if trainable:
            self.offset = nn.Parameter(offset)
            self.coeff = nn.Parameter(coeff)
        else:
            self.register_buffer("offset", offset)
            self.register_buffer("coeff", coeff)

    def _initial(self) -> tuple[Tensor, Tensor]:
        offset = torch.linspace(self.cutoff_lower, self.cutoff_upper, self.num_rbf)
        coeff = -0.5 / (offset[1] - offset[0]) ** 2
        return offset, coeff

    def reset_parameters(self) -> None:
        """Restore the evenly spaced centres and the initial width."""
        offset, coeff = self._initial()
        with torch.no_grad():
            self.offset.copy_(offset)
            self.coeff.copy_(coeff)

    def forward(self, distances: Tensor) -> Tensor:
        diff = distances.unsqueeze(-1) - self.offset  # [E, R]
        return torch.exp(self.coeff * diff * diff)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(cutoff_lower={self.cutoff_lower}, "
            f"cutoff_upper={self.cutoff_upper}, num_rbf={self.num_rbf}, trainable={self.trainable})"
        )


class ExpNormalSmearing(nn.Module):
    r"""Exponential-normal radial basis of PhysNet (Unke & Meuwly, JCTC 2019), used by the ET.

    $$
    e_k(d) = f_\text{cut}(d)\, \exp\!\left(-\beta_k \left(e^{-\alpha (d - r_l)} - \mu_k\right)^2\right),
    \qquad \alpha = 5 / (r_u - r_l),
    $$

    with $\mu_k$ evenly spaced on $[e^{-(r_u - r_l)}, 1]$,
    $\beta_k = \left(2 (1 - e^{-(r_u - r_l)}) / R\right)^{-2}$ and $f_\text{cut}$ a
    [`CosineCutoff`][molgnn.nn.CosineCutoff] on $[0, r_u]$.

    Args:
        cutoff_lower: Lower cutoff $r_l$ in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff $r_u$ in Å (default: ``5.0``).
        num_rbf: Number of functions $R$ (default: ``50``).
        trainable: Learn $\mu$ and $\beta$ (default: ``True``).

    Shapes:
        - **input:** distances ``[E]``
        - **output:** ``[E, R]``
    """

    def __init__(
        self,
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        num_rbf: int = 50,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        if num_rbf < 1:
            raise ValueError(f"num_rbf must be positive, got {num_rbf}")
        self.cutoff_lower = cutoff_lower
        self.cutoff_upper = cutoff_upper
        self.num_rbf = num_rbf
        self.trainable = trainable
        self.cutoff_fn = CosineCutoff(0.0, cutoff_upper)
        self.alpha = 5.0 / (cutoff_upper - cutoff_lower)
        means, betas = self._initial()
        if trainable:
            self.means = nn.Parameter(means)
            self.betas = nn.Parameter(betas)
        else:
            self.register_buffer("means", means)
            self.register_buffer("betas", betas)

    def _initial(self) -> tuple[Tensor, Tensor]:
        start = math.exp(-(self.cutoff_upper - self.cutoff_lower))
        means = torch.linspace(start, 1.0, self.num_rbf)
        betas = torch.full((self.num_rbf,), (2.0 / self.num_rbf * (1.0 - start)) ** -2)
        return means, betas

    def reset_parameters(self) -> None:
        """Restore the initial means and widths."""
        means, betas = self._initial()
        with torch.no_grad():
            self.means.copy_(means)
            self.betas.copy_(betas)

    def forward(self, distances: Tensor) -> Tensor:
        d = distances.unsqueeze(-1)  # [E, 1]
        shifted = torch.exp(self.alpha * (self.cutoff_lower - d)) - self.means  # [E, R]
        return self.cutoff_fn(d) * torch.exp(-self.betas * shifted * shifted)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(cutoff_lower={self.cutoff_lower}, "
            f"cutoff_upper={self.cutoff_upper}, num_rbf={self.num_rbf}, trainable={self.trainable})"
        )


#: Radial basis name -> class.
RBFS: dict[str, type[nn.Module]] = {"gauss": GaussianSmearing, "expnorm": ExpNormalSmearing}
