"""Priors added to a model's output: per-element reference values."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from molgnn.nn.reduce import check_reduce_op, reduce_atoms

__all__ = ["Atomref"]


class Atomref(nn.Module):
    r"""Adds per-element reference values: $y_b \mathrel{+}= \sum_{i \in b} E_\text{ref}(z_i)$.

    With QM9's isolated-atom energies ([`from_qm9`][molgnn.nn.Atomref.from_qm9]) a model of U0 only
    has to learn the atomization energy. Values can also be fitted by least squares on training data
    ([`fit`][molgnn.nn.Atomref.fit]).

    Args:
        reference: Values by atomic number, ``[max_z]`` (default: zeros).
        max_z: Table size when ``reference`` is not given (default: ``100``).
        trainable: Learn the values with the model (default: ``False``).
        reduce_op: How the per-atom values are reduced into each molecule (default: ``"sum"``).
            Models converted from torchmd-net with its ``"mean"`` use ``"torchmdnet_mean"``,
            since torchmd-net adds the reference values per atom before its reduction.

    Shapes:
        - **input:** z ``[N]``, batch ``[N]``
        - **output:** ``[B, 1]``
    """

    initial: Tensor

    def __init__(
        self,
        reference: Tensor | Sequence[float] | None = None,
        max_z: int = 100,
        trainable: bool = False,
        reduce_op: str = "sum",
    ) -> None:
        super().__init__()
        table = (
            torch.zeros(max_z)
            if reference is None
            else torch.as_tensor(reference, dtype=torch.float32).flatten()
        )
        if not torch.isfinite(table).all():
            raise ValueError("Atomref reference values must be finite")
        self.trainable = trainable
        self.reduce_op = check_reduce_op(reduce_op)
        self.weight = nn.Parameter(table.clone().float(), requires_grad=trainable)
        self.register_buffer("initial", table.clone().float())

    @classmethod
    def from_qm9(cls, target: str = "U0", max_z: int = 100) -> Atomref:
        """QM9's published isolated-atom values of ``target`` in molgnn units (eV)."""
        from molgnn.data.keys import atom_reference

        return cls(atom_reference(target, max_z))

    @classmethod
    def fit(cls, zs: Sequence[Tensor], y: Tensor, max_z: int = 100) -> Atomref:
        """Least-squares per-element values from molecules ``zs`` and their targets ``y`` ``[M]``."""
        counts = torch.zeros(len(zs), max_z, dtype=torch.float64)
        for row, z in enumerate(zs):
            counts[row].index_add_(0, z.long(), torch.ones(z.numel(), dtype=torch.float64))
        used = counts.sum(0) > 0
        solution = torch.linalg.lstsq(counts[:, used], y.double().view(-1, 1)).solution.flatten()
        table = torch.zeros(max_z, dtype=torch.float64)
        table[used] = solution
        return cls(table.float())

    def reset_parameters(self) -> None:
        """Restore the initial reference values."""
        with torch.no_grad():
            self.weight.copy_(self.initial)

    def forward(self, z: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        return reduce_atoms(self.weight[z].unsqueeze(1), batch, num_graphs, self.reduce_op)

    def __repr__(self) -> str:
        nonzero = int((self.weight != 0).sum())
        name = self.__class__.__name__
        return (
            f"{name}(max_z={self.weight.numel()}, nonzero={nonzero}, trainable={self.trainable}, "
            f"reduce_op={self.reduce_op!r})"
        )
