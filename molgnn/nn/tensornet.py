r"""TensorNet's layers: the tensor embedding and the interaction (O(3) and SO(3) variants).

From TensorNet (Simeon & De Fabritiis, NeurIPS 2023, https://arxiv.org/abs/2306.06482), with
torchmd-net's arithmetic (so converted models give torchmd-net's numbers). Features are rank-2
Cartesian tensors ``[N, 3, 3, C]`` (see [`molgnn.nn.tensors`][molgnn.nn.tensors]). Messages flow
along the edges from the neighbour $j$ = ``edge_index[0]`` into the centre $i$ =
``edge_index[1]``, as in every molgnn layer.

The unit vectors $\hat{\mathbf{r}}_{ij} = (\mathbf{r}_i - \mathbf{r}_j) / d_{ij}$ point
from the neighbour to the centre (torchmd-net's orientation; it is minus the unit vector of
[`edge_geometry`][molgnn.models.edge_geometry]). The embedding makes $A$ from these polar vectors,
so under a reflection $A$ changes sign relative to a true tensor: with the O(3)
interaction, a rotation $R$ maps $X \mapsto R X R^\top$ and an improper one maps
$X \mapsto R X^\top R^\top$, and the invariants are invariant under both. The SO(3)
interaction's unsymmetrised product mixes the two parities: it is equivariant under rotations
only, and its invariants tell mirror images apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molgnn.nn.activations import ACTIVATION_FUNCTIONS
from molgnn.nn.activations import activation as make_activation
from molgnn.nn.hot_path import CompileOptions, compile_options, compiled, runs_compiled
from molgnn.nn.neighbours import NeighbourTable, message_sum, neighbour_table
from molgnn.nn.radial import CosineCutoff
from molgnn.nn.scatter import gather, reduce_sum
from molgnn.nn.tensors import (
    TensorLinear,
    _compose_compact,
    _parts_compact,
    channel_matmul,
    squared_norm,
)

__all__ = ["GROUPS", "TensorEmbedding", "TensorInteraction"]

#: The values of ``equivariance_invariance_group`` (torchmd-net's name and spelling).
GROUPS = ("O(3)", "SO(3)")
#: Rows of the compact parts weighted by each of the filters f^I, f^A, f^S.
_PARTS = (1, 3, 5)


def _check_edges(edge_index: Tensor, edge_attr: Tensor, edge_pair: Tensor | None) -> None:
    rows = edge_index.size(1) if edge_pair is None else None
    if rows is not None and edge_attr.size(0) != rows:
        raise ValueError(
            f"edge_attr has {edge_attr.size(0)} rows for {rows} edges; pass edge_pair to give "
            "one row per atom pair"
        )


class TensorEmbedding(nn.Module):
    r"""TensorNet's embedding of each atom's neighbourhood into tensor features.

    For every edge $j \to i$, a pair embedding $Z_{ij} = W_z [u(z_i), u(z_j)] + b_z$
    is weighted by three distance filters $f^{k}_{ij} = f_\text{cut}(d_{ij})\, Z_{ij}
    \odot (W_k\, \mathbf{e}(d_{ij}) + b_k)$, $k \in \{I, A, S\}$, and

    $$
    I_i = \sum_j f^I_{ij}, \quad A_i = \sum_j f^A_{ij} [\hat{\mathbf{r}}_{ij}]_\times, \quad
    S_i = \sum_j f^S_{ij} \left(\hat{\mathbf{r}}_{ij} \hat{\mathbf{r}}_{ij}^\top
    - \tfrac13 \lVert \hat{\mathbf{r}}_{ij} \rVert^2 \mathbf{1}\right).
    $$

    The parts are then mixed per channel and gated by an MLP of the invariant
    $\lVert X_i \rVert^2$ ($X_i = I_i \mathbf{1} + A_i + S_i$):
    $(g^I, g^A, g^S) = \sigma(W_2\, \sigma(W_1 \operatorname{LN}(\lVert X_i \rVert^2)))$,

    $$
    X_i \leftarrow g^I_i\, W_I I_i \mathbf{1} + g^A_i\, W_A A_i + g^S_i\, W_S S_i.
    $$

    Self loops ($\hat{\mathbf{r}} = 0$) add to $I$ only.

    Args:
        hidden_channels: Feature size $C$.
        num_rbf: Radial basis size $R$.
        activation: Activation name $\sigma$ (default: ``"silu"``).
        cutoff_lower: Lower cutoff in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff in Å (default: ``5.0``).
        max_z: Largest atomic number + 1 (default: ``100``).

    Shapes:
        - **input:** z ``[N]``, edge_index ``[2, E]``, edge_weight ``[E]``, edge_vec ``[E, 3]``
          ($\hat{\mathbf{r}}_{ij}$, zero for self loops), edge_attr ``[E, R]`` (or
          ``[U, R]`` with edge_pair ``[E]``)
        - **output:** X ``[N, 3, 3, C]``
    """

    def __init__(
        self,
        hidden_channels: int,
        num_rbf: int,
        activation: str = "silu",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        max_z: int = 100,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.num_rbf = num_rbf
        self.max_z = max_z
        self.activation = activation
        self.embedding = nn.Embedding(max_z, hidden_channels)
        self.pair_proj = nn.Linear(2 * hidden_channels, hidden_channels)
        self.distance_proj = nn.Linear(num_rbf, 3 * hidden_channels)  # W_I, W_A, W_S stacked
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        self.init_norm = nn.LayerNorm(hidden_channels)
        self.gate_mlp = nn.Sequential(
            nn.Linear(hidden_channels, 2 * hidden_channels),
            make_activation(activation),
            nn.Linear(2 * hidden_channels, 3 * hidden_channels),
            make_activation(activation),
        )
        self.tensor_linear = TensorLinear(hidden_channels)
        self._compile_options: CompileOptions | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh embedding, projections, norm and mixings (PyTorch's default initialisations)."""
        self.embedding.reset_parameters()
        self.pair_proj.reset_parameters()
        self.distance_proj.reset_parameters()
        self.init_norm.reset_parameters()
        for layer in self.gate_mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self.tensor_linear.reset_parameters()

    def forward(
        self,
        z: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        edge_attr: Tensor,
        edge_pair: Tensor | None = None,
    ) -> Tensor:
        """Tensor features ``[N, 3, 3, C]``.

        With ``edge_pair`` ``[E]``, ``edge_attr`` holds one row per unordered atom pair
        (``[U, R]``, see [`edge_pairs`][molgnn.models.edge_pairs]) and the distance projection runs
        once per pair.
        """
        _check_edges(edge_index, edge_attr, edge_pair)
        lin1, lin2 = (m for m in self.gate_mlp if isinstance(m, nn.Linear))
        lin = self.tensor_linear
        weights = (
            self.pair_proj.weight, self.pair_proj.bias,
            self.distance_proj.weight, self.distance_proj.bias,
            self.init_norm.weight, self.init_norm.bias,
            lin1.weight, lin1.bias, lin2.weight, lin2.bias,
            lin.lin_i.weight, lin.lin_a.weight, lin.lin_s.weight,
        )  # fmt: skip
        u = self.embedding(z)  # [N, C]
        cut = self.cutoff(edge_weight)  # [E]
        eps = self.init_norm.eps
        options = self._compile_options
        if not runs_compiled(options):
            return _embedding(
                u, edge_attr, cut, edge_vec, edge_index, edge_pair, weights, self.gate_mlp[1], eps
            )
        # one compiled function for every embedding: dynamo guards on the activation and on
        # edge_pair being given, so they need no key of their own
        body = compiled(options, "tensornet_embedding", lambda: _embedding)
        act = ACTIVATION_FUNCTIONS[self.activation]
        _dynamic_sizes((u, edge_attr, cut, edge_vec, edge_pair), edge_index)
        return body(u, edge_attr, cut, edge_vec, edge_index, edge_pair, weights, act, eps)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the embedding after the element lookup and the cutoff (the pair embeddings,
        the distance filters, the products, the sums into atoms and the gate), in place.

        Arguments go to ``torch.compile``; see
        [`TensorInteraction.compile`][molgnn.nn.TensorInteraction.compile].
        """
        self._compile_options = compile_options(args, kwargs)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_rbf={self.num_rbf}, max_z={self.max_z})"
        )


class TensorInteraction(nn.Module):
    r"""A TensorNet interaction layer: tensor messages, a tensor product and a residual update.

    With distance filters $f_{ij} = f_\text{cut}(d_{ij})\, \sigma(W_3 \sigma(W_2
    \sigma(W_1 \mathbf{e}(d_{ij}) + b_1) + b_2) + b_3)$, split into $f^I, f^A, f^S$:

    $$
    \begin{aligned}
    X_i &\leftarrow X_i / (\lVert X_i \rVert^2 + 1), \qquad
    Y_i = W_I I_i \mathbf{1} + W_A A_i + W_S S_i, \\
    M_i &= \sum_j f^I_{ij} I^Y_j \mathbf{1} + f^A_{ij} A^Y_j + f^S_{ij} S^Y_j, \qquad
    P_i = \begin{cases} Y_i M_i + M_i Y_i & \text{O(3)} \\ 2\, Y_i M_i & \text{SO(3)}
    \end{cases} \\
    \Delta X_i &= \left(W'_I I^P_i \mathbf{1} + W'_A A^P_i + W'_S S^P_i\right)
    / (\lVert P_i \rVert^2 + 1), \qquad
    X_i \leftarrow X_i + \Delta X_i + \Delta X_i^2,
    \end{aligned}
    $$

    with $I^Y, A^Y, S^Y$ the parts of $Y$ (likewise for $P$) and the products
    taken channel by channel. The symmetrised O(3) product keeps the parity of each part, so
    the layer is equivariant under rotations and reflections; the SO(3) one only under
    rotations (see the module docstring).

    Args:
        hidden_channels: Feature size $C$.
        num_rbf: Radial basis size $R$.
        activation: Activation name $\sigma$ (default: ``"silu"``).
        cutoff_lower: Lower cutoff in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff in Å (default: ``5.0``).
        equivariance_invariance_group: ``"O(3)"`` or ``"SO(3)"`` (default: ``"O(3)"``).

    Shapes:
        - **input:** X ``[N, 3, 3, C]``, edge_index ``[2, E]``, edge_weight ``[E]``,
          edge_attr ``[E, R]`` (or ``[U, R]`` with edge_pair ``[E]``)
        - **output:** X ``[N, 3, 3, C]``
    """

    def __init__(
        self,
        hidden_channels: int,
        num_rbf: int,
        activation: str = "silu",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        equivariance_invariance_group: str = "O(3)",
    ) -> None:
        super().__init__()
        if equivariance_invariance_group not in GROUPS:
            raise ValueError(
                f"unknown equivariance_invariance_group {equivariance_invariance_group!r}; "
                f"valid: {', '.join(GROUPS)}"
            )
        self.hidden_channels = hidden_channels
        self.num_rbf = num_rbf
        self.equivariance_invariance_group = equivariance_invariance_group
        self.activation = activation
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        self.distance_mlp = nn.Sequential(
            nn.Linear(num_rbf, hidden_channels),
            make_activation(activation),
            nn.Linear(hidden_channels, 2 * hidden_channels),
            make_activation(activation),
            nn.Linear(2 * hidden_channels, 3 * hidden_channels),
            make_activation(activation),
        )
        self.linear_in = TensorLinear(hidden_channels)
        self.linear_out = TensorLinear(hidden_channels)
        self._compile_options: CompileOptions | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh filters and mixings (PyTorch's default initialisations)."""
        for layer in self.distance_mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self.linear_in.reset_parameters()
        self.linear_out.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_attr: Tensor,
        edge_pair: Tensor | None = None,
        table: NeighbourTable | None = None,
    ) -> Tensor:
        """Updated tensor features ``[N, 3, 3, C]`` (``edge_pair`` as in
        [`TensorEmbedding.forward`][molgnn.nn.TensorEmbedding.forward]).

        Compiled, the layer sums the messages over ``table``, the edges grouped by atom
        ([`neighbour_table`][molgnn.nn.neighbour_table] of ``edge_index``; built here
        when not given, so pass one table to every layer of a model); eager, it ignores it.
        """
        if x.dim() != 4 or x.shape[1:3] != (3, 3) or x.size(3) != self.hidden_channels:
            raise ValueError(
                f"x must have shape [N, 3, 3, {self.hidden_channels}], got {list(x.shape)}"
            )
        _check_edges(edge_index, edge_attr, edge_pair)
        lin1, lin2, lin3 = (m for m in self.distance_mlp if isinstance(m, nn.Linear))
        weights = (
            lin1.weight, lin1.bias, lin2.weight, lin2.bias, lin3.weight, lin3.bias,
            self.linear_in.lin_i.weight, self.linear_in.lin_a.weight, self.linear_in.lin_s.weight,
            self.linear_out.lin_i.weight, self.linear_out.lin_a.weight,
            self.linear_out.lin_s.weight,
        )  # fmt: skip
        cut = self.cutoff(edge_weight)  # [E]
        group = self.equivariance_invariance_group
        options = self._compile_options
        if not runs_compiled(options):
            return _interaction(
                x, edge_attr, cut, edge_index, edge_pair, weights, self.distance_mlp[1], group
            )
        if table is None:
            table = neighbour_table(edge_index, x.size(0), backward=torch.is_grad_enabled())
        body = compiled(options, "tensornet_interaction", lambda: _interaction)
        act = ACTIVATION_FUNCTIONS[self.activation]
        _dynamic_sizes((x, edge_attr, cut, edge_pair), edge_index, table)
        return body(x, edge_attr, cut, edge_index, edge_pair, weights, act, group, table)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the layer's update with ``torch.compile``, in place.

        The distance filters, the per-edge products, the sums into atoms (over the edges grouped
        by atom, [`message_sum`][molgnn.nn.message_sum]: gathers, products and sums, and their
        gradients, become loops over the atoms with no per-edge intermediates) and the
        per-atom tensor algebra become a few fused loops around the matrix products; only the
        cutoff, the grouping and the input checks stay eager. The weights are inputs of the
        compiled graph, so layers of the same make-up share one set of kernels; atom, edge and
        neighbour counts are dynamic from the first batch, so only the first batches (and the
        first after switching ``torch.no_grad`` on or off) are slow while it compiles.
        Arguments go to ``torch.compile``.
        """
        self._compile_options = compile_options(args, kwargs)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_rbf={self.num_rbf}, "
            f"equivariance_invariance_group={self.equivariance_invariance_group!r})"
        )


def _dynamic_sizes(
    rows: tuple[Tensor | None, ...], edge_index: Tensor, table: NeighbourTable | None = None
) -> None:
    """Mark the atom, edge and pair counts (dim 0 of ``rows``, dim 1 of ``edge_index``) and
    both sizes of the neighbour tables dynamic from the first batch: every batch has its own,
    and a size first compiled as a constant costs a recompile when the next batch differs."""
    mark = torch._dynamo.maybe_mark_dynamic
    for t in rows:
        if t is not None:
            mark(t, 0)
    mark(edge_index, 1)
    for t in table or ():
        if t is not None:
            for dim in range(t.dim()):
                mark(t, dim)


def _embedding(
    u: Tensor,
    edge_attr: Tensor,
    cut: Tensor,
    edge_vec: Tensor,
    edge_index: Tensor,
    edge_pair: Tensor | None,
    weights: tuple[Tensor, ...],
    act: Callable[[Tensor], Tensor],
    eps: float,
) -> Tensor:
    """[`TensorEmbedding`][molgnn.nn.TensorEmbedding] from the element embeddings ``u`` ``[N, C]``
    and the cutoff ``cut`` ``[E]`` on, eager or compiled (its weights passed in)."""
    w_pair, b_pair, w_dist, b_dist, w_norm, b_norm, w1, b1, w2, b2, lin_i, lin_a, lin_s = weights
    n, c = u.shape
    src, dst = edge_index[0], edge_index[1]
    # W_z [u_i, u_j] + b = W_z' u_i + W_z'' u_j + b: projected per atom, summed per edge.
    w_centre, w_neighbour = w_pair.split(c, dim=1)
    pair = gather(u @ w_centre.t(), dst) + gather(u @ w_neighbour.t(), src) + b_pair  # [E, C]
    filt = F.linear(edge_attr, w_dist, b_dist).unflatten(1, (3, c))  # [E or U, 3, C]
    if edge_pair is not None:
        filt = gather(filt, edge_pair)
    weight = filt * (cut.unsqueeze(1) * pair).unsqueeze(1)  # [E, 3, C]
    scalar, axial, sym = _embedding_messages(weight, edge_vec, dst, n)
    norm = F.layer_norm(
        squared_norm(_compose_compact(scalar, axial, sym)), (c,), w_norm, b_norm, eps
    )
    gate = act(F.linear(act(F.linear(norm, w1, b1)), w2, b2)).unflatten(1, (3, c))  # [N, 3, C]
    return _compose_compact(
        F.linear(scalar, lin_i) * gate[:, 0],
        F.linear(axial, lin_a) * gate[:, 1:2],
        F.linear(sym, lin_s) * gate[:, 2:3],
    )


def _embedding_messages(
    weight: Tensor, edge_vec: Tensor, dst: Tensor, n: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The embedding's sums over neighbours, compact: I ``[N, C]``, A's axial vector
    ``[N, 3, C]`` and S's entries ``[N, 5, C]`` (``(xx, yy, xy, xz, yz)``)."""
    rx, ry, rz = edge_vec.unbind(1)
    third = (rx * rx + ry * ry + rz * rz) / 3.0
    traceless = torch.stack(
        (rx * rx - third, ry * ry - third, rx * ry, rx * rz, ry * rz), dim=1
    )  # [E, 5]: r r^T - |r|^2 / 3
    scalar = reduce_sum(weight[:, 0], dst, n)
    axial = reduce_sum(weight[:, 1:2] * edge_vec.unsqueeze(2), dst, n)
    sym = reduce_sum(weight[:, 2:3] * traceless.unsqueeze(2), dst, n)
    return scalar, axial, sym


def _interaction(
    x: Tensor,
    edge_attr: Tensor,
    cut: Tensor,
    edge_index: Tensor,
    edge_pair: Tensor | None,
    weights: tuple[Tensor, ...],
    act: Callable[[Tensor], Tensor],
    group: str,
    table: NeighbourTable | None = None,
) -> Tensor:
    """[`TensorInteraction`][molgnn.nn.TensorInteraction]'s update, eager or compiled (its
    weights passed in, so that every layer of the same make-up shares one compiled graph).

    Compiled as the function itself, not a ``functools.partial``: dynamo wraps every partial
    in one shared frame, so the embedding's and the layers' graphs would share, and soon
    exhaust, one cache of recompilations, after which dynamo runs the code eagerly."""
    w1, b1, w2, b2, w3, b3, in_i, in_a, in_s, out_i, out_a, out_s = weights
    n, c = x.size(0), x.size(3)
    src, dst = edge_index[0], edge_index[1]
    hidden = act(F.linear(act(F.linear(edge_attr, w1, b1)), w2, b2))
    filt = act(F.linear(hidden, w3, b3)).unflatten(1, (3, c))  # [E or U, 3, C]
    if edge_pair is not None:
        filt = gather(filt, edge_pair)
    filt = filt * cut.view(-1, 1, 1)  # [E, 3, C]

    x = x / (squared_norm(x) + 1.0).unsqueeze(1).unsqueeze(1)
    # The parts in compact form (I [N, C], A's axial vector [N, 3, C], S's entries
    # [N, 5, C]): the channel mixings and the messages act on 9 rows instead of 19.
    scalar, axial, sym = _parts_compact(x)
    scalar, axial, sym = F.linear(scalar, in_i), F.linear(axial, in_a), F.linear(sym, in_s)
    if table is None:
        msg_scalar = reduce_sum(gather(scalar, src) * filt[:, 0], dst, n)  # [N, C]
        msg_axial = reduce_sum(gather(axial, src) * filt[:, 1:2], dst, n)  # [N, 3, C]
        msg_sym = reduce_sum(gather(sym, src) * filt[:, 2:3], dst, n)  # [N, 5, C]
    else:  # one fused sum over each atom's neighbours, forward and backward
        values = torch.cat((scalar.unsqueeze(1), axial, sym), dim=1)  # [N, 9, C]
        msg = message_sum(filt, values, table, _PARTS)
        msg_scalar, msg_axial, msg_sym = msg[:, 0], msg[:, 1:4], msg[:, 4:]
    y = _compose_compact(scalar, axial, sym)  # [N, 3, 3, C]
    message = _compose_compact(msg_scalar, msg_axial, msg_sym)
    if group == "O(3)":
        product = channel_matmul(y, message) + channel_matmul(message, y)
    else:
        product = 2.0 * channel_matmul(y, message)
    scale = 1.0 / (squared_norm(product) + 1.0)  # [N, C]
    scalar, axial, sym = _parts_compact(product)
    scalar = F.linear(scalar * scale, out_i)
    axial = F.linear(axial * scale.unsqueeze(1), out_a)
    sym = F.linear(sym * scale.unsqueeze(1), out_s)
    dx = _compose_compact(scalar, axial, sym)
    return x + dx + channel_matmul(dx, dx)
