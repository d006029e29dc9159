"""A pooled message-passing GNN for graph-level regression, built from PyG's layers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv, GINEConv, NNConv, PNAConv

from molgnn.data.keys import ELEMENT_SYMBOLS, QM9_ELEMENTS
from molgnn.models.model import MolecularModel
from molgnn.nn.activations import activation as make_activation
from molgnn.nn.heads import OutputHead
from molgnn.nn.mlp import MLP
from molgnn.nn.pool import POOLS, GlobalPool
from molgnn.nn.radial import GaussianSmearing
from molgnn.nn.radius import radius_graph

__all__ = [
    "CONVS",
    "EDGE_SOURCES",
    "PooledGNN",
    "PooledGNNConfig",
    "PooledGNNEncoder",
    "PooledHead",
]

EDGE_SOURCES = ("radius", "bonds")


def _gine(c: int, edge_dim: int, opts: dict[str, Any]) -> nn.Module:
    mlp = nn.Sequential(nn.Linear(c, c), make_activation(opts["activation"]), nn.Linear(c, c))
    return GINEConv(mlp, edge_dim=edge_dim)


def _nnconv(c: int, edge_dim: int, opts: dict[str, Any]) -> nn.Module:
    # Gilmer et al. 2017 (MPNN): an edge network maps edge features to a C x C matrix.
    edge_net = nn.Sequential(nn.Linear(edge_dim, 64), nn.SiLU(), nn.Linear(64, c * c))
    return NNConv(c, c, edge_net, aggr="mean")


def _gatv2(c: int, edge_dim: int, opts: dict[str, Any]) -> nn.Module:
    heads = opts["heads"]
    if c % heads:
        raise ValueError(f"hidden_channels ({c}) must be divisible by heads ({heads}) for gatv2")
    return GATv2Conv(c, c // heads, heads=heads, edge_dim=edge_dim)


def _pna(c: int, edge_dim: int, opts: dict[str, Any]) -> nn.Module:
    return PNAConv(
        c, c, aggregators=["mean", "min", "max", "std"], scalers=["identity", "amplification", "attenuation"],
        deg=opts["deg"], edge_dim=edge_dim, towers=1,
    )  # fmt: skip


#: Convolution name -> builder ``(channels, edge_dim, options) -> layer`` (PyG's layers).
CONVS: dict[str, Callable[[int, int, dict[str, Any]], nn.Module]] = {
    "gine": _gine,
    "nnconv": _nnconv,
    "gatv2": _gatv2,
    "pna": _pna,
}


def default_degree_histogram(max_degree: int) -> Tensor:
    """A flat in-degree histogram over ``1..max_degree`` for PNA's degree scalers."""
    deg = torch.ones(max_degree + 1, dtype=torch.long)
    deg[0] = 0
    return deg


class PooledGNNEncoder(nn.Module):
    r"""Atom embedding + ``num_layers`` residual message-passing layers (the representation).

    Each layer: :math:`\mathbf{x} \leftarrow \mathbf{x} + \text{Dropout}(\phi(\text{Norm}(
    \text{Conv}(\mathbf{x}, \mathbf{e}))))`, with edge features :math:`\mathbf{e}` the
    Gaussian expansion of the interatomic distance. Distances only, so the features are
    invariant to rotations, reflections and translations.

    Args:
        hidden_channels: Feature size :math:`C`.
        num_layers: Message-passing layers.
        conv: Name from :data:`CONVS`.
        edge_source: ``"radius"`` (all pairs within ``cutoff``) or ``"bonds"`` (covalent bonds).
        cutoff: Radius-graph cutoff in Å; also the range of the distance expansion.
        num_rbf: Gaussians of the distance expansion :math:`R`.
        atom_embedding: ``"embedding"`` (learned, by atomic number) or ``"onehot"``
            (one-hot over ``elements``, then linear).
        elements: Elements of the one-hot embedding.
        max_z: Largest atomic number + 1 for ``"embedding"``.
        norm: ``"layer"``, ``"batch"`` or ``None``.
        dropout: Dropout probability.
        activation: Activation name.
        heads: Attention heads of ``gatv2``.
        max_num_neighbors: Neighbour limit of the radius graph.
        deg: In-degree histogram for ``pna`` (default: flat up to the neighbour limit).

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]`` (optional)
        - **output:** x ``[N, C]``, ``None``
    """

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 4,
        conv: str = "gine",
        edge_source: str = "radius",
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
        deg: Tensor | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"unknown conv {conv!r}; valid convs: {', '.join(CONVS)}")
        if edge_source not in EDGE_SOURCES:
            raise ValueError(
                f"unknown edge_source {edge_source!r}; valid: {', '.join(EDGE_SOURCES)}"
            )
        if atom_embedding not in ("embedding", "onehot"):
            raise ValueError(f"unknown atom_embedding {atom_embedding!r}; valid: embedding, onehot")
        if norm not in ("layer", "batch", None):
            raise ValueError(f"unknown norm {norm!r}; valid: layer, batch, None")
        self.hidden_channels, self.num_layers, self.conv = hidden_channels, num_layers, conv
        self.edge_source, self.cutoff, self.max_num_neighbors = (
            edge_source,
            cutoff,
            max_num_neighbors,
        )
        self.atom_embedding = atom_embedding
        self.elements = tuple(int(e) for e in elements)
        self.max_z = max_z
        if atom_embedding == "embedding":
            self.embedding: nn.Module = nn.Embedding(max_z, hidden_channels)
        else:
            self.embedding = nn.Linear(len(self.elements), hidden_channels)
            lookup = torch.full((max(max_z, max(self.elements) + 1),), -1, dtype=torch.long)
            lookup[list(self.elements)] = torch.arange(len(self.elements))
            self.register_buffer("lookup", lookup)
        self.expansion = GaussianSmearing(0.0, cutoff, num_rbf, trainable=False)
        if deg is None:
            deg = default_degree_histogram(max_num_neighbors if edge_source == "radius" else 6)
        opts = {"activation": activation, "heads": heads, "deg": torch.as_tensor(deg)}
        self.convs = nn.ModuleList(
            CONVS[conv](hidden_channels, num_rbf, opts) for _ in range(num_layers)
        )
        make_norm: Callable[[], nn.Module] = {
            "layer": lambda: nn.LayerNorm(hidden_channels),
            "batch": lambda: nn.BatchNorm1d(hidden_channels),
            None: nn.Identity,
        }[norm]
        self.norms = nn.ModuleList(make_norm() for _ in range(num_layers))
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        """Re-initialise embedding, convolutions and norms."""
        for module in (self.embedding, *self.convs, *self.norms):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _embed(self, z: Tensor) -> Tensor:
        if self.atom_embedding == "embedding":
            if z.numel() and int(z.max()) >= self.max_z:
                raise ValueError(
                    f"atomic numbers must be below max_z={self.max_z}, got {int(z.max())}"
                )
            return self.embedding(z)
        lookup: Tensor = self.lookup  # type: ignore[assignment]
        column = lookup[z.clamp(max=lookup.numel() - 1)]
        if (column < 0).any():
            bad = sorted({ELEMENT_SYMBOLS[int(v)] for v in z[column < 0].unique()})
            raise ValueError(
                f"element(s) {', '.join(bad)} not among the one-hot elements {self.elements}"
            )
        return self.embedding(
            nn.functional.one_hot(column, len(self.elements)).to(
                torch.get_default_dtype()
                if not isinstance(self.embedding, nn.Linear)
                else self.embedding.weight.dtype
            )
        )

    def edges(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        """The message-passing graph of ``edge_source``."""
        if self.edge_source == "radius":
            return radius_graph(pos, self.cutoff, batch, max_num_neighbors=self.max_num_neighbors)
        from molgnn.transforms.covalent_bonds import covalent_bonds

        return covalent_bonds(z, pos, batch)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        edge_vec: Tensor | None = None,
    ) -> tuple[Tensor, None]:
        """Atom features; a given ``edge_index`` is used as is, distances come from ``pos``."""
        if edge_index is None:
            edge_index = self.edges(z, pos, batch)
        length = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)
        edge_attr = self.expansion(length)  # [E, R]
        x = self._embed(z)
        for conv, norm in zip(self.convs, self.norms):
            x = x + self.dropout(self.act(norm(conv(x, edge_index, edge_attr))))
        return x, None

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, num_layers={self.num_layers}, "
            f"conv={self.conv!r}, edge_source={self.edge_source!r})"
        )


class PooledHead(OutputHead):
    """Global pooling then an MLP: ``[N, C]`` -> ``[B, T]``.

    Args:
        hidden_channels: Feature size :math:`C`.
        pool: Name from :data:`~molgnn.nn.pool.POOLS`.
        out_channels: Targets :math:`T` (default: ``1``).
        activation: Activation name (default: ``"silu"``).
        dropout: Dropout before the MLP (default: ``0.0``).
    """

    def __init__(
        self,
        hidden_channels: int,
        pool: str = "sum",
        out_channels: int = 1,
        activation: str = "silu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__("sum")
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
        """Re-initialise pooling and MLP."""
        self.pooling.reset_parameters()
        self.mlp.reset_parameters()

    def pre_reduce(
        self, x: Tensor, vec: Tensor | None, z: Tensor, pos: Tensor, batch: Tensor
    ) -> Tensor:
        return x

    def reduce(self, h: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        return self.pooling(h, batch, num_graphs)

    def post_reduce(self, y: Tensor) -> Tensor:
        return self.mlp(self.dropout(y))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(pool={self.pooling.pool!r})"


class PooledGNN(nn.Module):
    """Pooled message-passing GNN: :class:`PooledGNNEncoder`, then :class:`PooledHead`.

    A complete model (``forward`` returns ``[B, T]``) whose ``representation`` and ``head``
    also plug into :class:`~molgnn.models.MolecularModel` for priors and standardisation
    (:meth:`PooledGNNConfig.build` does that).

    Args:
        hidden_channels: Feature size (default: ``128``).
        num_layers: Message-passing layers (default: ``4``).
        conv: ``"gine"``, ``"nnconv"``, ``"gatv2"`` or ``"pna"`` (default: ``"gine"``).
        pool: ``"sum"``, ``"mean"``, ``"max"``, ``"attention"`` or ``"set2set"`` (default: ``"sum"``).
        out_channels: Targets (default: ``1``).
        dropout: Dropout probability (default: ``0.0``).
        **encoder: Further :class:`PooledGNNEncoder` arguments (``edge_source``, ``cutoff``, ...).

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``
        - **output:** ``[B, T]``
    """

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 4,
        conv: str = "gine",
        pool: str = "sum",
        out_channels: int = 1,
        dropout: float = 0.0,
        **encoder: Any,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid pools: {', '.join(POOLS)}")
        activation = encoder.get("activation", "silu")
        self.representation = PooledGNNEncoder(
            hidden_channels, num_layers, conv, dropout=dropout, **encoder
        )
        self.head = PooledHead(hidden_channels, pool, out_channels, activation, dropout)

    def reset_parameters(self) -> None:
        """Re-initialise everything."""
        self.representation.reset_parameters()
        self.head.reset_parameters()

    def forward(
        self, z: Tensor, pos: Tensor, batch: Tensor | None = None, edge_index: Tensor | None = None
    ) -> Tensor:
        batch = torch.zeros_like(z) if batch is None else batch
        num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        x, _ = self.representation(z, pos, batch, edge_index)
        return self.head.post_reduce(self.head.reduce(x, batch, num_graphs))


@dataclass(frozen=True)
class PooledGNNConfig:
    """Config of a :class:`PooledGNN` inside :class:`~molgnn.models.MolecularModel` (kind ``"pooled"``)."""

    kind: ClassVar[str] = "pooled"
    hidden_channels: int = 128
    num_layers: int = 4
    conv: str = "gine"
    pool: str = "sum"
    edge_source: str = "radius"
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
    out_channels: int = 1
    prior: str | None = None
    derivative: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields plus ``"kind"``."""
        values = dataclasses.asdict(self)
        values["elements"] = list(self.elements)
        return {"kind": self.kind, **values}

    def replace(self, **changes: Any) -> PooledGNNConfig:
        """A copy with ``changes``; unknown fields raise ValueError listing the valid ones."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(
                f"unknown PooledGNNConfig field(s) {', '.join(unknown)}; valid fields: {', '.join(names)}"
            )
        if "elements" in changes:
            changes["elements"] = tuple(changes["elements"])
        return dataclasses.replace(self, **changes)

    def build(self) -> MolecularModel:
        """A :class:`~molgnn.models.MolecularModel` wrapping the GNN's representation and head."""
        from molgnn.nn.prior import Atomref

        values = {
            k: v for k, v in dataclasses.asdict(self).items() if k not in ("prior", "derivative")
        }
        gnn = PooledGNN(**values)
        prior = Atomref(max_z=self.max_z) if self.prior == "atomref" else None
        model = MolecularModel(gnn.representation, gnn.head, prior, derivative=self.derivative)
        model.config = self
        return model
