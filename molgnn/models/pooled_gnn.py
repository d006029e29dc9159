"""A pooled message-passing GNN for molecular properties, built from PyG's layers.

[`PooledGNN`][molgnn.models.PooledGNN] is the representation: atom embedding and residual
message-passing layers ([`CONVS`][molgnn.nn.CONVS]) over bonds or a radius graph with invariant edge
features. Its head is [`PooledHead`][molgnn.nn.PooledHead] (global pooling, then an MLP); the two
plug into [`MolecularModel`][molgnn.models.MolecularModel], as the Equivariant Transformer and its
heads do, and [`PooledGNNConfig`][molgnn.models.PooledGNNConfig] builds the whole model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from molgnn.data.keys import ELEMENT_SYMBOLS, QM9_ELEMENTS
from molgnn.nn.activations import activation as make_activation
from molgnn.nn.convs import CONVS, NORMS, ConvOptions, flat_degree_histogram, in_degree_histogram
from molgnn.nn.radial import GaussianSmearing
from molgnn.nn.radius import radius_graph
from molgnn.transforms.covalent_bonds import BOND_TOLERANCE, covalent_bonds, covalent_radii

__all__ = [
    "ATOM_EMBEDDINGS",
    "EDGE_FEATURES",
    "EDGE_SOURCES",
    "MAX_BONDS",
    "PooledGNN",
    "check_choice",
    "check_edge_features",
    "degree_histogram",
]

#: Where the message-passing edges come from.
EDGE_SOURCES: tuple[str, ...] = ("radius", "bonds")
#: Invariant edge features: ``"distance"`` (the interatomic distance expanded in ``num_rbf``
#: Gaussians) and ``"ratio"`` (distance over the summed covalent radii; below 1 for multiple
#: bonds, see [`molgnn.transforms.COVALENT_RADII`][molgnn.transforms.COVALENT_RADII]).
EDGE_FEATURES: tuple[str, ...] = ("distance", "ratio")
#: Atom embeddings: ``"embedding"`` (learned, by atomic number) or ``"onehot"`` (one-hot over
#: the chosen elements, then linear).
ATOM_EMBEDDINGS: tuple[str, ...] = ("embedding", "onehot")
#: Bonds per atom covered by the default degree histogram of ``pna`` on bond graphs.
MAX_BONDS = 6


def check_choice(kind: str, value: Any, valid: Iterable[Any]) -> None:
    """Raise ``ValueError`` naming ``value`` and listing the ``valid`` ones if it is not one."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid {kind}s: {', '.join(map(str, valid))}")


def check_edge_features(edge_features: Sequence[str]) -> tuple[str, ...]:
    """``edge_features`` as a tuple of distinct names from
    [`EDGE_FEATURES`][molgnn.models.pooled_gnn.EDGE_FEATURES].

    Raises:
        ValueError: for an unknown or repeated name, or none.
    """
    features = tuple(edge_features)
    unknown = [f for f in features if f not in EDGE_FEATURES]
    if unknown or not features or len(set(features)) != len(features):
        raise ValueError(
            f"edge_features must be distinct names from {', '.join(EDGE_FEATURES)}, "
            f"got {list(features)}"
        )
    return features


def _build_edges(
    z: Tensor,
    pos: Tensor,
    batch: Tensor | None,
    edge_source: str,
    cutoff_upper: float,
    max_num_neighbors: int,
    bond_tolerance: float,
) -> Tensor:
    if edge_source == "radius":
        return radius_graph(pos, cutoff_upper, batch, max_num_neighbors=max_num_neighbors)
    return covalent_bonds(z, pos, batch, bond_tolerance=bond_tolerance)


def degree_histogram(
    molecules: Iterable[Any],
    edge_source: str = "radius",
    cutoff_upper: float = 5.0,
    max_num_neighbors: int = 32,
    bond_tolerance: float = BOND_TOLERANCE,
) -> Tensor:
    """In-degree histogram of the message-passing graphs of ``molecules``, for ``pna``.

    PNA's degree scalers normalise by the average log-degree of the training graphs; pass the
    result as ``deg`` (or use
    [`PooledGNNConfig.with_degree_histogram`][molgnn.models.PooledGNNConfig.with_degree_histogram]).

    Args:
        molecules: Objects with ``z`` ``[N]`` and ``pos`` ``[N, 3]`` (e.g. QM9 items).
        edge_source: ``"radius"`` or ``"bonds"``, as in the model (default: ``"radius"``).
        cutoff_upper: Radius-graph cutoff in Å (default: ``5.0``).
        max_num_neighbors: Neighbour limit of the radius graph (default: ``32``).
        bond_tolerance: Factor on the summed covalent radii for bonds (default:
            [`BOND_TOLERANCE`][molgnn.transforms.BOND_TOLERANCE]).

    Returns:
        ``deg`` ``[D + 1]``: ``deg[k]`` atoms have ``k`` incoming edges.

    Raises:
        ValueError: for an unknown ``edge_source`` or no molecules.
    """
    check_choice("edge_source", edge_source, EDGE_SOURCES)
    return in_degree_histogram(
        (
            _build_edges(
                mol.z, mol.pos, None, edge_source, cutoff_upper, max_num_neighbors, bond_tolerance
            ),
            mol.z.numel(),
        )
        for mol in molecules
    )


class PooledGNN(nn.Module):
    r"""Pooled message-passing GNN: atom embedding and ``num_layers`` residual convolutions.

    The representation of the pooled GNN, a fast invariant baseline; its head is
    [`PooledHead`][molgnn.nn.PooledHead] and [`PooledGNNConfig`][molgnn.models.PooledGNNConfig]
    builds both into a [`MolecularModel`][molgnn.models.MolecularModel]. Each layer updates the atom
    features with a PyG convolution over invariant edge features $\mathbf{e}_{ji}$:

    $$
    \mathbf{x}_i \leftarrow \mathbf{x}_i + \operatorname{Dropout}\big(\sigma\big(
    \operatorname{Norm}(\operatorname{Conv}(\mathbf{x}, \mathbf{e})_i)\big)\big)
    $$

    The edge features depend on interatomic distances only, so the atom features are invariant
    to rotations, reflections and translations, and permute with the atoms.

    Example:
        ```python
        model = PooledGNNConfig(hidden_channels=64, conv="pna", pool="set2set").build()
        y = model(z, pos, batch)  # [B, 1]
        ```

    Args:
        hidden_channels: Feature size $C$ (default: ``128``).
        num_layers: Message-passing layers (default: ``4``).
        conv: A name from [`CONVS`][molgnn.nn.CONVS]: ``"gine"``, ``"nnconv"``, ``"gatv2"`` or
            ``"pna"`` (default: ``"gine"``).
        edge_source: ``"radius"`` (pairs closer than ``cutoff_upper``) or ``"bonds"`` (covalent
            bonds from [`covalent_bonds`][molgnn.transforms.covalent_bonds])
            (default: ``"radius"``).
        edge_features: Names from [`EDGE_FEATURES`][molgnn.models.pooled_gnn.EDGE_FEATURES]
            (default: ``("distance",)``).
        cutoff_upper: Radius-graph cutoff in Å, also the range of the Gaussians (default:
            ``5.0``).
        num_rbf: Gaussians $R$ of the distance expansion (default: ``32``).
        atom_embedding: A name from [`ATOM_EMBEDDINGS`][molgnn.models.pooled_gnn.ATOM_EMBEDDINGS]:
            ``"embedding"`` (learned, by atomic number) or ``"onehot"`` (one-hot over ``elements``,
            then linear) (default: ``"embedding"``).
        elements: Atomic numbers of the one-hot embedding (default: QM9's H, C, N, O, F).
        max_z: Largest atomic number + 1 (default: ``100``).
        norm: A name from [`NORMS`][molgnn.nn.NORMS]; ``None`` means ``"none"`` (default:
            ``"layer"``).
        dropout: Dropout probability after each layer (default: ``0.0``).
        activation: Activation name (default: ``"silu"``).
        num_heads: Attention heads $H$ of ``gatv2`` (default: ``4``).
        max_num_neighbors: Neighbour limit of the radius graph (default: ``32``).
        bond_tolerance: Factor on the summed covalent radii for bonds (default:
            [`BOND_TOLERANCE`][molgnn.transforms.BOND_TOLERANCE]).
        deg: In-degree histogram for ``pna`` (see
            [`degree_histogram`][molgnn.models.degree_histogram]) (default: every degree from 1 to
            ``max_num_neighbors`` (radius) or [`MAX_BONDS`][molgnn.models.pooled_gnn.MAX_BONDS]
            (bonds) equally often).

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
        cutoff_upper: float = 5.0,
        num_rbf: int = 32,
        atom_embedding: str = "embedding",
        elements: Sequence[int] = QM9_ELEMENTS,
        max_z: int = 100,
        norm: str | None = "layer",
        dropout: float = 0.0,
        activation: str = "silu",
        num_heads: int = 4,
        max_num_neighbors: int = 32,
        bond_tolerance: float = BOND_TOLERANCE,
        deg: Tensor | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        norm = "none" if norm is None else norm
        check_choice("conv", conv, CONVS)
        check_choice("edge_source", edge_source, EDGE_SOURCES)
        check_choice("atom_embedding", atom_embedding, ATOM_EMBEDDINGS)
        check_choice("norm", norm, NORMS)
        if hidden_channels < 1 or num_layers < 0:
            raise ValueError(
                f"need hidden_channels >= 1 and num_layers >= 0, got {hidden_channels} and "
                f"{num_layers}"
            )
        if not cutoff_upper > 0 or not bond_tolerance > 0:
            raise ValueError(
                f"cutoff_upper and bond_tolerance must be positive, got {cutoff_upper} and "
                f"{bond_tolerance}"
            )
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.conv = conv
        self.edge_source = edge_source
        self.edge_features = check_edge_features(edge_features)
        self.cutoff_upper = cutoff_upper
        self.num_rbf = num_rbf
        self.atom_embedding = atom_embedding
        self.elements = tuple(int(e) for e in elements)
        self.max_z = max_z
        self.norm = norm
        self.num_heads = num_heads
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

        self.expansion = GaussianSmearing(0.0, cutoff_upper, num_rbf, trainable=False)
        edge_dim = ("distance" in self.edge_features) * num_rbf + ("ratio" in self.edge_features)
        if deg is None:
            deg = flat_degree_histogram(max_num_neighbors if edge_source == "radius" else MAX_BONDS)
        opts = ConvOptions(activation, num_heads, torch.as_tensor(deg, dtype=torch.long))
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
            self.cutoff_upper,
            self.max_num_neighbors,
            self.bond_tolerance,
        )

    def edge_attr(self, z: Tensor, pos: Tensor, edge_index: Tensor) -> Tensor:
        """Invariant edge features ``[E, F]`` (the chosen
        [`EDGE_FEATURES`][molgnn.models.pooled_gnn.EDGE_FEATURES])."""
        j, i = edge_index
        length = (pos[j] - pos[i]).norm(dim=-1)  # [E]
        columns = []
        for name in self.edge_features:
            if name == "distance":
                columns.append(self.expansion(length))  # [E, R]
            else:
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
            f"edge_features={list(self.edge_features)}, cutoff_upper={self.cutoff_upper})"
        )
