"""Named model presets and ``build_model``.

Configs are chosen by ``kind`` through the typed registry
[`MODEL_CONFIGS`][molgnn.models.MODEL_CONFIGS] ([`molgnn.models.configs`][molgnn.models.configs]),
and named presets (config instances) live in [`PRESETS`][molgnn.models.PRESETS]. Unknown names and
fields raise ``ValueError`` listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from molgnn.models.configs import (
    MODEL_CONFIGS,
    ETConfig,
    ModelConfig,
    PooledGNNConfig,
    TensorNetConfig,
)
from molgnn.models.model import MolecularModel

__all__ = ["PRESETS", "build_model", "model_config", "stored_model_config"]

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
    # TensorNet. "tensornet-qm9": torchmd-net's examples/TensorNet-QM9.yaml (commit 2c4a597:
    # hidden 256, 3 layers, 64 fixed exp-normal RBF, cutoff 0-5 Å, SiLU, O(3),
    # max_num_neighbors 64, Scalar head, sum reduce, Atomref prior for U0), which are
    # TensorNetConfig's defaults (max_z 100 rather than its 128: QM9 uses Z <= 9).
    # "tensornet-small": hidden 64, 2 layers, 32 RBF, otherwise as tensornet-qm9; trains on a CPU.
    "tensornet-qm9": TensorNetConfig(),
    "tensornet-small": TensorNetConfig(hidden_channels=64, num_layers=2, num_rbf=32),
}


def _preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def model_config(config: str | Mapping[str, Any] | ModelConfig, **overrides: Any) -> Any:
    """Resolve a preset name, a mapping or a config into a model config dataclass.

    A mapping names its base with ``preset`` (a name from [`PRESETS`][molgnn.models.PRESETS]) or
    ``kind`` (a key of [`MODEL_CONFIGS`][molgnn.models.MODEL_CONFIGS], whose defaults are the base;
    ``"et"`` when neither is given); its other keys are fields changed on that base, e.g.
    ``{"preset": "et-small", "num_layers": 2}``.

    Raises:
        ValueError: for an unknown preset, kind or field, listing the valid ones.
    """
    if isinstance(config, str):
        resolved = _preset(config)
    elif isinstance(config, Mapping):
        values = dict(config)
        kind = values.pop("kind", None)
        if "preset" in values:
            base = _preset(values.pop("preset"))
            if kind is not None and kind != base.kind:
                raise ValueError(f"preset {config['preset']!r} is kind {base.kind!r}, not {kind!r}")
        else:
            kind = kind or "et"
            if kind not in MODEL_CONFIGS:
                raise ValueError(f"unknown model kind {kind!r}; kinds: {', '.join(MODEL_CONFIGS)}")
            base = MODEL_CONFIGS[kind]()
        base._check_names(values)
        resolved = base.replace(**values)
    elif isinstance(config, ModelConfig):
        resolved = config
    else:
        raise ValueError(
            f"expected a preset name, a dict or a model config, got {type(config).__name__}"
        )
    return resolved.replace(**overrides) if overrides else resolved


def build_model(config: str | Mapping[str, Any] | ModelConfig, **overrides: Any) -> MolecularModel:
    """Build a [`MolecularModel`][molgnn.models.MolecularModel] from a preset name, a dict or a
    config, plus overrides.

    Example:
        ```python
        model = build_model("et-small", num_layers=2)
        same = build_model(model.config.to_dict())
        ```
    """
    return model_config(config, **overrides).build()


def stored_model_config(values: Mapping[str, Any]) -> ModelConfig:
    """The model config a checkpoint stored (a mapping with ``"kind"``), read with the names
    of the current version (fields an older molgnn wrote under an old name are renamed).

    Raises:
        ValueError: for an unknown kind or field.
    """
    values = dict(values)
    kind = values.pop("kind", "et")
    if kind not in MODEL_CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; kinds: {', '.join(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[kind].from_stored(values)
