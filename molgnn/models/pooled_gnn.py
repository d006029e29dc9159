"""A pooled message-passing GNN for molecular properties, built from PyG's layers.

Atom embedding, residual message-passing layers (PyG's convolutions) over bonds or a radius
graph with invariant edge features, global pooling and an MLP head. The representation
(:class:`PooledGNNEncoder`) and the head (:class:`PooledHead`) follow the same contract as the
Equivariant Transformer's, so both plug into :class:`~molgnn.models.MolecularModel`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv, GINEConv, NNConv, PNAConv

from molgnn.data.keys import ELEMENT_SYMBOLS, QM9_ELEMENTS
from molgnn.models.configs import ModelConfig
from molgnn.models.model import MolecularModel
from molgnn.nn.activations import activation as make_activation
from molgnn.nn.heads import OutputHead
from molgnn.nn.mlp import MLP
from molgnn.nn.pool import POOLS, GlobalPool
from molgnn.nn.radial import GaussianSmearing
from molgnn.nn.radius import radius_graph
from molgnn.transforms.covalent_bonds import BOND_TOLERANCE

__all__ = [
    "CONVS",
    "EDGE_FEATURES",
    "EDGE_SOURCES",
    "NORMS",
    "PooledGNN",
    "PooledGNNConfig",
    "PooledGNNEncoder",
    "PooledHead",
    "degree_histogram",
]

#: Where the message-passing edges come from.
EDGE_SOURCES: tuple[str, ...] = ("radius", "bonds")
#: Invariant edge features: ``"distance"`` (the interatomic distance expanded in ``num_rbf``
#: Gaussians) and ``"ratio"`` (distance over the summed covalent radii; below 1 for multiple
#: bonds, see :data:`molgnn.transforms.COVALENT_RADII`).
EDGE_FEATURES: tuple[str, ...] = ("distance", "ratio")
#: Normalisation after each convolution.
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "layer": nn.LayerNorm,
    "batch": nn.BatchNorm1d,
    "none": lambda channels: nn.Identity(),
}
#: Hidden width of the edge network of ``nnconv`` (it outputs a ``C x C`` matrix per edge).
NNCONV_EDGE_HIDDEN = 64
#: Bonds per atom covered by the default degree histogram of ``pna`` on bond graphs.
MAX_BONDS = 6


@dataclass(frozen=True)
class _ConvOptions:
    activation: str
    heads: int
    deg: Tensor


def _gine(channels: int, edge_dim: int, opts: _ConvOptions) -> nn.Module:
    # GIN with edge features (Hu et al., 2020): MLP((1 + eps) x_i + sum_j ReLU(x_j + W e_ji)).
    mlp = nn.Sequential(
        nn.Linear(channels, channels),
        make_activation(opts.activation),
        nn.Linear(channels, channels),
    )
    return GINEConv(mlp, edge_dim=edge_dim)


def _nnconv(channels: int, edge_dim: int, opts: _ConvOptions) -> nn.Module:
    # The edge network of Gilmer et al. (2017): an MLP maps each edge's features to a C x C
    # matrix that multiplies the neighbour's features; messages are averaged.
    edge_net = nn.Sequential(
        nn.Linear(edge_dim, NNCONV_EDGE_HIDDEN),
        make_activation(opts.activation),
        nn.Linear(NNCONV_EDGE_HIDDEN, channels * channels),
    )
    return NNConv(channels, channels, edge_net, aggr="mean")


def _gatv2(channels: int, edge_dim: int, opts: _ConvOptions) -> nn.Module:
    if channels % opts.heads:
        raise ValueError(
            f"hidden_channels ({channels}) must be divisible by heads ({opts.heads}) for gatv2"
        )
    return GATv2Conv(channels, channels // opts.heads, heads=opts.heads, edge_dim=edge_dim)


def _pna(channels: int, edge_dim: int, opts: _ConvOptions) -> nn.Module:
    return PNAConv(
        channels,
        channels,
        aggregators=["mean", "min", "max", "std"],
        scalers=["identity", "amplification", "attenuation"],
        deg=opts.deg,
        edge_dim=edge_dim,
        towers=1,
    )


#: Convolution name -> builder ``(channels, edge_dim, options) -> layer``: PyG's
#: :class:`~torch_geometric.nn.conv.GINEConv`, :class:`~torch_geometric.nn.conv.NNConv` (the
#: MPNN edge network of Gilmer et al., 2017), :class:`~torch_geometric.nn.conv.GATv2Conv` with
#: edge features and :class:`~torch_geometric.nn.conv.PNAConv`. ``nnconv`` builds a ``C x C``
#: matrix for every edge (``E * C * C`` floats per layer): it suits bond graphs (as in Gilmer et
#: al.) or small ``hidden_channels``; on a 5 Å radius graph at ``C = 128`` it is ~100x
#: slower than ``gine`` (see ``benchmarks/gnn_throughput.py``).
CONVS: dict[str, Callable[[int, int, _ConvOptions], nn.Module]] = {
    "gine": _gine,
    "nnconv": _nnconv,
    "gatv2": _gatv2,
    "pna": _pna,
}


def _check_choice(kind: str, value: Any, valid: Iterable[Any]) -> None:
    valid = list(valid)
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid {kind}s: {', '.join(map(str, valid))}")


def _check_edge_features(edge_features: Sequence[str]) -> tuple[str, ...]:
    features = tuple(edge_features)
    unknown = [f for f in features if f not in EDGE_FEATURES]
    if unknown or not features or len(set(features)) != len(features):
        raise ValueError(
            f"edge_features must be distinct names from {', '.join(EDGE_FEATURES)}, "
            f"got {list(features)}"
        )
    return features


def _flat_degree_histogram(max_degree: int) -> Tensor:
    deg = torch.ones(max_degree + 1, dtype=torch.long)  # degrees 1..max_degree, equally often
    deg[0] = 0
    return deg


def _build_edges(
    z: Tensor,
    pos: Tensor,
    batch: Tensor | None,
    edge_source: str,
    cutoff: float,
    max_num_neighbors: int,
    bond_tolerance: float,
) -> Tensor:
    if edge_source == "radius":
        return radius_graph(pos, cutoff, batch, max_num_neighbors=max_num_neighbors)
    from molgnn.transforms.covalent_bonds import covalent_bonds

    return covalent_bonds(z, pos, batch, tolerance=bond_tolerance)


def degree_histogram(
    molecules: Iterable[Any],
    edge_source: str = "radius",
    cutoff: float = 5.0,
    max_num_neighbors: int = 32,
    bond_tolerance: float = BOND_TOLERANCE,
) -> Tensor:
    """In-degree histogram of the message-passing graphs of ``molecules``, for ``pna``.

    PNA's degree scalers normalise by the average log-degree of the training graphs; pass the
    result as ``deg`` (or use :meth:`PooledGNNConfig.with_degree_histogram`).

    Args:
        molecules: Objects with ``z`` ``[N]`` and ``pos`` ``[N, 3]`` (e.g. QM9 items).
        edge_source: ``"radius"`` or ``"bonds"``, as in the model (default: ``"radius"``).
        cutoff: Radius-graph cutoff in Å (default: ``5.0``).
        max_num_neighbors: Neighbour limit of the radius graph (default: ``32``).
        bond_tolerance: Factor on the summed covalent radii for bonds (default:
            :data:`~molgnn.transforms.BOND_TOLERANCE`).

    Returns:
        ``deg`` ``[D + 1]``: ``deg[k]`` atoms have ``k`` incoming edges.

    Raises:
        ValueError: for an unknown ``edge_source`` or no molecules.
    """
    _check_choice("edge_source", edge_source, EDGE_SOURCES)
    hist = torch.zeros(1, dtype=torch.long)
    count = 0
    for mol in molecules:
        edge_index = _build_edges(
            mol.z, mol.pos, None, edge_source, cutoff, max_num_neighbors, bond_tolerance
        )
        in_degree = torch.bincount(edge_index[1], minlength=mol.z.numel())  # [N]
        counts = torch.bincount(in_degree)  # [max degree + 1]
        if counts.numel() > hist.numel():
            hist = torch.cat([hist, hist.new_zeros(counts.numel() - hist.numel())])
        hist[: counts.numel()] += counts
        count += 1
    if count == 0:
        raise ValueError("degree_histogram needs at least one molecule")
    return hist


def _check_inputs(z: Tensor, pos: Tensor, batch: Tensor | None) -> Tensor:
    if z.dim() != 1 or z.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"z must be a 1-D integer tensor of atomic numbers, got {z.dtype} {list(z.shape)}"
        )
    if z.numel() == 0:
        raise ValueError("empty molecule: no atoms")
    if pos.shape != (z.numel(), 3):
        raise ValueError(f"pos must have shape [{z.numel()}, 3], got {list(pos.shape)}")
    if not torch.isfinite(pos).all():
        raise ValueError("pos contains NaN or infinite coordinates")
    if batch is None:
        return torch.zeros_like(z, dtype=torch.long)
    if batch.shape != z.shape:
        raise ValueError(f"batch must have shape [{z.numel()}], got {list(batch.shape)}")
    return batch.long()


class PooledGNNEncoder(nn.Module):
    r"""Atom embedding and ``num_layers`` residual message-passing layers (the representation).

    Each layer updates the atom features with a PyG convolution over invariant edge features
    :math:`\mathbf{e}_{ji}`:

    .. math::
        \mathbf{x}_i \leftarrow \mathbf{x}_i + \operatorname{Dropout}\big(\sigma\big(
        \operatorname{Norm}(\operatorname{Conv}(\mathbf{x}, \mathbf{e})_i)\big)\big)

    The edge features depend on interatomic distances only, so the atom features are invariant
    to rotations, reflections and translations, and permute with the atoms.

    Args:
        hidden_channels: Feature size :math:`C` (default: ``128``).
        num_layers: Message-passing layers (default: ``4``).
        conv: A name from :data:`CONVS` (default: ``"gine"``).
        edge_source: ``"radius"`` (pairs closer than ``cutoff``) or ``"bonds"`` (covalent bonds
            from :func:`~molgnn.transforms.covalent_bonds`) (default: ``"radius"``).
        edge_features: Names from :data:`EDGE_FEATURES` (default: ``("distance",)``).
        cutoff: Radius-graph cutoff in Å, also the range of the Gaussians (default: ``5.0``).
        num_rbf: Gaussians :math:`R` of the distance expansion (default: ``32``).
        atom_embedding: ``"embedding"`` (learned, by atomic number) or ``"onehot"`` (one-hot
            over ``elements``, then linear) (default: ``"embedding"``).
        elements: Atomic numbers of the one-hot embedding (default: QM9's H, C, N, O, F).
        max_z: Largest atomic number + 1 (default: ``100``).
        norm: A name from :data:`NORMS`; ``None`` means ``"none"`` (default: ``"layer"``).
        dropout: Dropout probability after each layer (default: ``0.0``).
        activation: Activation name (default: ``"silu"``).
        heads: Attention heads of ``gatv2`` (default: ``4``).
        max_num_neighbors: Neighbour limit of the radius graph (default: ``32``).
        bond_tolerance: Factor on the summed covalent radii for bonds (default:
            :data:`~molgnn.transforms.BOND_TOLERANCE`).
        deg: In-degree histogram for ``pna`` (see :func:`degree_histogram`) (default: every
            degree from 1 to ``max_num_neighbors`` (radius) or 6 (bonds) equally often).

    Raises:
        ValueError: for an unknown name (listing the valid ones) or inconsistent sizes.

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]`` (optional)
        - **output:** x ``[N, C]`` and ``None`` (no vector features)
    """

    lookup: Tensor

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 4,
        conv: str = "gine",
        edge_source: str = "radius",
        edge_features: Sequence[str] = ("distance",),
        cutoff: float = 5.0,
        num_rbf: int = 32,
        atom_embedding: str = "embedding",
        elements: Sequence[int] = QM9_ELEMENTS,
        max_z: int = 100,
        norm: str | None = "layer",
        dropout: float = 0.0,
        activation: str = "silu",
        heads: int = 4,
        max_num_neighbors: int = 32,
        bond_tolerance: float = BOND_TOLERANCE,
        deg: Tensor | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        norm = "none" if norm is None else norm
        _check_choice("conv", conv, CONVS)
        _check_choice("edge_source", edge_source, EDGE_SOURCES)
        _check_choice("atom_embedding", atom_embedding, ("embedding", "onehot"))
        _check_choice("norm", norm, NORMS)
        if hidden_channels < 1 or num_layers < 0:
            raise ValueError(
                f"need hidden_channels >= 1 and num_layers >= 0, got {hidden_channels} and "
                f"{num_layers}"
            )
        if not cutoff > 0 or not bond_tolerance > 0:
            raise ValueError(
                f"cutoff and bond_tolerance must be positive, got {cutoff} and {bond_tolerance}"
            )
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.conv = conv
        self.edge_source = edge_source
        self.edge_features = _check_edge_features(edge_features)
        self.cutoff = cutoff
        self.num_rbf = num_rbf
        self.atom_embedding = atom_embedding
        self.elements = tuple(int(e) for e in elements)
        self.max_z = max_z
        self.norm = norm
        self.max_num_neighbors = max_num_neighbors
        self.bond_tolerance = bond_tolerance

        if atom_embedding == "embedding":
            self.embedding: nn.Module = nn.Embedding(max_z, hidden_channels)
        else:
            if not self.elements or min(self.elements) < 1 or max(self.elements) >= max_z:
                raise ValueError(
                    f"elements must be atomic numbers in 1..{max_z - 1}, got {self.elements}"
                )
            self.embedding = nn.Linear(len(self.elements), hidden_channels)
            lookup = torch.full((max_z,), -1, dtype=torch.long)
            lookup[list(self.elements)] = torch.arange(len(self.elements))
            self.register_buffer("lookup", lookup)

        self.expansion = GaussianSmearing(0.0, cutoff, num_rbf, trainable=False)
        edge_dim = ("distance" in self.edge_features) * num_rbf + ("ratio" in self.edge_features)
        if deg is None:
            deg = _flat_degree_histogram(
                max_num_neighbors if edge_source == "radius" else MAX_BONDS
            )
        opts = _ConvOptions(activation, heads, torch.as_tensor(deg, dtype=torch.long))
        self.convs = nn.ModuleList(
            CONVS[conv](hidden_channels, edge_dim, opts) for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(NORMS[norm](hidden_channels) for _ in range(num_layers))
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        """Re-initialise the embedding, convolutions and norms."""
        for module in (self.embedding, *self.convs, *self.norms):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def embed(self, z: Tensor) -> Tensor:
        """Initial atom features ``[N, C]`` from atomic numbers ``[N]``.

        Raises:
            ValueError: for an atomic number outside ``1..max_z - 1`` or, with ``"onehot"``,
                an element not in ``elements``.
        """
        if int(z.min()) < 1 or int(z.max()) >= self.max_z:
            raise ValueError(
                f"atomic numbers must be in 1..{self.max_z - 1}, got {int(z.min())}..{int(z.max())}"
            )
        if self.atom_embedding == "embedding":
            return self.embedding(z)
        column = self.lookup[z]  # [N], -1 for elements outside the one-hot set
        if (column < 0).any():
            bad = sorted({ELEMENT_SYMBOLS[int(v)] for v in z[column < 0].unique()})
            raise ValueError(
                f"element(s) {', '.join(bad)} not among the one-hot elements "
                + ", ".join(ELEMENT_SYMBOLS[e] for e in self.elements)
            )
        onehot = nn.functional.one_hot(column, len(self.elements))  # [N, len(elements)]
        return self.embedding(onehot.to(next(self.embedding.parameters()).dtype))

    def edges(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        """The message-passing graph ``[2, E]`` of ``edge_source`` (neighbour, centre)."""
        return _build_edges(
            z,
            pos,
            batch,
            self.edge_source,
            self.cutoff,
            self.max_num_neighbors,
            self.bond_tolerance,
        )

    def edge_attr(self, z: Tensor, pos: Tensor, edge_index: Tensor) -> Tensor:
        """Invariant edge features ``[E, F]`` (the chosen :data:`EDGE_FEATURES`)."""
        j, i = edge_index
        length = (pos[j] - pos[i]).norm(dim=-1)  # [E]
        columns = []
        for name in self.edge_features:
            if name == "distance":
                columns.append(self.expansion(length))  # [E, R]
            else:
                from molgnn.transforms.covalent_bonds import covalent_radii

                radii = covalent_radii(z).to(length.dtype)  # [N]
                columns.append((length / (radii[i] + radii[j])).unsqueeze(-1))  # [E, 1]
        return torch.cat(columns, dim=-1)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        edge_vec: Tensor | None = None,
    ) -> tuple[Tensor, None]:
        """Atom features ``[N, C]``; the edge features always come from ``pos``.

        A given ``edge_index`` is used as is (``edge_weight`` and ``edge_vec`` are ignored:
        the distances are recomputed so that forces flow through them).
        """
        if edge_index is None:
            edge_index = self.edges(z, pos, batch)
        elif edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
        elif edge_index.numel() and (
            int(edge_index.min()) < 0 or int(edge_index.max()) >= z.numel()
        ):
            raise ValueError(f"edge_index refers to atoms outside 0..{z.numel() - 1}")
        edge_attr = self.edge_attr(z, pos, edge_index)  # [E, F]
        x = self.embed(z)  # [N, C]
        for conv, norm in zip(self.convs, self.norms):
            x = x + self.dropout(self.act(norm(conv(x, edge_index, edge_attr))))
        return x, None

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, conv={self.conv!r}, edge_source={self.edge_source!r}, "
            f"edge_features={list(self.edge_features)}, cutoff={self.cutoff})"
        )


class PooledHead(OutputHead):
    """Global pooling, then an MLP: atom features ``[N, C]`` to predictions ``[B, T]``.

    ``pre_reduce`` passes the atom features through, ``reduce`` is the chosen
    :class:`~molgnn.nn.GlobalPool` and ``post_reduce`` the MLP.

    Args:
        hidden_channels: Feature size :math:`C`.
        pool: A name from :data:`~molgnn.nn.POOLS` (default: ``"sum"``).
        out_channels: Targets :math:`T` (default: ``1``).
        activation: Activation name (default: ``"silu"``).
        dropout: Dropout before the MLP (default: ``0.0``).

    Shapes:
        - **input:** x ``[N, C]``, batch ``[N]``
        - **output:** ``[B, T]``
    """

    def __init__(
        self,
        hidden_channels: int,
        pool: str = "sum",
        out_channels: int = 1,
        activation: str = "silu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(hidden_channels, out_channels=out_channels)
        self.pooling = GlobalPool(pool, hidden_channels)
        self.dropout = nn.Dropout(dropout)
        self.mlp = MLP(
            self.pooling.out_channels,
            hidden_channels,
            out_channels,
            activation,
            num_hidden_layers=1,
        )

    def reset_parameters(self) -> None:
        """Re-initialise the pooling and the MLP."""
        self.pooling.reset_parameters()
        self.mlp.reset_parameters()

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        """The atom features, unchanged: ``[N, C]``."""
        return x

    def reduce(self, h: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """The chosen global pooling: ``[N, C]`` -> ``[B, C]`` (``[B, 2C]`` for ``set2set``)."""
        return self.pooling(h, batch, num_graphs)

    def post_reduce(self, y: Tensor) -> Tensor:
        """The MLP: ``[B, C]`` -> ``[B, T]``."""
        return self.mlp(self.dropout(y))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(pool={self.pooling.pool!r}, "
            f"out_channels={self.mlp.out_channels})"
        )


class PooledGNN(nn.Module):
    """Pooled message-passing GNN: :class:`PooledGNNEncoder`, then :class:`PooledHead`.

    A fast invariant baseline. ``forward`` returns ``[B, T]`` on its own; its
    ``representation`` and ``head`` also plug into :class:`~molgnn.models.MolecularModel`
    for priors and target standardisation (:meth:`PooledGNNConfig.build` does that).

    Example::

        model = PooledGNN(hidden_channels=64, num_layers=3, conv="pna", pool="set2set")
        y = model(z, pos, batch)  # [B, 1]

    Args:
        hidden_channels: Feature size :math:`C` (default: ``128``).
        num_layers: Message-passing layers (default: ``4``).
        conv: A name from :data:`CONVS`: ``"gine"``, ``"nnconv"``, ``"gatv2"`` or ``"pna"``
            (default: ``"gine"``).
        pool: A name from :data:`~molgnn.nn.POOLS`: ``"sum"``, ``"mean"``, ``"max"``,
            ``"attention"`` or ``"set2set"`` (default: ``"sum"``).
        edge_source: ``"radius"`` or ``"bonds"`` (default: ``"radius"``).
        edge_features: Names from :data:`EDGE_FEATURES` (default: ``("distance",)``).
        cutoff: Radius-graph cutoff in Å (default: ``5.0``).
        num_rbf: Gaussians of the distance expansion (default: ``32``).
        atom_embedding: ``"embedding"`` or ``"onehot"`` (default: ``"embedding"``).
        elements: Atomic numbers of the one-hot embedding (default: H, C, N, O, F).
        max_z: Largest atomic number + 1 (default: ``100``).
        norm: A name from :data:`NORMS` (default: ``"layer"``).
        dropout: Dropout probability (default: ``0.0``).
        activation: Activation name (default: ``"silu"``).
        heads: Attention heads of ``gatv2`` (default: ``4``).
        max_num_neighbors: Neighbour limit of the radius graph (default: ``32``).
        bond_tolerance: Factor on the summed covalent radii for bonds (default:
            :data:`~molgnn.transforms.BOND_TOLERANCE`).
        deg: In-degree histogram for ``pna`` (default: see :class:`PooledGNNEncoder`).
        out_channels: Targets :math:`T` (default: ``1``).

    Raises:
        ValueError: for an unknown name, listing the valid ones, or malformed inputs.

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]`` (optional), edge_index ``[2, E]``
          (optional)
        - **output:** ``[B, T]``
    """

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 4,
        conv: str = "gine",
        pool: str = "sum",
        edge_source: str = "radius",
        edge_features: Sequence[str] = ("distance",),
        cutoff: float = 5.0,
        num_rbf: int = 32,
        atom_embedding: str = "embedding",
        elements: Sequence[int] = QM9_ELEMENTS,
        max_z: int = 100,
        norm: str | None = "layer",
        dropout: float = 0.0,
        activation: str = "silu",
        heads: int = 4,
        max_num_neighbors: int = 32,
        bond_tolerance: float = BOND_TOLERANCE,
        deg: Tensor | Sequence[int] | None = None,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        _check_choice("pool", pool, POOLS)
        self.representation = PooledGNNEncoder(
            hidden_channels=hidden_channels,
            num_layers=num_layers,
            conv=conv,
            edge_source=edge_source,
            edge_features=edge_features,
            cutoff=cutoff,
            num_rbf=num_rbf,
            atom_embedding=atom_embedding,
            elements=elements,
            max_z=max_z,
            norm=norm,
            dropout=dropout,
            activation=activation,
            heads=heads,
            max_num_neighbors=max_num_neighbors,
            bond_tolerance=bond_tolerance,
            deg=deg,
        )
        self.head = PooledHead(hidden_channels, pool, out_channels, activation, dropout)

    def reset_parameters(self) -> None:
        """Re-initialise the representation and the head."""
        self.representation.reset_parameters()
        self.head.reset_parameters()

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        edge_index: Tensor | None = None,
    ) -> Tensor:
        """Predictions ``[B, T]``; edges are built from ``pos`` when ``edge_index`` is None."""
        batch = _check_inputs(z, pos, batch)
        z = z.long()
        num_graphs = int(batch.max()) + 1
        x, vec = self.representation(z, pos, batch, edge_index)
        h = self.head.pre_reduce(x, vec, z, pos, batch)  # [N, C]
        return self.head.post_reduce(self.head.reduce(h, batch, num_graphs))  # [B, T]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(\n  representation={self.representation},\n"
            f"  head={self.head}\n)"
        )


@dataclass(frozen=True)
class PooledGNNConfig(ModelConfig):
    """Config of a :class:`PooledGNN` inside :class:`~molgnn.models.MolecularModel`.

    Kind ``"pooled"`` in :data:`molgnn.models.MODEL_CONFIGS`. The fields are
    :class:`PooledGNN`'s arguments (``deg`` as a tuple, so it survives a checkpoint), plus
    ``prior`` (``None`` or ``"atomref"``) and ``derivative`` (also return forces).
    Names are checked when the config is made, so a typo fails before any training.
    """

    kind: ClassVar[str] = "pooled"
    hidden_channels: int = 128
    num_layers: int = 4
    conv: str = "gine"
    pool: str = "sum"
    edge_source: str = "radius"
    edge_features: tuple[str, ...] = ("distance",)
    cutoff: float = 5.0
    num_rbf: int = 32
    atom_embedding: str = "embedding"
    elements: tuple[int, ...] = field(default=QM9_ELEMENTS)
    max_z: int = 100
    norm: str | None = "layer"
    dropout: float = 0.0
    activation: str = "silu"
    heads: int = 4
    max_num_neighbors: int = 32
    bond_tolerance: float = BOND_TOLERANCE
    deg: tuple[int, ...] | None = None
    out_channels: int = 1
    prior: str | None = None
    derivative: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()  # types: lists from JSON or YAML become tuples
        _check_choice("conv", self.conv, CONVS)
        _check_choice("pool", self.pool, POOLS)
        _check_choice("edge_source", self.edge_source, EDGE_SOURCES)
        if self.norm is None:  # older configs spelled "none" as None
            object.__setattr__(self, "norm", "none")
        _check_choice("norm", self.norm, NORMS)
        _check_choice("prior", self.prior, (None, "atomref"))
        # Lists (from JSON or YAML) become tuples, so the config stays hashable and comparable.
        object.__setattr__(self, "edge_features", _check_edge_features(self.edge_features))
        object.__setattr__(self, "elements", tuple(int(e) for e in self.elements))
        if self.deg is not None:
            object.__setattr__(self, "deg", tuple(int(d) for d in self.deg))

    def with_degree_histogram(self, molecules: Iterable[Any]) -> PooledGNNConfig:
        """A copy whose ``deg`` is :func:`degree_histogram` of ``molecules`` (for ``pna``)."""
        hist = degree_histogram(
            molecules, self.edge_source, self.cutoff, self.max_num_neighbors, self.bond_tolerance
        )
        return self.replace(deg=tuple(int(v) for v in hist))

    def build(self) -> MolecularModel:
        """A :class:`~molgnn.models.MolecularModel` with the GNN's representation and head."""
        from molgnn.nn.prior import Atomref

        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("prior", "derivative")
        }
        gnn = PooledGNN(**values)
        prior = Atomref(max_z=self.max_z) if self.prior == "atomref" else None
        model = MolecularModel(gnn.representation, gnn.head, prior, derivative=self.derivative)
        model.config = self
        return model
