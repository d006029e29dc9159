"""The Equivariant Transformer's multi-head attention layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molgnn.nn.activations import ACTIVATION_FUNCTIONS
from molgnn.nn.activations import activation as make_activation
from molgnn.nn.hot_path import CompileOptions, compile_options, compiled, runs_compiled
from molgnn.nn.radial import CosineCutoff
from molgnn.nn.scatter import gather, reduce_sum

__all__ = ["DISTANCE_INFLUENCE", "EquivariantMultiHeadAttention"]

DISTANCE_INFLUENCE = ("keys", "values", "both", "none")


class EquivariantMultiHeadAttention(nn.Module):
    r"""One ET update of scalar features ``x`` and vector features ``vec``.

    From Thölke & De Fabritiis, ICLR 2022 (https://arxiv.org/abs/2202.02541), section 3.
    With $\mathbf{q}, \mathbf{k}, \mathbf{v}$ projections of the layer-normed scalars,
    $\mathbf{d}^K, \mathbf{d}^V$ projections of the radial basis and
    $\hat{\mathbf{r}}_{ij}$ the unit vector from atom $i$ to its neighbour $j$:

    $$
    a_{ij} = \phi\big(\textstyle\sum_c q_{i,c}\, k_{j,c}\, d^K_{ij,c}\big)\, f_\text{cut}(d_{ij}),
    \qquad (\mathbf{s}^1, \mathbf{s}^2, \mathbf{s}^3)_{ij} = \mathbf{v}_j \odot \mathbf{d}^V_{ij}
    $$

    $$
    \mathbf{y}_i = \textstyle\sum_j a_{ij}\, \mathbf{s}^1_{ij}, \qquad
    \vec{\mathbf{w}}_i = \textstyle\sum_j \vec{\mathbf{v}}_j \odot \mathbf{s}^2_{ij}
    + \mathbf{s}^3_{ij}\, \hat{\mathbf{r}}_{ij}
    $$

    and the updates $\Delta\mathbf{x}_i = \langle U_1\vec{\mathbf{v}}_i,
    U_2\vec{\mathbf{v}}_i\rangle \odot \mathbf{o}^2_i + \mathbf{o}^3_i$,
    $\Delta\vec{\mathbf{v}}_i = U_3\vec{\mathbf{v}}_i \odot \mathbf{o}^1_i + \vec{\mathbf{w}}_i$,
    with $(\mathbf{o}^1, \mathbf{o}^2, \mathbf{o}^3) = O\,\mathbf{y}_i$. Attention is split
    over ``num_heads`` heads. With ``vector_cutoff`` the cutoff multiplies the values instead of
    the attention weights, so the vector features also vanish smoothly at the cutoff.

    Each edge points from the neighbour $j$ = ``edge_index[0]`` to the centre
    $i$ = ``edge_index[1]`` (PyG's ``source_to_target`` flow): atom $i$ sums over its
    incoming edges only, and ``edge_unit`` holds
    $\hat{\mathbf{r}}_{ij} = (\mathbf{r}_j - \mathbf{r}_i) / d_{ij}$, as
    [`edge_geometry`][molgnn.models.edge_geometry] computes it.

    Args:
        hidden_channels: Feature size $C$ (divisible by ``num_heads``).
        num_rbf: Radial basis size $R$.
        distance_influence: Where distances enter: ``"keys"``, ``"values"``, ``"both"`` or
            ``"none"`` (default: ``"both"``).
        num_heads: Attention heads $H$ (default: ``8``).
        activation: Activation of the distance projections (default: ``"silu"``).
        attn_activation: Attention nonlinearity $\phi$ (default: ``"silu"``).
        cutoff_lower: Lower cutoff in Å (default: ``0.0``).
        cutoff_upper: Upper cutoff in Å (default: ``5.0``).
        vector_cutoff: Apply the cutoff to the values (default: ``False``).
        layer_norm: Layer-normalise ``x`` before the projections, as in the paper
            (default: ``True``).

    Shapes:
        - **input:** x ``[N, C]``, vec ``[N, 3, C]``, edge_index ``[2, E]``,
          edge_weight ``[E]``, edge_attr ``[E, R]`` (or ``[U, R]`` with edge_pair ``[E]``),
          edge_unit ``[E, 3]`` (zero for self loops)
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
        self._attn_name = attn_activation
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
        self._perm: Tensor | None = None
        self._compile_options: CompileOptions | None = None
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

    def _value_order(self) -> Tensor:
        """Row order that turns per-head ``(s1, s2, s3)`` value blocks into three ``[C]`` blocks.

        ``v_proj`` and ``dv_proj`` hold their ``3C`` outputs head by head (``[H, 3, D]``, as in
        torchmd-net, so checkpoints interoperate); the hot path wants ``[3, H, D]`` so that
        ``s1``, ``s2`` and ``s3`` are contiguous column blocks in the channel order of ``q``.
        """
        h, d = self.num_heads, self.head_dim
        perm = self._perm
        if perm is None or perm.device != self.v_proj.weight.device:
            perm = torch.arange(3 * h * d, device=self.v_proj.weight.device)
            perm = perm.view(h, 3, d).transpose(0, 1).reshape(-1)
            self._perm = perm
        return perm

    def _value_blocks(
        self, lin: nn.Linear, wanted: tuple[bool, bool, bool] = (True, True, True)
    ) -> list[tuple[Tensor, Tensor] | None]:
        """``lin``'s weight and bias cut into the ``s1, s2, s3`` blocks, each ``([C, *], [C])``.

        Blocks not ``wanted`` are ``None``.
        """
        perm = self._value_order()
        c = self.hidden_channels
        rows = [perm[i * c : (i + 1) * c] for i in range(3)]
        return [
            (lin.weight.index_select(0, r), lin.bias.index_select(0, r)) if want else None
            for r, want in zip(rows, wanted, strict=True)
        ]

    def distance_projections(
        self, edge_attr: Tensor, values: tuple[bool, bool, bool] = (True, True, True)
    ) -> list[Tensor | None]:
        """The distance filters ``act(dk_proj(rbf))`` and ``act(dv_proj(rbf))``.

        One ``[E, C]`` tensor per block: keys (when distances enter the keys), then the three
        value blocks ``s1, s2, s3`` (when they enter the values; a block left out of ``values``
        is ``None``). Separate products keep every edge tensor contiguous, so autograd never
        has to split or concatenate ``[E, *]`` blocks.

        Shapes:
            - **input:** edge_attr ``[E, R]``
            - **output:** 0, 1, 3 or 4 entries ``[E, C]`` (or ``None``)
        """
        out: list[Tensor | None] = []
        if self.dk_proj is not None:
            out.append(self.act(self.dk_proj(edge_attr)))
        if self.dv_proj is not None:
            out += [
                None if block is None else self.act(F.linear(edge_attr, *block))
                for block in self._value_blocks(self.dv_proj, values)
            ]
        return out

    @staticmethod
    def _rows(lin: nn.Linear, x: Tensor, first: int, last: int, blocks: int = 3) -> Tensor:
        """Output blocks ``first..last-1`` of ``lin(x)`` (of ``blocks`` equal ones), alone."""
        if first == 0 and last == blocks:
            return lin(x)
        size = lin.out_features // blocks
        bias = None if lin.bias is None else lin.bias[first * size : last * size]
        return F.linear(x, lin.weight[first * size : last * size], bias)

    def forward(
        self,
        x: Tensor,
        vec: Tensor | None,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_attr: Tensor,
        edge_unit: Tensor,
        edge_pair: Tensor | None = None,
        vectors: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Residual updates ``dx`` ``[N, C]`` and ``dvec`` ``[N, 3, C]``.

        With ``edge_pair`` ``[E]``, ``edge_attr`` holds one row per unordered atom pair
        (``[U, R]``) and ``edge_pair`` gives each edge's row (see
        [`edge_pairs`][molgnn.models.edge_pairs]): the distance filters, the layer's largest matrix
        products, then run once per pair instead of once per edge. ``vec=None`` stands for
        all-zero vector features (the ET's first layer) and skips the terms that vanish;
        ``vectors=False`` skips the vector update (``dvec`` is ``None``), for a last layer whose
        vectors nobody reads.
        """
        c = self.hidden_channels
        x = self.layernorm(x)
        # Blocks whose results nobody reads are not computed: with zero vectors (vec=None) the
        # s2 values, o1, o2; without the vector update (vectors=False) s2, s3, o1 and vec3.
        wanted = (True, vec is not None and vectors, vectors)
        q = self.q_proj(x)  # [N, C]
        k = self.k_proj(x)  # [N, C]
        v = [  # 3 x [N, C] (None where not wanted)
            None if block is None else F.linear(x, *block)
            for block in self._value_blocks(self.v_proj, wanted)
        ]
        y, w = self._messages(
            q, k, v, vec, edge_attr, edge_index, edge_weight, edge_unit, edge_pair, wanted
        )
        if vec is None:  # all-zero vector features: their terms vanish
            return self._rows(self.o_proj, y, 2, 3), w
        first = 0 if vectors else 1
        o = self._rows(self.o_proj, y, first, 3).split(c, dim=1)  # (o1,) o2, o3: [N, C]
        vecs = self._rows(self.vec_proj, vec, 0, 2 + vectors).split(c, dim=-1)  # [N, 3, C]
        dx = torch.addcmul(o[-1], (vecs[0] * vecs[1]).sum(dim=1), o[-2])
        if w is None:
            return dx, None
        return dx, torch.addcmul(w, vecs[2], o[0].unsqueeze(1))

    def _messages(
        self,
        q: Tensor,
        k: Tensor,
        v: list[Tensor | None],
        vec: Tensor | None,
        edge_attr: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_unit: Tensor,
        edge_pair: Tensor | None,
        wanted: tuple[bool, bool, bool],
    ) -> tuple[Tensor, Tensor | None]:
        """The per-edge work and its aggregation (the hot path), eager or compiled."""
        dist = self.distance_projections(edge_attr, wanted)
        dk = dist[0] if self.dk_proj is not None else None
        dv1, dv2, dv3 = dist[-3:] if self.dv_proj is not None else (None, None, None)
        cut = self.cutoff(edge_weight).unsqueeze(1)  # [E, 1]
        vectors = wanted[2]
        v1 = v[0]
        assert v1 is not None  # the scalar message always needs it
        tensors = (q, k, v1, v[1], v[2], vec, dk, dv1, dv2, dv3, edge_index, cut, edge_unit,
                   edge_pair)  # fmt: skip
        options = self._compile_options
        if not runs_compiled(options):
            return _edge_messages(
                *tensors, self.num_heads, self.head_dim, self.attn_activation, self.vector_cutoff,
                vectors,
            )  # fmt: skip
        static = (self.num_heads, self.head_dim, self._attn_name, self.vector_cutoff, vectors)
        return _compiled(options, static)(*tensors)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the per-edge hot path with ``torch.compile``, in place.

        Only the edge work is compiled (gathers, products and the scatters into atoms, fused
        into a few loops); the projections stay eager. Layers of the same shape share one set
        of kernels. Atom and edge counts become dynamic after the first batch of a new size, so
        the first few batches are slow while it compiles, and later ones reuse the kernels.
        Arguments go to ``torch.compile``.
        """
        self._compile_options = compile_options(args, kwargs)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_heads={self.num_heads}, distance_influence={self.distance_influence!r}, "
            f"vector_cutoff={self.vector_cutoff}, layer_norm={self.layer_norm})"
        )


def _edge_messages(
    q: Tensor,
    k: Tensor,
    v1: Tensor,
    v2: Tensor | None,
    v3: Tensor | None,
    vec: Tensor | None,
    dk: Tensor | None,
    dv1: Tensor | None,
    dv2: Tensor | None,
    dv3: Tensor | None,
    edge_index: Tensor,
    cut: Tensor,
    unit: Tensor,
    edge_pair: Tensor | None,
    num_heads: int,
    head_dim: int,
    attn_activation: Callable[[Tensor], Tensor],
    vector_cutoff: bool,
    vectors: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Attention, scalar and vector messages, from ``edge_index[0]`` summed into ``edge_index[1]``.

    Whatever depends on the neighbour alone is computed per atom before the gather
    (``vec_j * v2_j``), and the cutoff multiplies the smallest factor it can, so each edge
    touches as few ``[E, C]`` temporaries as possible. Distance filters given per atom pair
    (``edge_pair``) are gathered here, where a compiled kernel fuses the gather.

    Shapes:
        - **input:** q, k, v1, v2, v3 ``[N, C]``, vec ``[N, 3, C]`` (or ``None`` for zeros), filters ``[E, C]`` or
          ``[U, C]``, edge_index ``[2, E]``, cut ``[E, 1]``, unit ``[E, 3]``
        - **output:** ``[N, C]``, ``[N, 3, C]``
    """
    src, dst = edge_index[0], edge_index[1]
    n, e, c = q.size(0), src.numel(), num_heads * head_dim
    if vec is None or not vectors:  # the vec_j * s2 term vanishes or is not wanted
        dv2 = None
    if not vectors:
        dv3 = None
    if edge_pair is not None:
        dk, dv1, dv2, dv3 = (
            None if t is None else gather(t, edge_pair) for t in (dk, dv1, dv2, dv3)
        )
    qk = gather(q, dst) * gather(k, src)  # [E, C]
    if dk is not None:
        qk = qk * dk
    attn = attn_activation(qk.view(e, num_heads, head_dim).sum(dim=-1))  # [E, H]
    attn = attn * cut  # the scalar message is cut in both modes
    s1 = gather(v1, src)
    if dv1 is not None:
        s1 = s1 * dv1
    y = reduce_sum((s1.view(e, num_heads, head_dim) * attn.unsqueeze(2)).view(e, c), dst, n)
    if not vectors:
        return y, None
    assert v3 is not None  # computed whenever the vector update is
    s3 = gather(v3, src)
    s2: Tensor | None = cut if vector_cutoff else None
    if dv3 is not None:
        s3 = s3 * dv3
    if dv2 is not None:
        s2 = dv2 * cut if vector_cutoff else dv2  # [E, C]
    if vector_cutoff:
        unit = unit * cut  # [E, 3]
    vec_msg = unit.unsqueeze(2) * s3.unsqueeze(1)  # [E, 3, C]
    if vec is not None:
        assert v2 is not None  # computed whenever vectors are updated from nonzero ones
        u_j = gather(vec * v2.unsqueeze(1), src)  # [E, 3, C]: vec_j * v2_j, made per atom
        vec_msg = vec_msg + u_j if s2 is None else torch.addcmul(vec_msg, u_j, s2.unsqueeze(1))
    return y, reduce_sum(vec_msg, dst, n)


def _compiled(
    options: CompileOptions,
    static: tuple[int, int, str, bool, bool],
) -> Callable[..., tuple[Tensor, Tensor | None]]:
    """The hot path compiled with ``options``, shared by every layer with the same ``static``.

    Head count and size, attention activation and cutoff mode are closed over, so the compiler
    sees them as constants. Left to torch's automatic dynamic shapes, the atom and edge counts
    become symbolic after the first change of batch size while the channel counts stay static,
    so the channel loops vectorise (forcing ``dynamic=True`` makes them symbolic too, and the
    kernels about 3x slower).
    """
    num_heads, head_dim, attn_name, vector_cutoff, vectors = static

    def build() -> Callable[..., tuple[Tensor, Tensor | None]]:
        attn_activation = ACTIVATION_FUNCTIONS[attn_name]

        def messages(*tensors: Any) -> tuple[Tensor, Tensor | None]:
            return _edge_messages(
                *tensors, num_heads, head_dim, attn_activation, vector_cutoff, vectors
            )  # type: ignore[call-arg]

        return messages

    return compiled(options, ("attention", static), build)
