"""A whole model: representation + output head + optional prior, with target scaling."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from molgnn.nn.hot_path import eager_hot_path

__all__ = ["MolecularModel"]


class MolecularModel(nn.Module):
    r"""Composes a representation, an output head and a prior, and can return forces.

    $$
    y = \text{post}\Big(\sum_{i} \text{pre}(\mathbf{x}_i, \vec{\mathbf{v}}_i)\Big)\,\sigma
    + \mu + \text{prior}(z), \qquad \mathbf{F} = -\partial y / \partial \mathbf{r}
    $$

    (the sum being the head's reduction), so the model predicts in the target's real units.

    Args:
        representation: Maps ``(z, pos, batch, edge_index, ...)`` to ``(x, vec)``.
        head: An [`OutputHead`][molgnn.nn.OutputHead] (``pre_reduce``, ``reduce``, ``post_reduce``).
        prior: Adds per-molecule reference values, e.g. [`Atomref`][molgnn.nn.Atomref].
        mean: Target mean $\mu$, ``[T]`` (default: 0).
        std: Target standard deviation $\sigma$, ``[T]`` (default: 1).
        derivative: Also return forces $-\partial y / \partial \mathbf{r}$ (default: ``False``).

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``
        - **output:** y ``[B, T]``; with ``derivative``, ``(y, forces [N, 3])``
    """

    mean: Tensor
    std: Tensor
    representation: Any
    head: Any
    prior: Any

    def __init__(
        self,
        representation: nn.Module,
        head: nn.Module,
        prior: nn.Module | None = None,
        mean: Tensor | float | None = None,
        std: Tensor | float | None = None,
        derivative: bool = False,
    ) -> None:
        super().__init__()
        self.representation = representation
        self.head = head
        self.prior = prior
        self.derivative = derivative
        self.register_buffer(
            "mean", torch.as_tensor(0.0 if mean is None else mean, dtype=torch.float32).reshape(-1)
        )
        self.register_buffer(
            "std", torch.as_tensor(1.0 if std is None else std, dtype=torch.float32).reshape(-1)
        )
        self.config: Any = None

    def set_standardization(self, mean: Tensor | float, std: Tensor | float) -> None:
        """Set $\\mu$ and $\\sigma$ (e.g. from the training targets)."""
        mean_t = torch.as_tensor(mean, dtype=self.mean.dtype, device=self.mean.device).reshape(-1)
        std_t = torch.as_tensor(std, dtype=self.std.dtype, device=self.std.device).reshape(-1)
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()) or (std_t <= 0).any():
            raise ValueError(
                f"std must be positive and finite, got mean={mean_t.tolist()} std={std_t.tolist()}"
            )
        self.mean = mean_t
        self.std = std_t

    def reset_parameters(self) -> None:
        """Re-initialise representation, head and prior."""
        for module in (self.representation, self.head, self.prior):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _check(self, z: Tensor, pos: Tensor, batch: Tensor | None) -> Tensor:
        if z.dim() != 1 or z.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"z must be a 1-D integer tensor of atomic numbers, got {z.dtype} {list(z.shape)}"
            )
        if pos.shape != (z.numel(), 3):
            raise ValueError(f"pos must have shape [{z.numel()}, 3], got {list(pos.shape)}")
        if z.numel() == 0:
            raise ValueError("empty molecule: no atoms")
        if not torch.isfinite(pos).all():
            raise ValueError("pos contains NaN or infinite coordinates")
        if batch is None:
            return torch.zeros_like(z, dtype=torch.long)
        if batch.shape != z.shape:
            raise ValueError(f"batch must have shape [{z.numel()}], got {list(batch.shape)}")
        if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
            raise ValueError(f"batch must hold integer molecule indices, got {batch.dtype}")
        batch = batch.long()
        # One output row per index 0..max: an index without atoms would be an extra molecule.
        # One host sync for both checks (bincount needs non-negative input, hence the clamp).
        counts = torch.bincount(batch.clamp(min=0))
        lowest, gaps = torch.stack([batch.min(), (counts == 0).sum()]).tolist()
        if lowest < 0:
            raise ValueError(f"batch must not contain negative molecule indices, got {lowest}")
        if gaps:
            empty = (counts == 0).nonzero().flatten()[:5].tolist()
            more = f" and {gaps - 5} more" if gaps > 5 else ""
            raise ValueError(
                f"batch must number the molecules 0..B-1 without gaps; molecule index(es) "
                f"{', '.join(map(str, empty))}{more} have no atoms (renumber, e.g. with "
                "torch.unique(batch, return_inverse=True))"
            )
        return batch

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        edge_vec: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        batch = self._check(z, pos, batch)
        z = z.long()
        if self.derivative and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        num_graphs = int(batch.max()) + 1
        # Training on forces differentiates twice, which compiled code cannot do.
        twice = self.derivative and self.training and torch.is_grad_enabled()
        extra = {}
        uses_vectors = getattr(self.head, "uses_vectors", True)
        if not uses_vectors and getattr(self.representation, "can_skip_vectors", False):
            extra["vectors"] = False  # e.g. the ET skips its last vector update
        with eager_hot_path() if twice else contextlib.nullcontext():
            x, vec = self.representation(z, pos, batch, edge_index, edge_weight, edge_vec, **extra)
        h = self.head.pre_reduce(x, vec, z, pos, batch)
        y = self.head.post_reduce(self.head.reduce(h, batch, num_graphs))
        y = y * self.std + self.mean
        if self.prior is not None:
            y = y + self.prior(z, batch, num_graphs)
        if not self.derivative:
            return y
        (grad,) = torch.autograd.grad(y.sum(), pos, create_graph=self.training)
        return y, -grad

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the representation in place with ``torch.compile``.

        The Equivariant Transformer and TensorNet compile only their hot paths (see
        [`EquivariantTransformer.compile`][molgnn.models.EquivariantTransformer.compile] and
        [`TensorNet.compile`][molgnn.models.TensorNet.compile]); other representations are
        compiled whole. Input checks, head and prior stay eager.
        Training on forces (``derivative=True`` in training mode) differentiates twice, which
        torch.compile does not support: those steps run the ET eagerly. Arguments go to
        ``torch.compile``.
        """
        self.representation.compile(*args, **kwargs)

    def forward_data(self, data: Any) -> Tensor | tuple[Tensor, Tensor]:
        """Run on a PyG ``Data``/``Batch``, passing ``edge_index`` when it carries one."""
        return self(
            data.z, data.pos, getattr(data, "batch", None), getattr(data, "edge_index", None)
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(\n  representation={self.representation},\n  head={self.head},\n"
            f"  prior={self.prior},\n  derivative={self.derivative}\n)"
        )
