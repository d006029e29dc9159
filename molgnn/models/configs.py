"""Model configurations: the [`ModelConfig`][molgnn.models.ModelConfig] base, every model's config
and their registry.

A model config is a frozen dataclass of constructor arguments, checked by type
([`molgnn.config`][molgnn.config]). [`MODEL_CONFIGS`][molgnn.models.MODEL_CONFIGS] maps each
``kind`` to its class; named presets (instances) live in
[`molgnn.models.PRESETS`][molgnn.models.PRESETS].
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from molgnn.config import Config
from molgnn.data.keys import ATOMREF_TARGETS, QM9_ELEMENTS
from molgnn.nn.convs import CONVS, NORMS
from molgnn.nn.heads import HEADS
from molgnn.nn.pool import POOLS
from molgnn.nn.reduce import check_reduce_op
from molgnn.transforms.covalent_bonds import BOND_TOLERANCE

if TYPE_CHECKING:
    from molgnn.models.model import MolecularModel

__all__ = [
    "AUTO_PRIOR",
    "MODEL_CONFIGS",
    "PRIORS",
    "ETConfig",
    "ModelConfig",
    "PooledGNNConfig",
    "TensorNetConfig",
]

M = TypeVar("M", bound="ModelConfig")


class ModelConfig(Config):
    """A model's configuration: a frozen dataclass of constructor arguments, checked by type.

    Subclasses set ``kind`` (their key in
    [`molgnn.models.MODEL_CONFIGS`][molgnn.models.MODEL_CONFIGS]) and define
    [`build`][molgnn.models.ModelConfig.build]. ``to_dict`` adds ``"kind"``, so
    [`molgnn.models.build_model`][molgnn.models.build_model] of it rebuilds the model.
    """

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields plus ``"kind"``."""
        return {"kind": self.kind, **super().to_dict()}

    @classmethod
    def from_dict(cls: type[M], values: Mapping[str, Any]) -> M:
        """Build from a mapping of fields (a ``"kind"`` key, if present, must be this kind)."""
        values = dict(values)
        kind = values.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"{cls.__name__} is kind {cls.kind!r}, got kind {kind!r}")
        return super().from_dict(values)

    @classmethod
    def replaces_whole(cls, values: Mapping[str, Any]) -> bool:
        """A mapping with ``kind`` or ``preset`` names a whole model, not changes to one."""
        return "kind" in values or "preset" in values

    def for_target(self, target: str) -> ModelConfig:
        """This config with an ``"auto"`` prior resolved for ``target``.

        ``"auto"`` becomes ``"atomref"`` for the targets with atom references
        ([`molgnn.data.keys.ATOMREF_TARGETS`][molgnn.data.keys.ATOMREF_TARGETS]: U0, U, H, G) and
        ``None`` otherwise; any other prior is kept. Configs without a ``prior`` field are returned
        unchanged.
        """
        if getattr(self, "prior", None) != AUTO_PRIOR:
            return self
        return self.replace(prior="atomref" if target in ATOMREF_TARGETS else None)

    @abstractmethod
    def build(self) -> MolecularModel:
        """Construct the model (an ``"auto"`` prior builds none: resolve it with
        [`for_target`][molgnn.models.ModelConfig.for_target] first, as the
        [`Trainer`][molgnn.training.Trainer] does)."""


#: Prior names: ``"atomref"`` (fixed per-element values, e.g. QM9's isolated atoms) and
#: ``"learnable_atomref"`` (per-element values learned with the model).
PRIORS = ("atomref", "learnable_atomref")
#: The default prior of every model config: the training run resolves it by target
#: ([`ModelConfig.for_target`][molgnn.models.ModelConfig.for_target]), so one ``prior`` field is the
#: only switch.
AUTO_PRIOR = "auto"


def _check_head_and_prior(config: Any, valid_heads: Iterable[str]) -> None:
    """Check a config's ``head``, ``prior`` and ``reduce_op``; an ``"auto"`` prior on a head that
    takes none (dipoles, R2, vectors) becomes ``None``, any other prior there is an error."""
    valid = list(valid_heads)
    if config.head not in valid:
        raise ValueError(
            f"unknown head {config.head!r} for {type(config).__name__}; valid heads: "
            f"{', '.join(valid)}"
        )
    if config.prior not in (None, AUTO_PRIOR, *PRIORS):
        raise ValueError(
            f"unknown prior {config.prior!r}; valid priors: None, {AUTO_PRIOR!r}, "
            f"{', '.join(map(repr, PRIORS))}"
        )
    check_reduce_op(config.reduce_op)
    if not HEADS[config.head].allows_prior and config.prior == AUTO_PRIOR:
        object.__setattr__(config, "prior", None)
    if config.prior is not None and not HEADS[config.head].allows_prior:
        raise ValueError(
            f"the {config.head!r} head takes no prior (its output is not a sum of per-atom "
            f"energies); got prior={config.prior!r}"
        )


def _representation_args(config: Any) -> dict[str, Any]:
    """The config's fields that are its representation's arguments."""
    skip = {"head", "reduce_op", "prior", "out_channels", "derivative"}
    return {
        f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in skip
    }


def _assemble(config: Any, representation: Any) -> MolecularModel:
    """``MolecularModel(representation, head, prior)`` from a config's ``head``,
    ``hidden_channels``, ``activation``, ``reduce_op``, ``out_channels``, ``max_z``, ``prior``
    and ``derivative`` (with ``reduce_op="torchmdnet_mean"`` the prior is reduced the same way,
    as torchmd-net adds it per atom before its reduction)."""
    from molgnn.models.model import MolecularModel
    from molgnn.nn.prior import Atomref

    head_cls: Any = HEADS[config.head]
    extra = {"max_z": config.max_z} if head_cls.needs_max_z else {}
    head = head_cls(
        config.hidden_channels,
        activation=config.activation,
        reduce_op=config.reduce_op,
        out_channels=config.out_channels,
        **extra,
    )
    prior = None
    if config.prior not in (None, AUTO_PRIOR):
        prior = Atomref(
            max_z=config.max_z,
            trainable=config.prior == "learnable_atomref",
            reduce_op="torchmdnet_mean" if config.reduce_op == "torchmdnet_mean" else "sum",
        )
    model = MolecularModel(representation, head, prior, derivative=config.derivative)
    model.config = config
    return model


@dataclass(frozen=True)
class ETConfig(ModelConfig):
    """Equivariant Transformer + head + prior. Defaults: the paper's QM9 configuration.

    Fields are [`EquivariantTransformer`][molgnn.models.EquivariantTransformer]'s arguments, plus
    ``head`` (a name from [`molgnn.nn.HEADS`][molgnn.nn.HEADS]), ``reduce_op`` (``"sum"``,
    ``"mean"`` or ``"torchmdnet_mean"``, see [`molgnn.nn.reduce.REDUCE_OPS`][molgnn.nn.REDUCE_OPS]),
    ``prior`` (``"auto"``, the default, which training resolves to ``"atomref"`` for U0, U, H and G
    and to ``None`` otherwise; ``None``; ``"atomref"``; or ``"learnable_atomref"``),
    ``out_channels`` and ``derivative``. Every head gets ``hidden_channels``, ``activation``,
    ``reduce_op`` and ``out_channels`` (and ``max_z`` where it keeps a mass table); a head that
    cannot honour one raises ``ValueError``, and so does a prior on a head that takes none (dipoles,
    R2, vectors). With ``reduce_op="torchmdnet_mean"`` the prior is reduced the same way, as
    torchmd-net adds it per atom before its reduction.
    """

    kind: ClassVar[str] = "et"
    hidden_channels: int = 256
    num_layers: int = 8
    num_heads: int = 8
    num_rbf: int = 64
    rbf_type: str = "expnorm"
    trainable_rbf: bool = False
    activation: str = "silu"
    attn_activation: str = "silu"
    neighbor_embedding: bool = True
    distance_influence: str = "both"
    cutoff_lower: float = 0.0
    cutoff_upper: float = 5.0
    max_z: int = 100
    max_num_neighbors: int = 32
    vector_cutoff: bool = True
    head: str = "equivariant_scalar"
    reduce_op: str = "sum"
    prior: str | None = AUTO_PRIOR
    out_channels: int = 1
    derivative: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_head_and_prior(self, HEADS)

    def build(self) -> MolecularModel:
        from molgnn.models.equivariant_transformer import EquivariantTransformer

        return _assemble(self, EquivariantTransformer(**_representation_args(self)))


@dataclass(frozen=True)
class PooledGNNConfig(ModelConfig):
    """Pooled GNN: [`PooledGNN`][molgnn.models.PooledGNN] + [`PooledHead`][molgnn.nn.PooledHead] +
    prior.

    Kind ``"pooled"`` in [`MODEL_CONFIGS`][molgnn.models.MODEL_CONFIGS]. The fields are
    [`PooledGNN`][molgnn.models.PooledGNN]'s arguments (``deg`` as a tuple, so it survives a
    checkpoint), plus the head's ``pool`` (a name from [`molgnn.nn.POOLS`][molgnn.nn.POOLS]) and
    ``out_channels``, ``prior`` (``"auto"``, the default, which training resolves to
    ``"atomref"`` for U0, U, H and G and to ``None`` otherwise; ``None``; ``"atomref"``; or
    ``"learnable_atomref"``) and ``derivative`` (also return forces). The head shares
    ``hidden_channels``, ``activation`` and ``dropout`` with the representation. Names are
    checked when the config is made, so a typo fails before any training. ``heads`` and
    ``cutoff`` were renamed ``num_heads`` and ``cutoff_upper``, as the ET spells them.
    """

    kind: ClassVar[str] = "pooled"
    RENAMED: ClassVar[dict[str, str]] = {"heads": "num_heads", "cutoff": "cutoff_upper"}
    #: The fields that are not [`PooledGNN`][molgnn.models.PooledGNN]'s arguments.
    _NOT_REPRESENTATION: ClassVar[tuple[str, ...]] = ("pool", "out_channels", "prior", "derivative")

    hidden_channels: int = 128
    num_layers: int = 4
    conv: str = "gine"
    pool: str = "sum"
    edge_source: str = "radius"
    edge_features: tuple[str, ...] = ("distance",)
    cutoff_upper: float = 5.0
    num_rbf: int = 32
    atom_embedding: str = "embedding"
    elements: tuple[int, ...] = QM9_ELEMENTS
    max_z: int = 100
    norm: str | None = "layer"
    dropout: float = 0.0
    activation: str = "silu"
    num_heads: int = 4
    max_num_neighbors: int = 32
    bond_tolerance: float = BOND_TOLERANCE
    deg: tuple[int, ...] | None = None
    out_channels: int = 1
    prior: str | None = AUTO_PRIOR
    derivative: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()  # types: lists from JSON or YAML become tuples
        from molgnn.models.pooled_gnn import (  # the representation's own checks
            ATOM_EMBEDDINGS,
            EDGE_SOURCES,
            check_choice,
            check_edge_features,
        )

        if self.norm is None:  # older configs spelled "none" as None
            object.__setattr__(self, "norm", "none")
        for kind, value, valid in (
            ("conv", self.conv, CONVS),
            ("pool", self.pool, POOLS),
            ("edge_source", self.edge_source, EDGE_SOURCES),
            ("atom_embedding", self.atom_embedding, ATOM_EMBEDDINGS),
            ("norm", self.norm, NORMS),
            ("prior", self.prior, (None, AUTO_PRIOR, *PRIORS)),
        ):
            check_choice(kind, value, valid)
        object.__setattr__(self, "edge_features", check_edge_features(self.edge_features))

    def with_degree_histogram(self, molecules: Iterable[Any]) -> PooledGNNConfig:
        """A copy whose ``deg`` is [`degree_histogram`][molgnn.models.degree_histogram] of
        ``molecules`` (for ``pna``), with this config's edges."""
        from molgnn.models.pooled_gnn import degree_histogram

        hist = degree_histogram(
            molecules,
            self.edge_source,
            self.cutoff_upper,
            self.max_num_neighbors,
            self.bond_tolerance,
        )
        return self.replace(deg=tuple(int(v) for v in hist))

    def build(self) -> MolecularModel:
        from molgnn.models.model import MolecularModel
        from molgnn.models.pooled_gnn import PooledGNN
        from molgnn.nn.pool import PooledHead
        from molgnn.nn.prior import Atomref

        representation = PooledGNN(
            **{
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name not in self._NOT_REPRESENTATION
            }
        )
        head = PooledHead(
            self.hidden_channels, self.pool, self.out_channels, self.activation, self.dropout
        )
        prior = None
        if self.prior not in (None, AUTO_PRIOR):
            prior = Atomref(max_z=self.max_z, trainable=self.prior == "learnable_atomref")
        model = MolecularModel(representation, head, prior, derivative=self.derivative)
        model.config = self
        return model


@dataclass(frozen=True)
class TensorNetConfig(ModelConfig):
    """TensorNet + head + prior. Defaults: the paper's QM9 configuration.

    Kind ``"tensornet"`` in [`MODEL_CONFIGS`][molgnn.models.MODEL_CONFIGS]. The fields are
    [`TensorNet`][molgnn.models.TensorNet]'s arguments, plus ``head``, ``reduce_op``,
    ``prior``, ``out_channels`` and ``derivative``, read as [`ETConfig`][molgnn.models.ETConfig]
    reads them. TensorNet has no vector features, so ``head`` is one that reads the scalars alone:
    ``"scalar"`` (the default, torchmd-net's head for TensorNet), ``"dipole_moment"`` or
    ``"electronic_spatial_extent"``. Names (head, prior, reduction, radial basis, activation,
    ``equivariance_invariance_group``) are checked when the config is made.

    The defaults are torchmd-net's ``examples/TensorNet-QM9.yaml`` (hidden 256, 3 layers, 64
    fixed exp-normal RBF, cutoff 0-5 Å, SiLU, O(3), ``max_num_neighbors=64``, the Scalar head,
    sum reduce), except ``max_z``: 100 as for the ET rather than the file's 128, whose extra
    embedding rows no QM9 element uses.
    """

    kind: ClassVar[str] = "tensornet"
    hidden_channels: int = 256
    num_layers: int = 3
    num_rbf: int = 64
    rbf_type: str = "expnorm"
    trainable_rbf: bool = False
    activation: str = "silu"
    cutoff_lower: float = 0.0
    cutoff_upper: float = 5.0
    max_z: int = 100
    max_num_neighbors: int = 64
    equivariance_invariance_group: str = "O(3)"
    head: str = "scalar"
    reduce_op: str = "sum"
    prior: str | None = AUTO_PRIOR
    out_channels: int = 1
    derivative: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        from molgnn.nn.activations import ACTIVATIONS
        from molgnn.nn.radial import RBFS
        from molgnn.nn.tensornet import GROUPS

        scalar_heads = [name for name, head in HEADS.items() if not head.uses_vectors]
        if self.head in HEADS and self.head not in scalar_heads:
            raise ValueError(
                f"the {self.head!r} head reads vector features, which TensorNet does not "
                f"produce; valid heads: {', '.join(scalar_heads)}"
            )
        _check_head_and_prior(self, scalar_heads)
        for name, value, valid in (
            ("rbf_type", self.rbf_type, RBFS),
            ("activation", self.activation, ACTIVATIONS),
            ("equivariance_invariance_group", self.equivariance_invariance_group, GROUPS),
        ):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")

    def build(self) -> MolecularModel:
        from molgnn.models.tensornet import TensorNet

        return _assemble(self, TensorNet(**_representation_args(self)))


#: Model kind -> config class (the ``kind`` of a model config mapping or checkpoint).
MODEL_CONFIGS: dict[str, type[ModelConfig]] = {
    "et": ETConfig,
    "pooled": PooledGNNConfig,
    "tensornet": TensorNetConfig,
}
