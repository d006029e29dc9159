"""Model configurations, named presets and ``build_model``.

A model config is a frozen dataclass whose fields are constructor arguments. Configs are chosen
by ``kind`` through the typed registry :data:`MODEL_CONFIGS`, and named presets live in
:data:`PRESETS`. Unknown names and fields raise ``ValueError`` listing the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from molgnn.models.configs import ModelConfig
from molgnn.models.equivariant_transformer import EquivariantTransformer
from molgnn.models.model import MolecularModel
from molgnn.models.pooled_gnn import PooledGNNConfig
from molgnn.nn.heads import HEADS
from molgnn.nn.prior import Atomref
from molgnn.nn.reduce import check_reduce_op

__all__ = ["MODEL_CONFIGS", "PRESETS", "ETConfig", "ModelConfig", "build_model", "model_config"]

#: Prior names: ``"atomref"`` (fixed per-element values, e.g. QM9's isolated atoms) and
#: ``"learnable_atomref"`` (per-element values learned with the model).
PRIORS = ("atomref", "learnable_atomref")


@dataclass(frozen=True)
class ETConfig(ModelConfig):
    """Equivariant Transformer + head + prior. Defaults: the paper's QM9 configuration.

    Fields are :class:`~molgnn.models.EquivariantTransformer`'s arguments, plus ``head`` (a
    name from :data:`molgnn.nn.HEADS`), ``reduce_op`` (``"sum"``, ``"mean"`` or
    ``"torchmdnet_mean"``, see :data:`molgnn.nn.reduce.REDUCE_OPS`), ``prior`` (``None``,
    ``"atomref"`` or ``"learnable_atomref"``), ``out_channels`` and ``derivative``. Every head
    gets ``hidden_channels``, ``activation``, ``reduce_op`` and ``out_channels`` (and
    ``max_z`` where it keeps a mass table); a head that cannot honour one raises
    ``ValueError``, and so does a prior on a head that takes none (dipoles, R2, vectors).
    With ``reduce_op="torchmdnet_mean"`` the prior is reduced the same way, as torchmd-net
    adds it per atom before its reduction.
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
    prior: str | None = None
    out_channels: int = 1
    derivative: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; valid heads: {', '.join(HEADS)}")
        if self.prior is not None and self.prior not in PRIORS:
            raise ValueError(
                f"unknown prior {self.prior!r}; valid priors: None, {', '.join(PRIORS)}"
            )
        check_reduce_op(self.reduce_op)
        if self.prior is not None and not HEADS[self.head].allows_prior:
            raise ValueError(
                f"the {self.head!r} head takes no prior (its output is not a sum of per-atom "
                f"energies); got prior={self.prior!r}"
            )

    def build(self) -> MolecularModel:
        representation = EquivariantTransformer(
            hidden_channels=self.hidden_channels, num_layers=self.num_layers,
            num_heads=self.num_heads, num_rbf=self.num_rbf, rbf_type=self.rbf_type,
            trainable_rbf=self.trainable_rbf, activation=self.activation,
            attn_activation=self.attn_activation, neighbor_embedding=self.neighbor_embedding,
            distance_influence=self.distance_influence, cutoff_lower=self.cutoff_lower,
            cutoff_upper=self.cutoff_upper, max_z=self.max_z,
            max_num_neighbors=self.max_num_neighbors, vector_cutoff=self.vector_cutoff,
        )  # fmt: skip
        head_cls: Any = HEADS[self.head]
        extra = {"max_z": self.max_z} if head_cls.needs_max_z else {}
        head = head_cls(
            self.hidden_channels,
            activation=self.activation,
            reduce_op=self.reduce_op,
            out_channels=self.out_channels,
            **extra,
        )
        prior = None
        if self.prior is not None:
            prior = Atomref(
                max_z=self.max_z,
                trainable=self.prior == "learnable_atomref",
                reduce_op="torchmdnet_mean" if self.reduce_op == "torchmdnet_mean" else "sum",
            )
        model = MolecularModel(representation, head, prior, derivative=self.derivative)
        model.config = self
        return model


#: Model kind -> config class.
MODEL_CONFIGS: dict[str, type[ModelConfig]] = {"et": ETConfig, "pooled": PooledGNNConfig}

#: Named presets. ``et-qm9``: torchmd-net's ``examples/ET-QM9.yaml`` (hidden 256, 8 layers,
#: 8 heads, 64 fixed exp-normal RBF, cutoff 0-5 Å, SiLU, neighbour embedding,
#: ``distance_influence="both"``, the ET's EquivariantScalar head, sum reduce,
#: ``max_num_neighbors=64``); the Atomref prior of its U0 run is chosen per target by the training
#: config. ``et-small``: hidden 128, 4 layers, 8 heads, 32 RBF, otherwise as ``et-qm9``.
PRESETS: dict[str, ModelConfig] = {
    "et-qm9": ETConfig(max_num_neighbors=64),
    "et-small": ETConfig(
        hidden_channels=128, num_layers=4, num_heads=8, num_rbf=32, max_num_neighbors=64
    ),
    # A fast invariant baseline: GINE convolutions over the radius graph, mean pooling (suits
    # intensive targets such as the gap; set pool="sum" for extensive ones such as U0).
    "pooled": PooledGNNConfig(pool="mean"),
}


def model_config(config: str | dict[str, Any] | ModelConfig, **overrides: Any) -> Any:
    """Resolve a preset name, a dict (with ``"kind"``) or a config into a config dataclass.

    Raises:
        ValueError: for an unknown preset, kind or field, listing the valid ones.
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown model preset {config!r}; presets: {', '.join(PRESETS)}")
        resolved = PRESETS[config]
    elif isinstance(config, dict):
        values = dict(config)
        kind = values.pop("kind", "et")
        if kind not in MODEL_CONFIGS:
            raise ValueError(f"unknown model kind {kind!r}; kinds: {', '.join(MODEL_CONFIGS)}")
        resolved = MODEL_CONFIGS[kind]().replace(**values)
    elif isinstance(config, ModelConfig):
        resolved = config
    else:
        raise ValueError(
            f"expected a preset name, a dict or a model config, got {type(config).__name__}"
        )
    return resolved.replace(**overrides) if overrides else resolved


def build_model(config: str | dict[str, Any] | ModelConfig, **overrides: Any) -> MolecularModel:
    """Build a :class:`MolecularModel` from a preset name, a dict or a config, plus overrides.

    Example::

        model = build_model("et-small", num_layers=2)
        same = build_model(model.config.to_dict())
    """
    return model_config(config, **overrides).build()
