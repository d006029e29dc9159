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

import torch
from torch import Tensor, nn

from molgnn.nn.activations import activation as make_activation
from molgnn.nn.radial import CosineCutoff
from molgnn.nn.scatter import gather, reduce_sum
from molgnn.nn.tensors import (
    TensorLinear,
    channel_matmul,
    compose,
    decompose,
    skew,
    skew_vector,
    squared_norm,
    symmetric_traceless,
)

__all__ = ["GROUPS", "TensorEmbedding", "TensorInteraction"]

#: The values of ``equivariance_invariance_group`` (torchmd-net's name and spelling).
GROUPS = ("O(3)", "SO(3)")

# Per-atom messages are packed as [N, 13, C]: I (1 row), A's axial vector (3), S (9 entries).
_PACKED_PART = (0,) + (1,) * 3 + (2,) * 9


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
    - \tfrac13 \lVert \hat{\mathbf{r}}_{ij} \rVert^2 \mathbb{1}\right).
    $$

    The parts are then mixed per channel and gated by an MLP of the invariant
    $\lVert X_i \rVert^2$ ($X_i = I_i \mathbb{1} + A_i + S_i$):
    $(g^I, g^A, g^S) = \sigma(W_2\, \sigma(W_1 \operatorname{LN}(\lVert X_i \rVert^2)))$,

    $$
    X_i \leftarrow g^I_i\, W_I I_i \mathbb{1} + g^A_i\, W_A A_i + g^S_i\, W_S S_i.
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
        n, c = z.numel(), self.hidden_channels
        src, dst = edge_index[0], edge_index[1]
        u = self.embedding(z)  # [N, C]
        pair = self.pair_proj(torch.cat([gather(u, dst), gather(u, src)], dim=1))  # [E, C]
        filt = self.distance_proj(edge_attr).unflatten(1, (3, c))  # [E or U, 3, C]
        if edge_pair is not None:
            filt = gather(filt, edge_pair)
        weight = filt * (self.cutoff(edge_weight).unsqueeze(1) * pair).unsqueeze(1)  # [E, 3, C]
        outer = edge_vec.unsqueeze(2) * edge_vec.unsqueeze(1)  # [E, 3, 3]
        messages = torch.cat(
            [
                weight[:, 0:1],  # I
                weight[:, 1:2] * edge_vec.unsqueeze(2),  # A's axial vector, [E, 3, C]
                weight[:, 2:3] * outer.flatten(1).unsqueeze(2),  # S before removing the trace
            ],
            dim=1,
        )  # [E, 13, C]
        summed = reduce_sum(messages, dst, n)  # [N, 13, C]
        scalar = summed[:, 0]  # [N, C]
        antisymmetric = skew(summed[:, 1:4])  # [N, 3, 3, C]
        symmetric = symmetric_traceless(summed[:, 4:].unflatten(1, (3, 3)))  # [N, 3, 3, C]
        norm = self.init_norm(squared_norm(compose(scalar, antisymmetric, symmetric)))  # [N, C]
        gate = self.gate_mlp(norm).unflatten(1, (3, c))  # [N, 3, C]
        scalar, antisymmetric, symmetric = self.tensor_linear(scalar, antisymmetric, symmetric)
        return compose(
            scalar * gate[:, 0],
            antisymmetric * gate[:, 1, None, None],
            symmetric * gate[:, 2, None, None],
        )

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
    Y_i = W_I I_i \mathbb{1} + W_A A_i + W_S S_i, \\
    M_i &= \sum_j f^I_{ij} I^Y_j \mathbb{1} + f^A_{ij} A^Y_j + f^S_{ij} S^Y_j, \qquad
    P_i = \begin{cases} Y_i M_i + M_i Y_i & \text{O(3)} \\ 2\, Y_i M_i & \text{SO(3)}
    \end{cases} \\
    \Delta X_i &= \left(W'_I I^P_i \mathbb{1} + W'_A A^P_i + W'_S S^P_i\right)
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

    packed_part: Tensor

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
        self.register_buffer("packed_part", torch.tensor(_PACKED_PART), persistent=False)
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
    ) -> Tensor:
        """Updated tensor features ``[N, 3, 3, C]`` (``edge_pair`` as in
        [`TensorEmbedding.forward`][molgnn.nn.TensorEmbedding.forward])."""
        if x.dim() != 4 or x.shape[1:3] != (3, 3) or x.size(3) != self.hidden_channels:
            raise ValueError(
                f"x must have shape [N, 3, 3, {self.hidden_channels}], got {list(x.shape)}"
            )
        _check_edges(edge_index, edge_attr, edge_pair)
        n, c = x.size(0), self.hidden_channels
        src, dst = edge_index[0], edge_index[1]
        filt = self.distance_mlp(edge_attr).unflatten(1, (3, c))  # [E or U, 3, C]
        if edge_pair is not None:
            filt = gather(filt, edge_pair)
        filt = filt * self.cutoff(edge_weight).view(-1, 1, 1)  # [E, 3, C]

        x = x / (squared_norm(x) + 1.0).unsqueeze(1).unsqueeze(1)
        scalar, antisymmetric, symmetric = self.linear_in(*decompose(x))
        y = compose(scalar, antisymmetric, symmetric)  # [N, 3, 3, C]
        packed = torch.cat(
            [scalar.unsqueeze(1), skew_vector(antisymmetric), symmetric.flatten(1, 2)], dim=1
        )  # [N, 13, C]
        expanded = filt.index_select(1, self.packed_part)  # [E, 13, C]
        summed = reduce_sum(gather(packed, src) * expanded, dst, n)  # [N, 13, C]
        message = compose(
            summed[:, 0], skew(summed[:, 1:4]), summed[:, 4:].unflatten(1, (3, 3))
        )  # [N, 3, 3, C]

        if self.equivariance_invariance_group == "O(3)":
            product = channel_matmul(y, message) + channel_matmul(message, y)
        else:
            product = 2.0 * channel_matmul(y, message)
        scale = 1.0 / (squared_norm(product) + 1.0)  # [N, C]
        scalar, antisymmetric, symmetric = decompose(product)
        scale_t = scale.unsqueeze(1).unsqueeze(1)
        scalar, antisymmetric, symmetric = self.linear_out(
            scalar * scale, antisymmetric * scale_t, symmetric * scale_t
        )
        dx = compose(scalar, antisymmetric, symmetric)
        return x + dx + channel_matmul(dx, dx)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_rbf={self.num_rbf}, "
            f"equivariance_invariance_group={self.equivariance_invariance_group!r})"
        )
