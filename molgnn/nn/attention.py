"""The Equivariant Transformer's multi-head attention layer."""

from __future__ import annotations

from torch import Tensor, nn

from molgnn.nn.activations import activation as make_activation
from molgnn.nn.radial import CosineCutoff
from molgnn.nn.scatter import scatter_sum

__all__ = ["DISTANCE_INFLUENCE", "EquivariantMultiHeadAttention"]

DISTANCE_INFLUENCE = ("keys", "values", "both", "none")


class EquivariantMultiHeadAttention(nn.Module):
    r"""One ET update of scalar features ``x`` and vector features ``vec``.

    From Thölke & De Fabritiis, ICLR 2022 (https://arxiv.org/abs/2202.02541), section 3.
    With :math:`\mathbf{q}, \mathbf{k}, \mathbf{v}` projections of the layer-normed scalars,
    :math:`\mathbf{d}^K, \mathbf{d}^V` projections of the radial basis and
    :math:`\hat{\mathbf{r}}_{ij}` the unit vector from atom :math:`i` to its neighbour :math:`j`:

    .. math::
        a_{ij} = \phi\big(\textstyle\sum_c q_{i,c}\, k_{j,c}\, d^K_{ij,c}\big)\, f_\text{cut}(d_{ij}),
        \qquad (\mathbf{s}^1, \mathbf{s}^2, \mathbf{s}^3)_{ij} = \mathbf{v}_j \odot \mathbf{d}^V_{ij}

    .. math::
        \mathbf{y}_i = \textstyle\sum_j a_{ij}\, \mathbf{s}^1_{ij}, \qquad
        \vec{\mathbf{w}}_i = \textstyle\sum_j \vec{\mathbf{v}}_j \odot \mathbf{s}^2_{ij}
        + \mathbf{s}^3_{ij}\, \hat{\mathbf{r}}_{ij}

    and the updates :math:`\Delta\mathbf{x}_i = \langle U_1\vec{\mathbf{v}}_i, U_2\vec{\mathbf{v}}_i\rangle
    \odot \mathbf{o}^2_i + \mathbf{o}^3_i`,
    :math:`\Delta\vec{\mathbf{v}}_i = U_3\vec{\mathbf{v}}_i \odot \mathbf{o}^1_i + \vec{\mathbf{w}}_i`,
    with :math:`(\mathbf{o}^1, \mathbf{o}^2, \mathbf{o}^3) = O\,\mathbf{y}_i`. Attention is split
    over ``num_heads`` heads. With ``vector_cutoff`` the cutoff multiplies the values instead of
    the attention weights, so the vector features also vanish smoothly at the cutoff.

    Args:
        hidden_channels: Feature size :math:`C` (divisible by ``num_heads``).
        num_rbf: Radial basis size :math:`R`.
        distance_influence: Where distances enter: ``"keys"``, ``"values"``, ``"both"`` or
            ``"none"`` (default: ``"both"``).
        num_heads: Attention heads :math:`H` (default: ``8``).
        activation: Activation of the distance projections (default: ``"silu"``).
        attn_activation: Attention nonlinearity :math:`\phi` (default: ``"silu"``).
        cutoff_lower: Lower cutoff in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff in Å (default: ``5.0``).
        vector_cutoff: Apply the cutoff to the values (default: ``False``).
        layer_norm: Layer-normalise ``x`` before the projections, as in the paper
            (default: ``True``).

    Shapes:
        - **input:** x ``[N, C]``, vec ``[N, 3, C]``, edge_index ``[2, E]``,
          edge_weight ``[E]``, edge_attr ``[E, R]``, edge_unit ``[E, 3]`` (zero for self loops)
        - **output:** dx ``[N, C]``, dvec ``[N, 3, C]``
    """

    def __init__(
        self,
        hidden_channels: int,
        num_rbf: int,
        distance_influence: str = "both",
        num_heads: int = 8,
        activation: str = "silu",
        attn_activation: str = "silu",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        vector_cutoff: bool = False,
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        if distance_influence not in DISTANCE_INFLUENCE:
            raise ValueError(
                f"unknown distance_influence {distance_influence!r}; valid values: "
                + ", ".join(DISTANCE_INFLUENCE)
            )
        if hidden_channels % num_heads:
            raise ValueError(
                f"hidden_channels ({hidden_channels}) must be divisible by num_heads ({num_heads})"
            )
        self.hidden_channels = hidden_channels
        self.num_heads = num_heads
        self.head_dim = hidden_channels // num_heads
        self.distance_influence = distance_influence
        self.vector_cutoff = vector_cutoff
        self.layer_norm = layer_norm
        self.layernorm = nn.LayerNorm(hidden_channels) if layer_norm else nn.Identity()
        self.act = make_activation(activation)
        self.attn_activation = make_activation(attn_activation)
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        c = hidden_channels
        self.q_proj = nn.Linear(c, c)
        self.k_proj = nn.Linear(c, c)
        self.v_proj = nn.Linear(c, 3 * c)
        self.o_proj = nn.Linear(c, 3 * c)
        self.vec_proj = nn.Linear(c, 3 * c, bias=False)
        self.dk_proj = nn.Linear(num_rbf, c) if distance_influence in ("keys", "both") else None
        self.dv_proj = (
            nn.Linear(num_rbf, 3 * c) if distance_influence in ("values", "both") else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Layer norm reset; Xavier-uniform projections with zero biases."""
        if isinstance(self.layernorm, nn.LayerNorm):
            self.layernorm.reset_parameters()
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.o_proj, self.vec_proj,
                    self.dk_proj, self.dv_proj):  # fmt: skip
            if lin is not None:
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)

    def forward(
        self,
        x: Tensor,
        vec: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_attr: Tensor,
        edge_unit: Tensor,
    ) -> tuple[Tensor, Tensor]:
        n, c, h, d = x.size(0), self.hidden_channels, self.num_heads, self.head_dim
        x = self.layernorm(x)
        q = self.q_proj(x).view(n, h, d)
        k = self.k_proj(x).view(n, h, d)
        v = self.v_proj(x).view(n, h, 3 * d)
        vec1, vec2, vec3 = self.vec_proj(vec).split(c, dim=-1)  # each [N, 3, C]
        vec_dot = (vec1 * vec2).sum(dim=1)  # [N, C]

        dk = self.act(self.dk_proj(edge_attr)).view(-1, h, d) if self.dk_proj is not None else None
        dv = (
            self.act(self.dv_proj(edge_attr)).view(-1, h, 3 * d)
            if self.dv_proj is not None
            else None
        )
        y, w = self._messages(q, k, v, vec, dk, dv, edge_index, edge_weight, edge_unit, n)

        o1, o2, o3 = self.o_proj(y).split(c, dim=1)
        dx = vec_dot * o2 + o3
        dvec = vec3 * o1.unsqueeze(1) + w
        return dx, dvec

    def _messages(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        vec: Tensor,
        dk: Tensor | None,
        dv: Tensor | None,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_unit: Tensor,
        num_nodes: int,
    ) -> tuple[Tensor, Tensor]:
        """The per-edge work and its aggregation (the hot path)."""
        src, dst = edge_index[0], edge_index[1]
        e, d, c = src.numel(), self.head_dim, self.hidden_channels
        qk = q.index_select(0, dst) * k.index_select(0, src)  # [E, H, D]
        if dk is not None:
            qk = qk * dk
        attn = self.attn_activation(qk.sum(dim=-1))  # [E, H]
        cut = self.cutoff(edge_weight).unsqueeze(1)  # [E, 1]
        values = v.index_select(0, src)  # [E, H, 3D]
        if self.vector_cutoff:
            values = values * cut.unsqueeze(2)
        else:
            attn = attn * cut
        if dv is not None:
            values = values * dv
        s1, s2, s3 = values.split(d, dim=2)  # each [E, H, D]
        y = scatter_sum((s1 * attn.unsqueeze(2)).reshape(e, c), dst, num_nodes)  # [N, C]
        msg = vec.index_select(0, src) * s2.reshape(e, 1, c)  # [E, 3, C]
        msg = msg + s3.reshape(e, 1, c) * edge_unit.unsqueeze(2)
        w = scatter_sum(msg, dst, num_nodes)  # [N, 3, C]
        return y, w

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_heads={self.num_heads}, distance_influence={self.distance_influence!r}, "
            f"vector_cutoff={self.vector_cutoff}, layer_norm={self.layer_norm})"
        )
